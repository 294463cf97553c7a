package sim

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/feature"
)

// tinyDir generates the tiny data set once per test binary.
var tinyDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tandem-sim-test-")
	if err != nil {
		return "", err
	}
	_, err = Generate(context.Background(), config.Default(), Options{Dir: dir, Scale: "tiny", Seed: 7})
	return dir, err
})

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := tinyDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

func tiny(t *testing.T) string {
	t.Helper()
	dir, err := tinyDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func readAll[T any](t *testing.T, dir, table string) []T {
	t.Helper()
	rows, err := data.ReadAll[T](dir, table)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestSameSeedSameBytes generates twice with different worker counts and
// wants byte-identical files, in both formats.
func TestSameSeedSameBytes(t *testing.T) {
	for _, f := range []data.Format{data.FormatParquet, data.FormatJSONL} {
		t.Run(string(f), func(t *testing.T) {
			a, b := t.TempDir(), t.TempDir()
			cfg := config.Default()
			for i, dir := range []string{a, b} {
				_, err := Generate(context.Background(), cfg, Options{Dir: dir, Format: f, Scale: "tiny", Seed: 3, Users: 40, Workers: 1 + 2*i})
				if err != nil {
					t.Fatal(err)
				}
			}
			names, _ := os.ReadDir(a)
			if len(names) != len(data.Tables)+1 {
				t.Fatalf("%d files, want %d tables and a manifest", len(names), len(data.Tables))
			}
			for _, n := range names {
				x, _ := os.ReadFile(filepath.Join(a, n.Name()))
				y, err := os.ReadFile(filepath.Join(b, n.Name()))
				if err != nil || !bytes.Equal(x, y) {
					t.Errorf("%s differs between two runs with the same seed", n.Name())
				}
			}
			c := t.TempDir()
			if _, err := Generate(context.Background(), cfg, Options{Dir: c, Format: f, Scale: "tiny", Seed: 4, Users: 40}); err != nil {
				t.Fatal(err)
			}
			x, _ := os.ReadFile(filepath.Join(a, data.TableImpressions+"."+string(f)))
			y, _ := os.ReadFile(filepath.Join(c, data.TableImpressions+"."+string(f)))
			if bytes.Equal(x, y) {
				t.Error("a different seed gave the same impressions")
			}
		})
	}
}

func TestManifestAndCounts(t *testing.T) {
	dir := tiny(t)
	m, err := data.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.SchemaHash != config.Default().SchemaHash() || m.Scale != "tiny" || m.Seed != 7 || !m.GroundTruth {
		t.Errorf("manifest = %+v", m)
	}
	imps := readAll[data.Impression](t, dir, data.TableImpressions)
	if int64(len(imps)) != m.Rows[data.TableImpressions] {
		t.Errorf("manifest says %d impressions, file has %d", m.Rows[data.TableImpressions], len(imps))
	}
	if len(imps) > 20000 || len(imps) < 5000 {
		t.Errorf("tiny scale has %d impressions, want 5k..20k", len(imps))
	}
}

// TestSplitsAreByTime checks max(train) < min(validation) < min(test) over
// requests, that requests fall inside the data's days, and that only
// organic events precede the first training day.
func TestSplitsAreByTime(t *testing.T) {
	dir := tiny(t)
	m, _ := data.ReadManifest(dir)
	var maxTrain, minVal, minTest int64 = 0, math.MaxInt64, math.MaxInt64
	for _, r := range readAll[data.Request](t, dir, data.TableRequests) {
		switch {
		case r.TsMs < m.TrainStartMs || r.TsMs >= m.EndMs+dayMs:
			t.Fatalf("request %d at %d outside [%d, %d)", r.RequestID, r.TsMs, m.TrainStartMs, m.EndMs)
		case r.TsMs < m.ValidationStartMs:
			maxTrain = max(maxTrain, r.TsMs)
		case r.TsMs < m.TestStartMs:
			minVal = min(minVal, r.TsMs)
		default:
			minTest = min(minTest, r.TsMs)
		}
	}
	if !(maxTrain < minVal && minVal < minTest && minTest < math.MaxInt64) {
		t.Errorf("split not by time: max train %d, min validation %d, min test %d", maxTrain, minVal, minTest)
	}
	ads := int64(len(readAll[data.Ad](t, dir, data.TableAds)))
	for _, e := range readAll[data.Event](t, dir, data.TableEvents) {
		if e.TsMs < m.TrainStartMs && e.ItemID <= ads {
			t.Fatalf("ad event %+v before the first ad request day", e)
		}
		if e.TsMs < m.HistoryStartMs {
			t.Fatalf("event %+v before the history window", e)
		}
	}
}

// TestLabelsMatchTruth compares each surface × task's label rate with its
// mean p_true, within 4.5 standard errors.
func TestLabelsMatchTruth(t *testing.T) {
	dir := tiny(t)
	surf := requestSurfaces(t, dir)
	type acc struct{ y, p, v, n float64 }
	got := map[string]*[NumTasks]acc{}
	for _, im := range readAll[data.Impression](t, dir, data.TableImpressions) {
		s := surf[im.RequestID]
		if got[s] == nil {
			got[s] = new([NumTasks]acc)
		}
		ys := [NumTasks]int8{im.Click, im.Save, im.LongClick, im.Hide}
		ps := [NumTasks]float64{im.PTrueClick, im.PTrueSave, im.PTrueLongClick, im.PTrueHide}
		for k := range NumTasks {
			a := &got[s][k]
			a.y += float64(ys[k])
			a.p += ps[k]
			a.v += ps[k] * (1 - ps[k])
			a.n++
		}
		if im.LongClick == 1 && im.Click == 0 || im.Hide == 1 && im.Click == 1 {
			t.Fatalf("impossible labels %+v", im)
		}
	}
	for s, accs := range got {
		for k, a := range accs {
			if z := (a.y - a.p) / math.Sqrt(a.v); math.Abs(z) > 4.5 {
				t.Errorf("%s %s: %v positives, Σp_true %.1f (z = %.1f)", s, TaskNames[k], a.y, a.p, z)
			}
		}
	}
	// Surfaces have different click base rates.
	rate := func(s string) (float64, float64) {
		a := got[s][TaskClick]
		return a.y / a.n, math.Sqrt(a.v) / a.n
	}
	names := []string{"home_feed", "search", "related"}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			ri, si := rate(names[i])
			rj, sj := rate(names[j])
			if math.Abs(ri-rj) < 2*math.Hypot(si, sj) {
				t.Errorf("click rates of %s (%.3f) and %s (%.3f) are not distinguishable", names[i], ri, names[j], rj)
			}
		}
	}
}

func requestSurfaces(t *testing.T, dir string) map[int64]string {
	out := map[int64]string{}
	for _, r := range readAll[data.Request](t, dir, data.TableRequests) {
		out[r.RequestID] = r.Surface
	}
	return out
}

// TestTrueProbReproducesLoggedRows recomputes TrueProb for 10k logged
// impressions from the files alone (world rebuilt from the manifest,
// sequences from the events table) and wants every p_true bit for bit.
func TestTrueProbReproducesLoggedRows(t *testing.T) {
	dir := tiny(t)
	tr, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	reqs := map[int64]data.Request{}
	for _, r := range readAll[data.Request](t, dir, data.TableRequests) {
		reqs[r.RequestID] = r
	}
	imps := readAll[data.Impression](t, dir, data.TableImpressions)
	if len(imps) < 10000 {
		t.Fatalf("only %d impressions", len(imps))
	}
	for i, im := range imps[:10000] {
		r := reqs[im.RequestID]
		p, err := tr.TrueProb(&r, im.AdID, im.Position)
		if err != nil {
			t.Fatal(err)
		}
		want := Probs{im.PTrueClick, im.PTrueSave, im.PTrueLongClick, im.PTrueHide}
		if p != want {
			t.Fatalf("impression %d: TrueProb = %v, logged %v", i, p, want)
		}
	}
}

// TestTrueProbAnyPair scores never-shown candidates at position 0 and
// rejects unknown ids.
func TestTrueProbAnyPair(t *testing.T) {
	dir := tiny(t)
	tr, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	reqs := readAll[data.Request](t, dir, data.TableRequests)
	r := reqs[len(reqs)/2]
	ads := readAll[data.Ad](t, dir, data.TableAds)
	for _, ad := range ads[:50] {
		p, err := tr.TrueProb(&r, ad.AdID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for k, x := range p {
			if !(x > 0 && x < 1) {
				t.Fatalf("TrueProb(%d)[%s] = %v", ad.AdID, TaskNames[k], x)
			}
		}
		lower, _ := tr.TrueProb(&r, ad.AdID, 3)
		if !(lower[TaskClick] < p[TaskClick]) {
			t.Fatalf("position 3 click %v not below position 0 %v", lower[TaskClick], p[TaskClick])
		}
	}
	if _, err := tr.TrueProb(&r, int64(len(ads))+1, 0); err == nil {
		t.Error("an organic item id scored as an ad")
	}
	if _, err := tr.TrueProb(&r, 0, 0); err == nil {
		t.Error("ad id 0 accepted")
	}
	bad := r
	bad.UserID = 1 << 40
	if _, err := tr.TrueProb(&bad, ads[0].AdID, 0); err == nil {
		t.Error("unknown user accepted")
	}
	bad = r
	bad.Surface = "moon"
	if _, err := tr.TrueProb(&bad, ads[0].AdID, 0); err == nil {
		t.Error("unknown surface accepted")
	}
	if _, err := tr.TrueProb(&r, ads[0].AdID, -1); err == nil {
		t.Error("negative position accepted")
	}
}

// TestSequencesNeverSeeTheFuture joins every request with the events table
// by brute force and wants the shared as-of function to agree, with no
// event at or after the request time.
func TestSequencesNeverSeeTheFuture(t *testing.T) {
	dir := tiny(t)
	tr, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	byUser := map[int64][]data.Event{}
	for _, e := range readAll[data.Event](t, dir, data.TableEvents) {
		byUser[e.UserID] = append(byUser[e.UserID], e)
	}
	l := tr.Config.Sequence.Length
	var seq []feature.Event
	for _, r := range readAll[data.Request](t, dir, data.TableRequests) {
		seq = tr.Events.Sequence(seq[:0], r.UserID, r.TsMs, l)
		var want []data.Event
		evs := byUser[r.UserID]
		for i := len(evs) - 1; i >= 0 && len(want) < l; i-- {
			if evs[i].TsMs < r.TsMs {
				want = append(want, evs[i])
			}
		}
		if len(seq) != len(want) {
			t.Fatalf("request %d: sequence of %d events, brute force %d", r.RequestID, len(seq), len(want))
		}
		for j := range seq {
			if seq[j].TsMs >= r.TsMs {
				t.Fatalf("request %d sees an event at %d ≥ its time %d", r.RequestID, seq[j].TsMs, r.TsMs)
			}
			if seq[j].TsMs != want[j].TsMs || seq[j].ItemID != want[j].ItemID {
				t.Fatalf("request %d position %d: %+v, brute force %+v", r.RequestID, j, seq[j], want[j])
			}
		}
	}
}

// TestUsersHaveHistory wants the median user to have ≥ 40 events before
// the first test day.
func TestUsersHaveHistory(t *testing.T) {
	dir := tiny(t)
	m, _ := data.ReadManifest(dir)
	n := map[int64]int{}
	for _, e := range readAll[data.Event](t, dir, data.TableEvents) {
		if e.TsMs < m.TestStartMs {
			n[e.UserID]++
		}
	}
	counts := make([]int, 0, len(n))
	for _, c := range n {
		counts = append(counts, c)
	}
	users := int(m.Rows[data.TableUsers])
	for len(counts) < users {
		counts = append(counts, 0)
	}
	if med := median(counts); med < 40 {
		t.Errorf("median user has %d events before the first test day, want ≥ 40", med)
	}
}

func median(a []int) int {
	b := slices.Clone(a)
	slices.Sort(b)
	return b[len(b)/2]
}

func TestGenerateRejectsBadOptions(t *testing.T) {
	cfg := config.Default()
	if _, err := Generate(context.Background(), cfg, Options{Dir: t.TempDir(), Scale: "galactic"}); err == nil {
		t.Error("unknown scale accepted")
	}
	if _, err := Generate(context.Background(), cfg, Options{Dir: t.TempDir(), Scale: "tiny", Users: -1}); err == nil {
		t.Error("negative users override accepted")
	}
	broken := config.Default()
	broken.Surfaces[0].Traffic = 2
	if _, err := Generate(context.Background(), broken, Options{Dir: t.TempDir(), Scale: "tiny"}); err == nil || !strings.Contains(err.Error(), "surfaces[0].traffic") {
		t.Errorf("invalid config: err = %v, want the field named", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Generate(context.Background(), cfg, Options{Dir: filepath.Join(file, "sub"), Scale: "tiny"}); err == nil {
		t.Error("output under a regular file accepted")
	}
	// A run cancelled midway leaves no manifest and no timeline table.
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Generate(ctx, cfg, Options{Dir: dir, Scale: "tiny", Progress: func(done, total int) { cancel() }})
	if err == nil {
		t.Fatal("cancelled run succeeded")
	}
	for _, name := range []string{data.ManifestFile, "events.parquet", "impressions.parquet"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("cancelled run left %s", name)
		}
	}
}

func TestOpenRejectsNonSimulatedData(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil {
		t.Error("directory without manifest opened")
	}
	m := &data.Manifest{Version: data.ManifestVersion, Source: "movielens", HistoryStartMs: 0, TrainStartMs: 1,
		ValidationStartMs: 2, TestStartMs: 3, EndMs: 4}
	if err := data.WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("a data set without ground truth opened as simulated")
	}
}
