package train

import (
	"fmt"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/calib"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/tower"
	"gorgonia.org/tensor"
)

// L2 is a trained (or training) unified engagement model: the graph's
// dense weights, the embedding tables, the dense features' running
// statistics and the post-hoc calibration.
type L2 struct {
	Cfg   *config.Config
	Feat  *batch.Features
	Spec  tower.L2Spec
	W     *tower.Weights
	S     *batch.Sparse
	BN    *batch.BN
	Calib *calib.Table
	// Serves lists the surface indices this model was trained on (all for the
	// unified model, one for a per-surface baseline).
	Serves []int
}

// L2SpecFor derives the graph shapes from the config; only the surfaces in
// serves get towers.
func L2SpecFor(cfg *config.Config, f *batch.Features, serves []int) tower.L2Spec {
	e := cfg.Model.EmbedDim
	m := cfg.Model
	trains := batch.TrainsMatrix(cfg)
	for s := range trains {
		in := false
		for _, k := range serves {
			in = in || k == s
		}
		if !in {
			trains[s] = make([]bool, len(cfg.Tasks))
		}
	}
	names := make([]string, len(cfg.Surfaces))
	for i, s := range cfg.Surfaces {
		names[i] = s.Name
	}
	return tower.L2Spec{
		Surfaces: names,
		Tasks:    cfg.Tasks,
		Trains:   trains,
		XDim:     len(f.UserCat)*e + f.UserEmbDim + len(f.Context)*e + f.ContentDim,
		AdDim:    len(f.AdCat)*e + f.ContentDim,
		DenseDim: len(f.UserDense) + len(f.AdDense),
		Seq: tower.SeqSpec{L: cfg.Sequence.Length, ShortTerm: cfg.Sequence.ShortTerm, Dim: m.Seq.Dim, Heads: m.Seq.Heads,
			Layers: m.Seq.Layers, TokenIn: f.ContentDim + m.Seq.ActionDim + m.Seq.SurfaceDim + m.Seq.AgeDim, Projection: m.Seq.Projection},
		Trunk: tower.TrunkSpec{Arch: m.L2.Arch, Experts: m.L2.Experts, ExpertDim: m.L2.ExpertDim, LowRank: m.L2.LowRank,
			LowRankLayers: m.L2.LowRankLayers, ExpertMLP: m.L2.ExpertMLP, GateMLP: m.L2.GateMLP},
		TowerMLP: m.L2.TowerMLP,
	}
}

// NewL2 initialises a model from seed.
func NewL2(cfg *config.Config, f *batch.Features, serves []int, seed uint64) (*L2, error) {
	m := &L2{Cfg: cfg, Feat: f, Spec: L2SpecFor(cfg, f, serves), Serves: serves}
	m.W = tower.NewWeights(tensor.Float32, seed)
	m.S = batch.NewSparse("l2", cfg, f, seed+1, true, true, true, !m.Spec.Logistic())
	m.BN = batch.NewBN(m.Spec.DenseDim, cfg.Model)
	// Building a graph once creates (and initialises) every dense parameter.
	g, err := tower.BuildL2(m.W, m.Spec, 2, 1, false)
	if err != nil {
		return nil, err
	}
	g.Close()
	return m, nil
}

// Params is the number of scalar weights (dense + tables).
func (m *L2) Params() int {
	n := m.W.Count()
	for _, t := range m.S.Tables() {
		n += len(t.W)
	}
	return n
}

// Name is the model's label in logs and reports.
func (m *L2) Name() string {
	if len(m.Serves) == len(m.Cfg.Surfaces) {
		return "l2"
	}
	return fmt.Sprintf("l2[%s]", m.Cfg.Surfaces[m.Serves[0]].Name)
}
