package engine_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/train"
)

// TestL1MatchesGorgonia: u_t and a_t from the engine equal the training
// graph's within 1e-5 relative, for both tower architectures.
func TestL1MatchesGorgonia(t *testing.T) {
	for _, arch := range []string{config.ArchMMoEDCN, config.ArchMLP} {
		t.Run(arch, func(t *testing.T) {
			d, m, up, ap := exportL1(t, arch, 3)
			eu, err := engine.LoadL1User(up, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ea, err := engine.LoadL1Ad(ap, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			reqs := d.RequestsIn(batch.Test)[:150]
			ads := make([]int32, 300)
			for i := range ads {
				ads[i] = int32(i * 7 % len(d.AdIDs))
			}
			var ub, ab engine.Batch
			urows := make([]batch.Row, len(reqs))
			for i, q := range reqs {
				urows[i] = batch.Row{Req: q, Imp: -1}
			}
			d.EngineBatch(&ub, urows, true)
			arows := make([]batch.Row, len(ads))
			for i, a := range ads {
				arows[i] = batch.Row{Req: reqs[0], Imp: -1, AdRow: a}
			}
			d.EngineBatch(&ab, arows, false)
			nt, od := len(d.Cfg.Tasks), d.Cfg.Model.L1.OutDim
			uo := make([]float32, ub.U*nt*od)
			ao := make([]float32, ab.N*nt*od)
			w := engine.NewWorker()
			if err := eu.Run(w, &ub, uo); err != nil {
				t.Fatal(err)
			}
			if err := ea.Run(w, &ab, ao); err != nil {
				t.Fatal(err)
			}
			for k := range d.Cfg.Tasks {
				if !eu.HasTask(k) {
					continue
				}
				if eu.Beta(k) != m.Beta(k) {
					t.Fatalf("task %d: β %v, trained %v", k, eu.Beta(k), m.Beta(k))
				}
				wantU, err := m.UserVectors(d, reqs, k)
				if err != nil {
					t.Fatal(err)
				}
				wantA, err := m.AdVectors(d, ads, k)
				if err != nil {
					t.Fatal(err)
				}
				worst := 0.0
				for i := range reqs {
					for j := 0; j < od; j++ {
						g, w := uo[(i*nt+k)*od+j], wantU[i*od+j]
						worst = max(worst, math.Abs(float64(g-w))/max(math.Abs(float64(w)), 1))
						if !relClose(g, w, 1e-5) {
							t.Fatalf("task %d request %d: u[%d] engine %v, gorgonia %v", k, i, j, g, w)
						}
					}
				}
				for i := range ads {
					for j := 0; j < od; j++ {
						g, w := ao[(i*nt+k)*od+j], wantA[i*od+j]
						worst = max(worst, math.Abs(float64(g-w))/max(math.Abs(float64(w)), 1))
						if !relClose(g, w, 1e-5) {
							t.Fatalf("task %d ad %d: a[%d] engine %v, gorgonia %v", k, i, j, g, w)
						}
					}
				}
				t.Logf("task %s: worst relative difference %.2g", d.Cfg.Tasks[k], worst)
			}
		})
	}
}

// exportL1 builds an untrained L1 of arch over the tiny data (seed),
// with its BN statistics set, and saves its two towers.
func exportL1(t *testing.T, arch string, seed uint64) (d *batch.Data, m *train.L1, up, ap string) {
	t.Helper()
	d = loadData(t, smallConfig(arch))
	pairs, err := train.RoutePairs(d.Cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = train.NewL1(d.Cfg, d.Feat, "all", pairs["all"], seed); err != nil {
		t.Fatal(err)
	}
	setStats(m.UBN, d.UserDense)
	setStats(m.ABN, d.AdDense)
	dir := t.TempDir()
	up, ap = filepath.Join(dir, "user.safetensors"), filepath.Join(dir, "ad.safetensors")
	if err := train.SaveL1(up, ap, m, nil); err != nil {
		t.Fatal(err)
	}
	return d, m, up, ap
}
