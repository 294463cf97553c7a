package train

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
)

func tinyL1(t testing.TB, seed uint64) (*L1, *batch.Data) {
	t.Helper()
	cfg := tinyConfig()
	cfg.Model.L1.User = config.Trunk{Arch: config.ArchMMoEDCN, Experts: 2, ExpertDim: 32, LowRank: 8, LowRankLayers: 1, ExpertMLP: []int{32}, GateMLP: []int{8}}
	cfg.Model.L1.AdMLP = []int{32}
	cfg.Model.L1.OutDim = 16
	d := loadTiny(t, cfg)
	pairs, err := RoutePairs(d.Cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewL1(d.Cfg, d.Feat, "all", pairs["all"], seed)
	if err != nil {
		t.Fatal(err)
	}
	return m, d
}

// TestL1VectorsMatchLogits: u_t and a_t read from the towers reproduce the
// graph's logits (so retrieval by ⟨u, a⟩ + β scores what was trained), and
// an export loads back to the same vectors.
func TestL1VectorsMatchLogits(t *testing.T) {
	m, d := tinyL1(t, 1)
	if _, err := TrainL1(context.Background(), m, d, Options{Seed: 1, StopAfterSteps: 4}); err != nil {
		t.Fatal(err)
	}
	rows := m.L1Rows(d, d.RequestsIn(batch.Test))[:40]
	z, err := predictLogits(m, d, rows)
	if err != nil {
		t.Fatal(err)
	}
	var reqs, ads []int32
	for _, r := range rows {
		reqs = append(reqs, r.Req)
		ads = append(ads, r.AdRow)
	}
	dir := t.TempDir()
	up, ap := filepath.Join(dir, "user.safetensors"), filepath.Join(dir, "ad.safetensors")
	if err := SaveL1(up, ap, m, nil); err != nil {
		t.Fatal(err)
	}
	back, err := LoadL1(up, ap)
	if err != nil {
		t.Fatal(err)
	}
	nt := len(d.Cfg.Tasks)
	for _, mm := range []*L1{m, back} {
		for k := range d.Cfg.Tasks {
			uv, err := mm.UserVectors(d, reqs, k)
			if err != nil {
				t.Fatal(err)
			}
			av, err := mm.AdVectors(d, ads, k)
			if err != nil {
				t.Fatal(err)
			}
			dim := mm.Spec.OutDim
			for i := range rows {
				dot := float64(mm.Beta(k))
				for j := 0; j < dim; j++ {
					dot += float64(uv[i*dim+j]) * float64(av[i*dim+j])
				}
				if got := float64(z[i*nt+k]); math.Abs(got-dot) > 1e-3*(1+math.Abs(got)) {
					t.Fatalf("row %d task %d: graph logit %v, ⟨u,a⟩+β = %v", i, k, got, dot)
				}
			}
		}
	}
}
