package train

import (
	"context"
	"testing"

	"github.com/tandemml/tandem/batch"
)

// TestDistillRows: every request gets its impressions, up to the cap of
// logged candidates and the random eligible ads, labelled in (0, 1) by the
// teacher of the other fold; a distilled L1 trains on them.
func TestDistillRows(t *testing.T) {
	m, d := tinyL1(t, 3)
	cfg := d.Cfg
	teachers, err := TrainTeachers(context.Background(), cfg, d, Options{Seed: 3, StopAfterSteps: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cands, err := d.LoadCandidates(tinyDir, cfg.Caps.DistillLoggedCandidates)
	if err != nil {
		t.Fatal(err)
	}
	reqs := d.RequestsIn(batch.Validation)[:30]
	rows, err := DistillRows(d, teachers, reqs, cands, 1)
	if err != nil {
		t.Fatal(err)
	}
	per := map[int32]int{}
	for _, r := range rows {
		per[r.Req]++
		for k, p := range r.Labels[:len(cfg.Tasks)] {
			if !(p > 0 && p < 1) {
				t.Fatalf("request %d task %d: teacher probability %v", r.Req, k, p)
			}
		}
	}
	for _, ri := range reqs {
		r := &d.Requests[ri]
		want := int(r.Count) + len(cands[ri]) + cfg.Caps.DistillRandomAds
		if len(cands[ri]) > cfg.Caps.DistillLoggedCandidates {
			t.Fatalf("request %d: %d logged candidates, cap %d", ri, len(cands[ri]), cfg.Caps.DistillLoggedCandidates)
		}
		if per[ri] != want {
			t.Fatalf("request %d: %d distillation rows, want %d", ri, per[ri], want)
		}
	}
	// Labels come from the other fold's teacher: recomputing with it matches.
	r0 := rows[0]
	other := teachers[1-Fold(d.Requests[r0.Req].UserID)]
	z, err := PredictLogits(other, d, rows[:1])
	if err != nil {
		t.Fatal(err)
	}
	req := &d.Requests[r0.Req]
	want := other.Calib.Lookup(cfg.Surfaces[req.Surface].Name, cfg.ViewTypes()[req.View], cfg.Tasks[0]).Apply(z[0])
	if d := want - r0.Labels[0]; d > 1e-5 || d < -1e-5 {
		t.Fatalf("label %v, the other fold's teacher says %v", r0.Labels[0], want)
	}
	rep, err := TrainL1Distilled(context.Background(), m, d, rows, rows, Options{Seed: 3, StopAfterSteps: 2})
	if err != nil || rep.Steps != 2 {
		t.Fatalf("distilled L1: %v %+v", err, rep)
	}
}

func TestFoldSplitsUsers(t *testing.T) {
	n := [2]int{}
	for u := int64(1); u <= 1000; u++ {
		n[Fold(u)]++
	}
	if n[0] < 400 || n[1] < 400 {
		t.Fatalf("folds %v", n)
	}
}
