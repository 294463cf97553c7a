package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"gorgonia.org/tensor"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/checkpoint"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/tower"
)

// L1 is the two-tower retrieval model of one route.
type L1 struct {
	Cfg      *config.Config
	Feat     *batch.Features
	Spec     tower.L1Spec
	W        *tower.Weights
	User, Ad *batch.Sparse
	UBN, ABN *batch.BN
	Route    string
	// Pairs lists the (surface, product) index pairs routed to this model;
	// its training rows are the impressions of those pairs.
	Pairs [][2]int
	// rowsPerContext sizes batches: about 3.5 impressions per request, about
	// 30 distillation rows.
	rowsPerContext int
}

// L1SpecFor derives the two-tower shapes from the config.
func L1SpecFor(cfg *config.Config, f *batch.Features) tower.L1Spec {
	e, m := cfg.Model.EmbedDim, cfg.Model
	u := m.L1.User
	trains := make([]bool, len(cfg.Tasks))
	for _, row := range batch.TrainsMatrix(cfg) {
		for t, ok := range row {
			trains[t] = trains[t] || ok
		}
	}
	return tower.L1Spec{
		Tasks: cfg.Tasks, Trains: trains,
		UserXDim: len(f.UserCat)*e + f.UserEmbDim + 2*e, UserDenseDim: len(f.UserDense),
		AdXDim: len(f.AdCat)*e + f.ContentDim, AdDenseDim: len(f.AdDense),
		Seq: tower.SeqSpec{L: cfg.Sequence.Length, ShortTerm: cfg.Sequence.ShortTerm, Dim: m.Seq.Dim, Heads: m.Seq.Heads,
			Layers: m.Seq.Layers, TokenIn: f.ContentDim + m.Seq.ActionDim + m.Seq.SurfaceDim + m.Seq.AgeDim, Projection: m.Seq.Projection},
		User: tower.TrunkSpec{Arch: u.Arch, Experts: u.Experts, ExpertDim: u.ExpertDim, LowRank: u.LowRank,
			LowRankLayers: u.LowRankLayers, ExpertMLP: u.ExpertMLP, GateMLP: u.GateMLP},
		AdArch: m.L1.AdArch, AdMLP: m.L1.AdMLP, OutDim: m.L1.OutDim,
	}
}

// NewL1 initialises a route's model from seed.
func NewL1(cfg *config.Config, f *batch.Features, route string, pairs [][2]int, seed uint64) (*L1, error) {
	m := &L1{Cfg: cfg, Feat: f, Spec: L1SpecFor(cfg, f), Route: route, Pairs: pairs}
	// Only the tasks some routed surface trains get heads.
	tm := batch.TrainsMatrix(cfg)
	m.Spec.Trains = make([]bool, len(cfg.Tasks))
	for _, p := range pairs {
		for t, ok := range tm[p[0]] {
			m.Spec.Trains[t] = m.Spec.Trains[t] || ok
		}
	}
	m.W = tower.NewWeights(tensor.Float32, seed)
	m.User = batch.NewSparse("l1.user", cfg, f, seed+1, true, false, true, true, "surface", "view_type")
	m.Ad = batch.NewSparse("l1.ad", cfg, f, seed+2, false, true, false, false)
	m.UBN = batch.NewBN(len(f.UserDense), cfg.Model)
	m.ABN = batch.NewBN(len(f.AdDense), cfg.Model)
	g, err := tower.BuildL1(m.W, m.Spec, 2, 1, false)
	if err != nil {
		return nil, err
	}
	g.Close()
	return m, nil
}

// Name labels the model in logs.
func (m *L1) Name() string { return "l1[" + m.Route + "]" }

func (m *L1) config() *config.Config  { return m.Cfg }
func (m *L1) weights() *tower.Weights { return m.W }
func (m *L1) tables() []*batch.Table  { return append(m.User.Tables(), m.Ad.Tables()...) }
func (m *L1) norms() []*batch.BN      { return []*batch.BN{m.UBN, m.ABN} }
func (m *L1) trains() [][]bool        { return batch.TrainsMatrix(m.Cfg) }
func (m *L1) byRequest() bool         { return true }
func (m *L1) contexts(n int) int {
	if m.rowsPerContext > 3 {
		return max(1, n/m.rowsPerContext)
	}
	return contextsPerBatch(n)
}

// L1Rows returns the impression rows of reqs whose (surface, ad product)
// is routed to this model.
func (m *L1) L1Rows(d *batch.Data, reqs []int32) []batch.Row {
	all := make([]int, len(d.Cfg.Surfaces))
	for i := range all {
		all[i] = i
	}
	rows := ImpressionRows(d, reqs, all)
	out := rows[:0]
	for _, r := range rows {
		if slices.Contains(m.Pairs, [2]int{int(d.Requests[r.Req].Surface), int(d.AdProduct[r.AdRow])}) {
			out = append(out, r)
		}
	}
	return out
}

// RoutePairs returns, per route name, the (surface, product) pairs the
// config's routing table sends to it (by product when byProduct).
func RoutePairs(cfg *config.Config, byProduct bool) (map[string][][2]int, error) {
	out := map[string][][2]int{}
	for s, sf := range cfg.Surfaces {
		for p, prod := range cfg.Products {
			route := prod
			if !byProduct {
				r, err := cfg.RouteFor(sf.Name, prod)
				if err != nil {
					return nil, err
				}
				route = r
			}
			out[route] = append(out[route], [2]int{s, p})
		}
	}
	return out, nil
}

// TrainL1 trains the route on impression labels (L1 without distillation)
// with early stopping on the validation day.
func TrainL1(ctx context.Context, m *L1, d *batch.Data, opts Options) (*Report, error) {
	return fit(ctx, m, d, m.L1Rows(d, d.RequestsIn(batch.Train)), m.L1Rows(d, d.RequestsIn(batch.Validation)), opts)
}

// TrainL1Distilled trains the route on teacher-labelled distillation rows
// (DistillRows): BCE(z, p*), whose gradient is that of KL(p* ‖ σ(z)).
func TrainL1Distilled(ctx context.Context, m *L1, d *batch.Data, trainRows, valRows []batch.Row, opts Options) (*Report, error) {
	m.rowsPerContext = 16
	defer func() { m.rowsPerContext = 0 }()
	return fit(ctx, m, d, m.routeRows(d, trainRows), m.routeRows(d, valRows), opts)
}

type l1Runner struct {
	m *L1
	g *tower.L1Graph
	f *batch.L1Feeder
}

func (m *L1) newRunner(d *batch.Data, n, u int, train bool) (runner, error) {
	g, err := tower.BuildL1(m.W, m.Spec, n, u, train)
	if err != nil {
		return nil, err
	}
	return &l1Runner{m: m, g: g, f: batch.NewL1Feeder(d, m.User, m.Ad, m.UBN, m.ABN, n, u)}, nil
}

func (r *l1Runner) fill(rows []batch.Row, train bool, rng *rand.Rand) error {
	return r.f.Fill(rows, train, rng)
}
func (r *l1Runner) close()            { r.g.Close() }
func (r *l1Runner) loss() float64     { return float64(r.g.Loss.Value().Data().(float32)) }
func (r *l1Runner) logits() []float32 { return f32(r.g.Logits) }

func (r *l1Runner) run() error {
	g, f := r.g, r.f
	in := g.In
	lets := []kv{
		{in.UserX, dense(in.UserX.Shape(), f.UX.Data)}, bind(in.UserDense, f.UDense),
		{in.AdX, dense(in.AdX.Shape(), f.AX.Data)}, {in.AdDense, dense(in.AdDense.Shape(), f.ADense)},
		{in.CtxRow, ints(f.CtxRow)}, {in.Y, dense(in.Y.Shape(), f.Y)}, {in.W, dense(in.W.Shape(), f.W)},
	}
	lets = append(lets, seqLets(in.Seq, f.Seq)...)
	if err := letAll(lets); err != nil {
		return err
	}
	return g.Run()
}

func (r *l1Runner) apply(opt *Optimizer, scale float64) {
	g := r.g
	np := len(g.Params)
	stepDense(opt, r.m.W, g.Params, g.Grads, scale)
	r.f.UX.Scatter(f32(g.Grads[np]))
	r.f.AX.Scatter(f32(g.Grads[np+1]))
	r.f.Tok.Scatter(f32(g.Grads[np+2]))
	r.f.Pos.Scatter(f32(g.Grads[np+3]))
}

// l1Meta is the "tandem.model" metadata of an L1 tower file.
type l1Meta struct {
	Kind   string   `json:"kind"` // "l1.user" or "l1.ad"
	Route  string   `json:"route"`
	Tasks  []string `json:"tasks"`
	OutDim int      `json:"out_dim"`
	Pairs  [][2]int `json:"pairs"`
}

// SaveL1 writes the route's two towers: user.safetensors holds every
// "user.*" dense parameter (including β_t), the user tables and the user
// dense statistics; ad.safetensors the "ad.*" parameters, ad tables and
// statistics.
func SaveL1(userPath, adPath string, m *L1, metrics any) error {
	xj, _ := json.Marshal(metrics)
	for _, side := range []struct {
		path, kind string
		sp         *batch.Sparse
		bn         *batch.BN
	}{{userPath, "user", m.User, m.UBN}, {adPath, "ad", m.Ad, m.ABN}} {
		var ts []checkpoint.Tensor
		for _, p := range m.W.Params() {
			if strings.HasPrefix(p.Name, side.kind+".") {
				ts = append(ts, checkpoint.Tensor{Name: "l1." + p.Name, DType: checkpoint.F32, Shape: p.Shape, Data: p.Data()})
			}
		}
		for _, t := range side.sp.Tables() {
			ts = append(ts, checkpoint.Tensor{Name: t.Name, DType: checkpoint.F32, Shape: []int{t.Rows, t.Dim}, Data: t.W})
		}
		p := "l1." + side.kind + ".bn."
		ts = append(ts,
			checkpoint.Tensor{Name: p + "running_mean", DType: checkpoint.F32, Shape: []int{len(side.bn.Mean)}, Data: f64to32(side.bn.Mean)},
			checkpoint.Tensor{Name: p + "running_var", DType: checkpoint.F32, Shape: []int{len(side.bn.Var)}, Data: f64to32(side.bn.Var)},
			checkpoint.Tensor{Name: p + "config", DType: checkpoint.F32, Shape: []int{2}, Data: []float32{float32(side.bn.Clamp), float32(side.bn.VarMin)}})
		mj, _ := json.Marshal(l1Meta{Kind: "l1." + side.kind, Route: m.Route, Tasks: m.Cfg.Tasks, OutDim: m.Spec.OutDim, Pairs: m.Pairs})
		if err := checkpoint.Write(side.path, ts, map[string]string{
			"tandem.config": string(m.Cfg.JSON()), "tandem.model": string(mj), "tandem.metrics": string(xj),
		}); err != nil {
			return err
		}
	}
	return nil
}

// LoadL1 reads a route's two tower files.
func LoadL1(userPath, adPath string) (*L1, error) {
	uf, err := checkpoint.Read(userPath)
	if err != nil {
		return nil, err
	}
	af, err := checkpoint.Read(adPath)
	if err != nil {
		return nil, err
	}
	var cfg config.Config
	if err := uf.MetaJSON("tandem.config", &cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: tandem.config: %w", userPath, err)
	}
	var meta, ameta l1Meta
	if err := uf.MetaJSON("tandem.model", &meta); err != nil {
		return nil, err
	}
	if err := af.MetaJSON("tandem.model", &ameta); err != nil {
		return nil, err
	}
	if meta.Kind != "l1.user" || ameta.Kind != "l1.ad" || meta.Route != ameta.Route {
		return nil, fmt.Errorf("%s, %s: not the user and ad towers of one L1 route (kinds %q, %q; routes %q, %q)",
			userPath, adPath, meta.Kind, ameta.Kind, meta.Route, ameta.Route)
	}
	feat, err := batch.ResolveFeatures(&cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", userPath, err)
	}
	m, err := NewL1(&cfg, feat, meta.Route, meta.Pairs, 0)
	if err != nil {
		return nil, err
	}
	for _, p := range m.W.Params() {
		f := uf
		if strings.HasPrefix(p.Name, "ad.") {
			f = af
		}
		v, err := f.Get("l1."+p.Name, p.Shape...)
		if err != nil {
			return nil, err
		}
		copy(p.Data(), v)
	}
	for _, side := range []struct {
		f    *checkpoint.File
		kind string
		sp   *batch.Sparse
		bn   *batch.BN
	}{{uf, "user", m.User, m.UBN}, {af, "ad", m.Ad, m.ABN}} {
		for _, t := range side.sp.Tables() {
			v, err := side.f.Get(t.Name, t.Rows, t.Dim)
			if err != nil {
				return nil, err
			}
			copy(t.W, v)
		}
		p := "l1." + side.kind + ".bn."
		mean, err := side.f.Get(p+"running_mean", len(side.bn.Mean))
		if err != nil {
			return nil, err
		}
		vr, err := side.f.Get(p+"running_var", len(side.bn.Var))
		if err != nil {
			return nil, err
		}
		for i := range mean {
			side.bn.Mean[i], side.bn.Var[i] = float64(mean[i]), float64(vr[i])
		}
		side.bn.Seen = true
	}
	return m, nil
}

// Beta returns β_t of task k.
func (m *L1) Beta(k int) float32 {
	return m.W.Get("user.beta." + m.Cfg.Tasks[k]).Data()[0]
}

// AdVectors returns a_t of task k for the given ad rows (len × OutDim).
func (m *L1) AdVectors(d *batch.Data, ads []int32, k int) ([]float32, error) {
	n := m.Cfg.Train.Batch
	r, err := m.newRunner(d, n, 1, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	lr := r.(*l1Runner)
	req := d.RequestsIn(batch.Test)
	if len(req) == 0 {
		req = []int32{0}
	}
	out := make([]float32, 0, len(ads)*m.Spec.OutDim)
	rows := make([]batch.Row, 0, n)
	for i := 0; i < len(ads); i += n {
		rows = rows[:0]
		for _, a := range ads[i:min(i+n, len(ads))] {
			rows = append(rows, batch.Row{Req: req[0], Imp: -1, AdRow: a})
		}
		if err := lr.fill(rows, false, nil); err != nil {
			return nil, err
		}
		if err := lr.run(); err != nil {
			return nil, err
		}
		out = append(out, f32(lr.g.Ad[k])[:len(rows)*m.Spec.OutDim]...)
	}
	return out, nil
}

// UserVectors returns u_t of task k for the given requests (len × OutDim),
// computed from each request's user, surface, view type and sequence as of
// its time.
func (m *L1) UserVectors(d *batch.Data, reqs []int32, k int) ([]float32, error) {
	n := m.Cfg.Train.Batch
	u := contextsPerBatch(n)
	r, err := m.newRunner(d, n, u, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	lr := r.(*l1Runner)
	out := make([]float32, 0, len(reqs)*m.Spec.OutDim)
	rows := make([]batch.Row, 0, u)
	for i := 0; i < len(reqs); i += u {
		rows = rows[:0]
		for _, q := range reqs[i:min(i+u, len(reqs))] {
			rows = append(rows, batch.Row{Req: q, Imp: -1, AdRow: 0})
		}
		if err := lr.fill(rows, false, nil); err != nil {
			return nil, err
		}
		if err := lr.run(); err != nil {
			return nil, err
		}
		uv, dim := f32(lr.g.User[k]), m.Spec.OutDim
		for i := range rows {
			c := lr.f.CtxRow[i] // repeated requests share one context
			out = append(out, uv[c*dim:(c+1)*dim]...)
		}
	}
	return out, nil
}

// PredictL1 returns the L1 logits (rows × tasks) of rows, which must keep
// each request's rows adjacent.
func PredictL1(m *L1, d *batch.Data, rows []batch.Row) ([]float32, error) {
	return predictLogits(m, d, rows)
}
