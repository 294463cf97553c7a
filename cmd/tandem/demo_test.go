//go:build !race

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoTrainEndToEnd runs the README's main job on the tiny scale:
// simulate, oracle, train L2 and L1 (a few steps), publish, evaluate,
// refresh, serve over loopback gRPC and answer sample queries. It
// trains real models, so it runs outside -race (scripts/test.sh).
func TestDemoTrainEndToEnd(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := runCLI(t, "demo", "--scale", "tiny", "--dir", dir, "--steps", "20")
	if code != 0 {
		t.Fatalf("demo: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"1/6 simulate", "2/6 oracle report", "3/6 train", "published ", "4/6 evaluate",
		"model l2 (test days)", "retrieval l1", "KL(L2 ‖ l1) on", "5/6 refresh", "recall@10", " is live",
		"6/6 serve", "on home_feed/", "on search/", "on related/", "Retrieve k=100: 100 ads", "p(click)", "server drained and stopped", "kept everything in"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output misses %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"oracle.json", "models.json", "models/CURRENT", "db/CURRENT"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "models.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Models []struct {
			Model  string `json:"model"`
			Slices []struct {
				Captured *float64 `json:"captured_share"`
			} `json:"slices"`
		} `json:"models"`
		Retrieval map[string]json.RawMessage `json:"retrieval"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Models) != 1 || len(rep.Models[0].Slices) == 0 || rep.Retrieval["l1"] == nil {
		t.Fatalf("models.json: %v %s", err, b[:min(len(b), 400)])
	}
	for _, s := range rep.Models[0].Slices {
		if s.Captured == nil {
			t.Fatalf("models.json: a slice without captured_share: %s", b[:min(len(b), 600)])
		}
	}

	// A second refresh, then the snapshot tools: ls shows both versions,
	// rollback makes the first live again.
	db := filepath.Join(dir, "db")
	if code, _, stderr := runCLI(t, "refresh", "-data", filepath.Join(dir, "data"), "-model", filepath.Join(dir, "models"), "-db", db, "-version", "99990101T000000.000Z"); code != 0 {
		t.Fatalf("refresh: exit %d: %s", code, stderr)
	}
	code, out, _ = runCLI(t, "index", "ls", "-db", db)
	if code != 0 || !strings.Contains(out, "LIVE") || !strings.Contains(out, "previous (rollback target)") {
		t.Fatalf("index ls: exit %d:\n%s", code, out)
	}
	if code, out, stderr := runCLI(t, "index", "rollback", "-db", db); code != 0 || !strings.Contains(out, " is live") {
		t.Fatalf("index rollback: exit %d: %s %s", code, out, stderr)
	}
	if code, _, _ := runCLI(t, "index", "rollback", "-db", db); code == 0 {
		t.Fatal("a rollback past the oldest version succeeded")
	}

	// Train the baselines only, on top of the published version: L1 and L2
	// are carried over and the global-calibration baseline re-fits L2's maps.
	code, out, stderr = runCLI(t, "train", "-data", filepath.Join(dir, "data"), "-out", filepath.Join(dir, "models"),
		"-model", "none", "-baselines", "global_calib")
	if code != 0 || !strings.Contains(out, "published ") {
		t.Fatalf("train baselines: exit %d: %s", code, stderr)
	}
	code, out, stderr = runCLI(t, "eval", "-data", filepath.Join(dir, "data"), "-model", filepath.Join(dir, "models"), "-requests", "50")
	if code != 0 || !strings.Contains(out, "model baseline_global_calib") || !strings.Contains(out, "model l2 ") {
		t.Fatalf("eval after baselines: exit %d: %s\n%s", code, stderr, out)
	}
}

// TestMovieLensTrainEndToEnd imports a small MovieLens-format data set,
// trains L1 without distillation on its engagements (the only model an
// events-only data set supports) and reports event recall; L2 is refused
// with a clear message.
func TestMovieLensTrainEndToEnd(t *testing.T) {
	src := t.TempDir()
	movies := "movieId,title,genres\n"
	for m := 1; m <= 30; m++ {
		movies += fmt.Sprintf("%d,Movie %d (1999),%s\n", m, m, []string{"Action", "Comedy|Drama", "Horror"}[m%3])
	}
	ratings := "userId,movieId,rating,timestamp\n"
	for i := range 400 {
		ratings += fmt.Sprintf("%d,%d,%d.0,%d\n", i%20+1, (i*7)%30+1, i%5+1, 1000+i*60)
	}
	for name, body := range map[string]string{"movies.csv": movies, "ratings.csv": ratings, "tags.csv": "userId,movieId,tag,timestamp\n"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, models := filepath.Join(t.TempDir(), "ml"), filepath.Join(t.TempDir(), "models")
	if code, _, stderr := runCLI(t, "import", "movielens", "--src", src, "--out", data); code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	if code, _, stderr := runCLI(t, "train", "-data", data, "-out", models); code != 1 || !strings.Contains(stderr, "-model l1") {
		t.Errorf("training L2 on events only: exit %d, %q; want a message pointing at -model l1", code, stderr)
	}
	if code, _, stderr := runCLI(t, "train", "-data", data, "-out", models, "-model", "l1"); code != 0 {
		t.Fatalf("train l1: %s", stderr)
	}
	code, out, stderr := runCLI(t, "eval", "-data", data, "-model", models, "-requests", "50")
	if code != 0 || !strings.Contains(out, "retrieval l1") || !strings.Contains(out, "recall@100") {
		t.Fatalf("eval: exit %d: %s\n%s", code, stderr, out)
	}
}
