//go:build !race

package eval

import (
	"context"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/train"
)

// smallModel is a tiny-scale model config (widths ≤ 32).
func smallModel() *config.Config {
	c := config.Default()
	c.Model.EmbedDim = 8
	c.Model.Seq.Dim = 16
	c.Model.Seq.Projection = 16
	c.Model.L2.Experts = 2
	c.Model.L2.ExpertDim = 32
	c.Model.L2.LowRank = 8
	c.Model.L2.ExpertMLP = []int{32}
	c.Model.L2.GateMLP = []int{8}
	c.Model.L2.TowerMLP = []int{16}
	c.Model.L1.User = config.Trunk{Arch: config.ArchMMoEDCN, Experts: 2, ExpertDim: 32, LowRank: 8, LowRankLayers: 1, ExpertMLP: []int{32}, GateMLP: []int{8}}
	c.Model.L1.AdMLP = []int{32}
	c.Model.L1.OutDim = 16
	c.Train.Batch = 64
	c.Train.WarmupSteps = 10
	c.Train.Epochs = 6
	c.Train.Patience = 2
	return c
}

// TestModelsLearnTiny trains L2 and L1 on the tiny scale for a fixed seed
// and checks the reports: L2 captures ≥ 0.3 of the gap between base rate
// and Bayes on home_feed click (the slice with enough positives at this
// scale), and L1's retrieval recall@100 beats popularity. It trains for
// real, so it runs without -race (scripts/test.sh runs it in its non-race
// step).
func TestModelsLearnTiny(t *testing.T) {
	dir := t.TempDir()
	simulateTiny(t, dir)
	cfg, man, err := batch.DataConfig(dir, smallModel(), true)
	if err != nil {
		t.Fatal(err)
	}
	d, err := batch.Load(dir, cfg, man)
	if err != nil {
		t.Fatal(err)
	}
	m, err := train.NewL2(d.Cfg, d.Feat, []int{0, 1, 2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := train.TrainL2(context.Background(), m, d, train.Options{Seed: 1, Log: t.Logf}); err != nil {
		t.Fatal(err)
	}
	or, err := Oracle(dir, OracleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	models := map[string]*train.L2{}
	for _, s := range d.Cfg.Surfaces {
		models[s.Name] = m
	}
	rows, probs, err := L2Predictions(d, models)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ModelL2("l2", d, or, rows, probs, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range rep.Slices {
		t.Logf("%s/%s/%s captured %.3f (n=%d, pos=%d)", s.Surface, s.ViewType, s.Task, s.CapturedShare, s.Count, s.Positives)
		if s.Surface == "home_feed" && s.ViewType == "*" && s.Task == "click" {
			found = true
			if s.CapturedShare < 0.3 {
				t.Errorf("home_feed click captured share %.3f, want ≥ 0.3", s.CapturedShare)
			}
		}
	}
	if !found {
		t.Fatal("no home_feed click slice")
	}

	pairs, err := train.RoutePairs(d.Cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	l1, err := train.NewL1(d.Cfg, d.Feat, "all", pairs["all"], 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := train.TrainL1(context.Background(), l1, d, train.Options{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	rr, err := Retrieval(dir, d, map[string]*train.L1{"all": l1}, RetrievalOptions{Requests: 200})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("retrieval %+v", rr.Recall)
	if rr.Recall["model"]["@100"] <= rr.Recall["popularity"]["@100"] {
		t.Errorf("L1 recall@100 %.3f does not beat popularity %.3f", rr.Recall["model"]["@100"], rr.Recall["popularity"]["@100"])
	}
}
