//go:build !race

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoTrainEndToEnd runs the README's main job on the tiny scale:
// simulate, oracle, train L2 and L1 (a few steps), publish, evaluate. It
// trains real models, so it runs outside -race (scripts/test.sh).
func TestDemoTrainEndToEnd(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := runCLI(t, "demo", "--scale", "tiny", "--dir", dir, "--steps", "20")
	if code != 0 {
		t.Fatalf("demo: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"1/4 simulate", "2/4 oracle report", "3/4 train", "published ", "4/4 evaluate",
		"model l2 (test days)", "retrieval l1", "kept everything in"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output misses %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"oracle.json", "models.json", "models/CURRENT"} {
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

	// Train the baselines only, on top of the published version: L1 and L2
	// are carried over and the global-calibration baseline re-fits L2's maps.
	code, out, stderr = runCLI(t, "train", "-data", filepath.Join(dir, "data"), "-out", filepath.Join(dir, "models"),
		"-model", "none", "-baselines", "global_calib")
	if code != 0 {
		t.Fatalf("train baselines: exit %d: %s", code, stderr)
	}
	code, out, stderr = runCLI(t, "eval", "-data", filepath.Join(dir, "data"), "-model", filepath.Join(dir, "models"), "-requests", "50")
	if code != 0 || !strings.Contains(out, "model baseline_global_calib") || !strings.Contains(out, "model l2 ") {
		t.Fatalf("eval after baselines: exit %d: %s\n%s", code, stderr, out)
	}
}
