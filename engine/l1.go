package engine

import (
	"fmt"

	"github.com/tandemml/tandem/checkpoint"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/feature"
)

// L1User is a route's L1 user tower: user features, the surface and view
// type, and the sequence summary → MMoE-DCN → u_t per task.
type L1User struct {
	Cfg    *config.Config
	Route  string
	Tasks  []string
	OutDim int
	dims   Dims
	e      int

	userCat, ctxCat [][]float32
	bn              *bn // nil when the user has no dense features
	seq             *seqModel
	trunk           *trunk
	heads           []*linear // per task; nil: the route does not train it
	want            []bool    // heads[t] != nil
	beta            []float32
	uxW, projOff    int
	keep            bool // the fp32 weights were kept (Options.KeepWeights)
}

// LoadL1User reads l1/<route>/user.safetensors.
func LoadL1User(path string, o Options) (*L1User, error) {
	f, cfg, meta, err := readExport(path, "l1.user")
	if err != nil {
		return nil, err
	}
	return loadL1User(f, cfg, meta, path, o)
}

// LoadL1UserBytes decodes a user tower export held in memory (a snapshot's
// copy); name labels errors.
func LoadL1UserBytes(name string, b []byte, o Options) (*L1User, error) {
	f, err := checkpoint.Decode(name, b)
	if err != nil {
		return nil, err
	}
	f, cfg, meta, err := exportOf(f, name, "l1.user")
	if err != nil {
		return nil, err
	}
	return loadL1User(f, cfg, meta, name, o)
}

func loadL1User(f *checkpoint.File, cfg *config.Config, meta *exportMeta, path string, o Options) (*L1User, error) {
	ft := splitFeatures(cfg)
	mc := cfg.Model
	e := mc.EmbedDim
	s := newSource(f, "l1.user.")
	m := &L1User{Cfg: cfg, Route: meta.Route, Tasks: cfg.Tasks, OutDim: mc.L1.OutDim, e: e, keep: o.KeepWeights}
	if meta.OutDim != m.OutDim {
		return nil, fmt.Errorf("%s: tandem.model out_dim %d, the config says %d", path, meta.OutDim, m.OutDim)
	}
	var ctx []config.Feature
	for _, c := range ft.context {
		if c.Name == "surface" || c.Name == "view_type" {
			ctx = append(ctx, c)
		}
	}
	d := &m.dims
	*d = Dims{UserCats: len(ft.userCats), UserDense: len(ft.userDense), Pretrained: ft.pretrained,
		Content: ft.content, L: cfg.Sequence.Length, Actions: int(feature.NumActions), Surfaces: len(cfg.Surfaces), AgeBuckets: mc.Seq.AgeBuckets, Names: ft.names(ctx)}
	m.userCat, d.UserCatRows = readTables(s, ft.userCats, e)
	m.ctxCat, d.UserContextRows = readTables(s, ctx, e)
	if d.UserDense > 0 {
		m.bn = readBN(s, "bn", d.UserDense)
	}
	sp := seqSpecOf(cfg, ft.content)
	m.seq = readSeq(s, "seq", sp)
	m.projOff = d.UserCats*e + d.Pretrained + len(ctx)*e + d.UserDense
	m.uxW = m.projOff + sp.Proj
	m.heads = make([]*linear, len(cfg.Tasks))
	m.beta = make([]float32, len(cfg.Tasks))
	need := make([]bool, len(cfg.Tasks))
	hw := mc.L1.User.ExpertDim
	if n := len(mc.L1.User.ExpertMLP); n > 0 {
		hw = mc.L1.User.ExpertMLP[n-1]
	}
	for t, task := range cfg.Tasks {
		if !s.has("head." + task + ".weight") {
			continue
		}
		need[t] = true
		m.heads[t] = s.linear("head."+task, m.OutDim, hw)
		if b := s.get("beta."+task, 1); b != nil {
			m.beta[t] = b[0]
		}
	}
	m.want = need
	m.trunk = readTrunk(s, "trunk", m.uxW, mc.L1.User, len(cfg.Tasks), need)
	if err := s.done(); err != nil {
		return nil, err
	}
	big, small := m.linears()
	packAll(o, big, small)
	return m, nil
}

// linears lists the layers: those bf16 may store (big) and the rest.
func (m *L1User) linears() (big, small []*linear) {
	big, small = m.seq.linears()
	tb, ts := m.trunk.linears()
	return append(big, tb...), append(append(small, ts...), present(m.heads)...)
}

// present drops nil layers (tasks without heads).
func present(ls []*linear) []*linear {
	var out []*linear
	for _, l := range ls {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

// HasTask reports whether the route trains task t (has u_t and a_t).
func (m *L1User) HasTask(t int) bool { return m.heads[t] != nil }

// Beta is β_t of the logit z_t = ⟨u_t, a_t⟩ + β_t.
func (m *L1User) Beta(t int) float32 { return m.beta[t] }

// Dims returns the input widths the model expects.
func (m *L1User) Dims() Dims { return m.dims }

// Validate checks b's user, sequence and user-context fields.
func (m *L1User) Validate(b *Batch) error {
	var c checker
	c.checkUsers(b, &m.dims, true, true)
	return c.err
}

// Run writes u_t of b's U contexts into out: U × tasks × OutDim, zeros for
// tasks the route does not train.
func (m *L1User) Run(w *Worker, b *Batch, out []float32) error {
	if err := m.Validate(b); err != nil {
		return err
	}
	nt, od := len(m.Tasks), m.OutDim
	if len(out) < b.U*nt*od {
		return fmt.Errorf("engine: output buffer holds %d values, want %d", len(out), b.U*nt*od)
	}
	w.a.reset()
	u, e, d := b.U, m.e, &m.dims
	so := m.seq.run(w, b)
	W := m.uxW
	x := w.a.floats(u * W)
	nctx := len(d.UserContextRows)
	p := m.seq.proj.out
	for c := 0; c < u; c++ {
		row := x[c*W : (c+1)*W]
		o := 0
		gatherCats(row[o:], m.userCat, b.UserCats[c*d.UserCats:], e)
		o += d.UserCats * e
		o += copy(row[o:o+d.Pretrained], b.Pretrained[c*d.Pretrained:])
		gatherCats(row[o:], m.ctxCat, b.UserContext[c*nctx:], e)
		o += nctx * e
		if m.bn != nil {
			m.bn.apply(row[o:o+d.UserDense], b.UserDense[c*d.UserDense:(c+1)*d.UserDense], 0)
		}
		copy(row[m.projOff:m.projOff+p], so.proj[c*p:(c+1)*p])
	}
	w.emit("user.row", u, W, W, x)
	hs := m.trunk.run(w, x, W, u, m.want)
	tmp := w.a.floats(u * od)
	for t, h := range m.heads {
		if h == nil {
			for c := 0; c < u; c++ {
				clear(out[(c*nt+t)*od : (c*nt+t+1)*od])
			}
			continue
		}
		h.apply(w, tmp, od, hs[t], m.trunk.outW, u, false)
		if w.trace != nil {
			w.emit(fmt.Sprintf("head.%d", t), u, od, od, tmp)
		}
		for c := 0; c < u; c++ {
			copy(out[(c*nt+t)*od:(c*nt+t+1)*od], tmp[c*od:(c+1)*od])
		}
	}
	return nil
}

// Trace is Run handing every named activation to f as it is computed
// (names as the GPU plan's steps, see TraceFunc), for a per-layer diff
// against another backend. It is slow: every activation is copied.
func (m *L1User) Trace(w *Worker, b *Batch, out []float32, f TraceFunc) error {
	w.trace = f
	defer func() { w.trace = nil }()
	return m.Run(w, b, out)
}

// L1Ad is a route's L1 ad tower: ad features → cross → MLP → a_t per task.
type L1Ad struct {
	Cfg    *config.Config
	Route  string
	Tasks  []string
	OutDim int
	dims   Dims
	e      int

	adCat [][]float32
	bn    *bn
	cross *linear // nil for the MLP baseline
	mlp   []*linear
	heads []*linear
	xW    int
	keep  bool
}

// LoadL1Ad reads l1/<route>/ad.safetensors.
func LoadL1Ad(path string, o Options) (*L1Ad, error) {
	f, cfg, meta, err := readExport(path, "l1.ad")
	if err != nil {
		return nil, err
	}
	ft := splitFeatures(cfg)
	mc := cfg.Model
	e := mc.EmbedDim
	s := newSource(f, "l1.ad.")
	m := &L1Ad{Cfg: cfg, Route: meta.Route, Tasks: cfg.Tasks, OutDim: mc.L1.OutDim, e: e, keep: o.KeepWeights}
	d := &m.dims
	*d = Dims{AdCats: len(ft.adCats), AdDense: len(ft.adDense), Content: ft.content, Names: ft.names(nil)}
	m.adCat, d.AdCatRows = readTables(s, ft.adCats, e)
	m.bn = readBN(s, "bn", d.AdDense)
	m.xW = d.AdCats*e + d.Content + d.AdDense
	if mc.L1.AdArch == config.ArchMMoEDCN {
		m.cross = s.linear("cross", m.xW, m.xW)
	}
	m.mlp = s.mlp("mlp", m.xW, mc.L1.AdMLP)
	hw := m.xW
	if n := len(mc.L1.AdMLP); n > 0 {
		hw = mc.L1.AdMLP[n-1]
	}
	m.heads = make([]*linear, len(cfg.Tasks))
	for t, task := range cfg.Tasks {
		if s.has("head." + task + ".weight") {
			m.heads[t] = s.linear("head."+task, m.OutDim, hw)
		}
	}
	if err := s.done(); err != nil {
		return nil, err
	}
	big, small := m.linears()
	packAll(o, big, small)
	return m, nil
}

// linears lists the layers: those bf16 may store (big) and the rest.
func (m *L1Ad) linears() (big, small []*linear) {
	big = append(big, m.mlp...)
	if m.cross != nil {
		big = append(big, m.cross)
	}
	return big, present(m.heads)
}

// HasTask reports whether the route trains task t.
func (m *L1Ad) HasTask(t int) bool { return m.heads[t] != nil }

// Dims returns the input widths the model expects.
func (m *L1Ad) Dims() Dims { return m.dims }

// Validate checks b's ad fields.
func (m *L1Ad) Validate(b *Batch) error {
	var c checker
	c.checkAds(b, &m.dims)
	return c.err
}

// Run writes a_t of b's N ads into out: N × tasks × OutDim, zeros for
// tasks the route does not train.
func (m *L1Ad) Run(w *Worker, b *Batch, out []float32) error {
	if err := m.Validate(b); err != nil {
		return err
	}
	nt, od := len(m.Tasks), m.OutDim
	if len(out) < b.N*nt*od {
		return fmt.Errorf("engine: output buffer holds %d values, want %d", len(out), b.N*nt*od)
	}
	w.a.reset()
	n, e, d := b.N, m.e, &m.dims
	W := m.xW
	x := w.a.floats(n * W)
	for r := 0; r < n; r++ {
		row := x[r*W : (r+1)*W]
		gatherCats(row, m.adCat, b.AdCats[r*d.AdCats:], e)
		o := d.AdCats * e
		o += copy(row[o:o+d.Content], b.AdContent[r*d.Content:])
		m.bn.apply(row[o:o+d.AdDense], b.AdDense[r*d.AdDense:(r+1)*d.AdDense], 0)
	}
	h, ld := x, W
	if m.cross != nil {
		h = w.a.floats(n * W)
		m.cross.apply(w, h, W, x, W, n, false)
		crossCombine(h, W, x, W, x, W, n, W)
	}
	h, ld = mlpApply(w, m.mlp, h, ld, n)
	tmp := w.a.floats(n * od)
	for t, hd := range m.heads {
		if hd == nil {
			for r := 0; r < n; r++ {
				clear(out[(r*nt+t)*od : (r*nt+t+1)*od])
			}
			continue
		}
		hd.apply(w, tmp, od, h, ld, n, false)
		for r := 0; r < n; r++ {
			copy(out[(r*nt+t)*od:(r*nt+t+1)*od], tmp[r*od:(r+1)*od])
		}
	}
	return nil
}

// UserDenseDefaults returns, per user dense feature, the raw value the
// tower normalises to 0 (its running mean): the default of a feature a
// request leaves out.
func (m *L1User) UserDenseDefaults() []float32 { return m.bn.means(0, m.dims.UserDense) }
