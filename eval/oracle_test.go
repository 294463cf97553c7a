package eval

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/sim"
)

func simulateTiny(t *testing.T, dir string) {
	t.Helper()
	if _, err := sim.Generate(context.Background(), config.Default(), sim.Options{Dir: dir, Scale: "tiny", Seed: 11}); err != nil {
		t.Fatal(err)
	}
}

// TestDefaultDifficulty holds the committed default difficulty to its
// promises on the tiny scale, with expected (label-noise-free) log losses:
// the Bayes NE for click is ≤ 0.85 on every surface, and replacing any
// component by its slice mean raises the click log loss by ≥ 1% (≥ 2% for
// the short-term component) on every surface where it applies.
func TestDefaultDifficulty(t *testing.T) {
	dir := t.TempDir()
	simulateTiny(t, dir)
	rep, err := Oracle(dir, OracleOptions{Expected: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	seen := 0
	for _, s := range rep.Slices {
		if s.Task != "click" || s.ViewType != AllViewTypes {
			continue
		}
		seen++
		if s.NEBayes > 0.85 {
			t.Errorf("%s click: NE_bayes %.3f > 0.85", s.Surface, s.NEBayes)
		}
		hasContext := cfg.Surfaces[cfg.SurfaceIndex(s.Surface)].Context != config.ContextNone
		for _, c := range sim.ComponentNames {
			rise := s.Ablated[c]/s.BayesLogLoss - 1
			want := 0.01
			switch {
			case c == "short_term":
				want = 0.02
			case c == "context" && !hasContext:
				if rise != 0 {
					t.Errorf("%s has no context, yet ablating it changes the log loss by %.2f%%", s.Surface, 100*rise)
				}
				continue
			}
			if rise < want {
				t.Errorf("%s click: ablating %s raises the log loss by %.2f%%, want ≥ %.0f%%", s.Surface, c, 100*rise, 100*want)
			}
		}
	}
	if seen != len(cfg.Surfaces) {
		t.Errorf("report has click rows for %d surfaces, want %d", seen, len(cfg.Surfaces))
	}
}

func TestOracleReportShape(t *testing.T) {
	dir := t.TempDir()
	simulateTiny(t, dir)
	rep, err := Oracle(dir, OracleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Slices []map[string]any `json:"slices"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Slices) == 0 {
		t.Fatal("no slices")
	}
	for _, s := range back.Slices {
		for _, k := range []string{"surface", "view_type", "task", "count", "positives", "bayes_log_loss", "base_log_loss", "bayes_auc"} {
			if _, ok := s[k]; !ok {
				t.Fatalf("slice %v misses %q", s, k)
			}
		}
	}
	// Only the tasks a surface trains are reported.
	for _, s := range rep.Slices {
		if s.Surface == "search" && s.Task == "hide" {
			t.Error("search reports hide, which it does not train")
		}
		if s.Count == 0 || s.BayesLogLoss <= 0 || s.BaseLogLoss <= 0 {
			t.Errorf("degenerate slice %+v", s)
		}
	}
	var sb strings.Builder
	if err := rep.WriteText(&sb); err != nil || !strings.Contains(sb.String(), "home_feed") {
		t.Errorf("text report: %v\n%s", err, sb.String())
	}
}

// TestOracleRejectsTamperedTruth changes one stored p_true and wants the
// row named.
func TestOracleRejectsTamperedTruth(t *testing.T) {
	dir := t.TempDir()
	simulateTiny(t, dir)
	m, _ := data.ReadManifest(dir)
	reqs, err := data.ReadAll[data.Request](dir, data.TableRequests)
	if err != nil {
		t.Fatal(err)
	}
	test := map[int64]bool{}
	for _, r := range reqs {
		test[r.RequestID] = r.TsMs >= m.TestStartMs
	}
	imps, err := data.ReadAll[data.Impression](dir, data.TableImpressions)
	if err != nil {
		t.Fatal(err)
	}
	row := -1
	for i, im := range imps {
		if test[im.RequestID] {
			row = i
			break
		}
	}
	imps[row].PTrueClick = imps[row].PTrueClick * 0.5
	w, err := data.Create[data.Impression](dir, data.TableImpressions, data.FormatParquet)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(imps); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Oracle(dir, OracleOptions{})
	if err == nil || !strings.Contains(err.Error(), "impressions: row ") || !strings.Contains(err.Error(), "p_true") {
		t.Fatalf("tampered p_true: err = %v", err)
	}
}

func TestOracleRejectsCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	simulateTiny(t, dir)
	path := filepath.Join(dir, data.TableImpressions+".parquet")
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Oracle(dir, OracleOptions{})
	if err == nil || !strings.Contains(err.Error(), "impressions.parquet") {
		t.Fatalf("truncated impressions: err = %v, want the file named", err)
	}
	os.Remove(filepath.Join(dir, data.ManifestFile))
	if _, err := Oracle(dir, OracleOptions{}); err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Fatalf("missing manifest: err = %v", err)
	}
}

// TestModelSliceJSON: a model slice's JSON carries both the oracle's and
// the model's fields, with NaN as null.
func TestModelSliceJSON(t *testing.T) {
	s := ModelSlice{Slice: Slice{Surface: "search", Task: "click", BaseLogLoss: 0.5, NEBayes: 0.8, BayesAUC: math.NaN()},
		ModelLogLoss: 0.45, CapturedShare: 0.6, ModelAUC: math.NaN()}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if m["surface"] != "search" || m["captured_share"] != 0.6 || m["model_log_loss"] != 0.45 || m["model_auc"] != nil || m["bayes_auc"] != nil {
		t.Fatalf("JSON %s", b)
	}
}
