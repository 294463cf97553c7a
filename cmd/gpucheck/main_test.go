package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemml/tandem/gpu/standin"
)

// TestRunOnStandIn runs the whole check on the C stand-in (the real
// kernels compiled for the host): every parity and overlap check passes
// and the report lists them with timings.
func TestRunOnStandIn(t *testing.T) {
	lib := standin.Build(t, filepath.Join("..", "..", "gpu", "kernels", "host.c"))
	for _, v := range []string{"TANDEM_LIBCUDA", "TANDEM_LIBCUBLAS", "TANDEM_LIBCUBLASLT", "TANDEM_LIBNVRTC"} {
		t.Setenv(v, lib)
	}
	out := filepath.Join(t.TempDir(), "report.json")
	code, err := run(config{out: out, precs: []string{"fp32", "bf16"}, ads: 3000, calls: 3, buckets: []int{1, 4}, contexts: 6})
	if err != nil || code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Kernels) == 0 || len(rep.Parity) == 0 || len(rep.Exact) == 0 || len(rep.Timings) == 0 || len(rep.Failures) != 0 {
		t.Fatalf("report: %d parity, %d exact, %d timings, failures %v", len(rep.Parity), len(rep.Exact), len(rep.Timings), rep.Failures)
	}
	for _, p := range rep.Parity {
		if !p.OK {
			t.Errorf("%+v", p)
		}
	}
	paths, scored := map[string]int{}, 0
	for _, p := range rep.Parity {
		paths[p.Path]++
	}
	for _, tm := range rep.Timings {
		if strings.HasPrefix(tm.What, "l1_score/") && tm.Candidates > 0 && tm.PerSecond > 0 {
			scored++
		}
	}
	if paths["tower"] == 0 || paths["score"] != paths["tower"] || scored != 4 {
		t.Errorf("parity per path %v, %d scoring timings (want 2 buckets × 2 precisions)", paths, scored)
	}
	// Both precisions diffed the tower layer by layer.
	per := map[string]int{}
	for _, l := range rep.Layers {
		per[l.Precision]++
		if !l.OK || l.Rows == 0 {
			t.Errorf("layer %+v", l)
		}
	}
	worst := map[string]float64{}
	for _, l := range rep.Layers {
		worst[l.Precision] = max(worst[l.Precision], l.Rel)
	}
	t.Logf("layers per precision %v, worst relative difference %v", per, worst)
	if per["fp32"] < 10 || per["bf16"] < 10 {
		t.Errorf("layers diffed per precision: %v", per)
	}
}
