package engine

import (
	"fmt"
	"math"

	"github.com/tandemml/tandem/calib"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/feature"
	"github.com/tandemml/tandem/kernel"
)

// L2 is one surface's export of the unified engagement model, loaded for
// inference: it scores rows of that surface.
type L2 struct {
	Cfg       *config.Config
	Surface   string
	ViewTypes []string // the surface's, in calibration order
	Tasks     []string
	dims      Dims
	e         int
	logistic  bool

	userCat, ctxCat, adCat [][]float32
	bn                     *bn
	seq                    *seqModel
	taQ, taK, taV          *linear
	trunk                  *trunk
	towers                 []*l2Tower // per task; nil: no tower, logit 0
	calib                  []float32  // views × tasks × (A, B)
	want                   []bool

	x0W                                  int
	adOff, denseOff, taOff, projOff, adW int
}

type l2Tower struct {
	mlp []*linear
	out *linear
}

// Options are load-time choices.
type Options struct {
	// BF16 stores the packed weights of the big matmul blocks (experts,
	// encoder, projection, tower MLPs, the ad tower's MLP) in bfloat16:
	// half their memory, widened to fp32 in the GEMM. Embedding tables,
	// normalisation, gates, attention, heads, logits and calibration stay
	// fp32.
	BF16 bool
	// KeepWeights keeps the fp32 weights after packing, for another
	// backend to read through Weights (the GPU plans): the model then holds
	// them twice.
	KeepWeights bool
}

// LoadL2 reads an l2_<surface>.safetensors export.
func LoadL2(path string, o Options) (*L2, error) {
	f, cfg, meta, err := readExport(path, "l2")
	if err != nil {
		return nil, err
	}
	si := cfg.SurfaceIndex(meta.Surface)
	if si < 0 {
		return nil, fmt.Errorf("%s: surface %q is not in the config", path, meta.Surface)
	}
	ft := splitFeatures(cfg)
	mc := cfg.Model
	e := mc.EmbedDim
	s := newSource(f, "l2.")
	m := &L2{Cfg: cfg, Surface: meta.Surface, ViewTypes: meta.ViewTypes, Tasks: cfg.Tasks, e: e, logistic: mc.L2.Arch == config.ArchLogistic}
	if len(m.ViewTypes) != len(cfg.Surfaces[si].ViewTypes) {
		return nil, fmt.Errorf("%s: tandem.model lists %d view types, the config's %s has %d", path, len(m.ViewTypes), meta.Surface, len(cfg.Surfaces[si].ViewTypes))
	}
	d := &m.dims
	*d = Dims{UserCats: len(ft.userCats), UserDense: len(ft.userDense), Pretrained: ft.pretrained,
		Context: len(ft.context), AdCats: len(ft.adCats), AdDense: len(ft.adDense), Content: ft.content,
		L: cfg.Sequence.Length, Actions: int(feature.NumActions), Surfaces: len(cfg.Surfaces), AgeBuckets: mc.Seq.AgeBuckets, Views: len(m.ViewTypes), Names: ft.names(nil)}
	m.userCat, d.UserCatRows = readTables(s, ft.userCats, e)
	m.ctxCat, d.ContextRows = readTables(s, ft.context, e)
	m.adCat, d.AdCatRows = readTables(s, ft.adCats, e)
	nd := d.UserDense + d.AdDense
	m.bn = readBN(s, "bn", nd)
	xW := d.UserCats*e + d.Pretrained + d.Context*e + d.Content
	m.adOff = xW
	m.adW = d.AdCats*e + d.Content
	m.denseOff = m.adOff + m.adW
	m.x0W = m.denseOff + nd
	if !m.logistic {
		sp := seqSpecOf(cfg, ft.content)
		m.seq = readSeq(s, "seq", sp)
		m.taQ = s.linear("ta.q", sp.Dim, m.adW)
		m.taK = s.linear("ta.k", sp.Dim, sp.Dim)
		m.taV = s.linear("ta.v", sp.Dim, sp.Dim)
		m.taOff = m.x0W
		m.projOff = m.taOff + sp.Dim
		m.x0W = m.projOff + sp.Proj
	}
	m.towers = make([]*l2Tower, len(cfg.Tasks))
	m.want = make([]bool, len(cfg.Tasks))
	hw := m.x0W
	if !m.logistic {
		hw = mc.L2.ExpertDim
		if len(mc.L2.ExpertMLP) > 0 {
			hw = mc.L2.ExpertMLP[len(mc.L2.ExpertMLP)-1]
		}
	}
	for t, task := range cfg.Tasks {
		name := fmt.Sprintf("tower.%s.%s", meta.Surface, task)
		if !s.has(name + ".out.weight") {
			continue
		}
		tw := &l2Tower{}
		in := hw
		if !m.logistic {
			tw.mlp = s.mlp(name+".mlp", hw, mc.L2.TowerMLP)
			if len(mc.L2.TowerMLP) > 0 {
				in = mc.L2.TowerMLP[len(mc.L2.TowerMLP)-1]
			}
		}
		tw.out = s.linear(name+".out", 1, in)
		m.towers[t] = tw
		m.want[t] = true
	}
	if !m.logistic {
		m.trunk = readTrunk(s, "trunk", m.x0W, mc.L2.Trunk, len(cfg.Tasks), m.want)
	}
	m.calib = s.get("calibration", len(m.ViewTypes), len(cfg.Tasks), 2)
	if err := s.done(); err != nil {
		return nil, err
	}
	big, small := m.linears()
	packAll(o, big, small)
	return m, nil
}

// linears lists the layers: those bf16 may store (big) and the rest.
func (m *L2) linears() (big, small []*linear) {
	if !m.logistic {
		big, small = m.seq.linears()
		tb, ts := m.trunk.linears()
		big, small = append(big, tb...), append(append(small, ts...), m.taQ, m.taK, m.taV)
	}
	for _, tw := range m.towers {
		if tw != nil {
			big, small = append(big, tw.mlp...), append(small, tw.out)
		}
	}
	return big, small
}

// Dims returns the input widths the model expects.
func (m *L2) Dims() Dims { return m.dims }

// Validate checks b against the model's input widths and table sizes.
func (m *L2) Validate(b *Batch) error {
	var c checker
	d := &m.dims
	c.checkUsers(b, d, !m.logistic, false)
	c.checkAds(b, d)
	n := b.N
	if c.len("row.ctx", len(b.Ctx), n) {
		c.codesN("row.ctx", b.Ctx, b.U)
	}
	if c.len("row.context", len(b.Context), n*d.Context) {
		c.codes("row.context", b.Context, d.ContextRows)
	}
	if c.len("row.context_item", len(b.ContextItem), n*d.Content) {
		c.finite("row.context_item", b.ContextItem, d.Content)
	}
	if c.len("row.view", len(b.View), n) {
		c.codesN("row.view", b.View, d.Views)
	}
	return c.err
}

// Run scores b's N rows: logits and calibrated probabilities, N × tasks
// each (a task the surface does not train has logit 0). A bad batch is an
// *InputError naming the field; nothing is written then.
func (m *L2) Run(w *Worker, b *Batch, logits, probs []float32) error {
	if err := m.Validate(b); err != nil {
		return err
	}
	nt := len(m.Tasks)
	if len(logits) < b.N*nt || len(probs) < b.N*nt {
		return fmt.Errorf("engine: output buffers hold %d and %d values, want %d", len(logits), len(probs), b.N*nt)
	}
	w.a.reset()
	n, e, d := b.N, m.e, &m.dims
	var so seqOut
	if !m.logistic {
		so = m.seq.run(w, b)
	}
	W := m.x0W
	x0 := w.a.floats(n * W)
	nud := d.UserDense
	for r := 0; r < n; r++ {
		c := int(b.Ctx[r])
		row := x0[r*W : (r+1)*W]
		o := 0
		gatherCats(row[o:], m.userCat, b.UserCats[c*d.UserCats:], e)
		o += d.UserCats * e
		o += copy(row[o:o+d.Pretrained], b.Pretrained[c*d.Pretrained:])
		gatherCats(row[o:], m.ctxCat, b.Context[r*d.Context:], e)
		o += d.Context * e
		o += copy(row[o:o+d.Content], b.ContextItem[r*d.Content:])
		gatherCats(row[o:], m.adCat, b.AdCats[r*d.AdCats:], e)
		o += d.AdCats * e
		o += copy(row[o:o+d.Content], b.AdContent[r*d.Content:])
		m.bn.apply(row[o:o+nud], b.UserDense[c*nud:(c+1)*nud], 0)
		m.bn.apply(row[o+nud:o+nud+d.AdDense], b.AdDense[r*d.AdDense:(r+1)*d.AdDense], nud)
		if !m.logistic {
			p := m.seq.proj.out
			copy(row[m.projOff:m.projOff+p], so.proj[c*p:(c+1)*p])
		}
	}
	if !m.logistic {
		m.targetAttention(w, x0, b, so)
	}
	var hs [][]float32
	ldh := W
	if m.logistic {
		hs = w.a.ptrs(nt)
		for t := range hs {
			hs[t] = x0
		}
	} else {
		hs = m.trunk.run(w, x0, W, n, m.want)
		ldh = m.trunk.outW
	}
	z := w.a.floats(n)
	for t, tw := range m.towers {
		if tw == nil {
			for r := 0; r < n; r++ {
				logits[r*nt+t] = 0
			}
			continue
		}
		h, ld := mlpApply(w, tw.mlp, hs[t], ldh, n)
		tw.out.apply(w, z, 1, h, ld, n, false)
		for r := 0; r < n; r++ {
			logits[r*nt+t] = z[r]
		}
	}
	for r := 0; r < n; r++ {
		v := int(b.View[r])
		for t := 0; t < nt; t++ {
			ab := m.calib[(v*nt+t)*2:]
			probs[r*nt+t] = calib.Params{A: float64(ab[0]), B: float64(ab[1])}.Apply(logits[r*nt+t])
		}
	}
	return nil
}

// targetAttention writes each row's attention over its context's encoder
// outputs into x0: q from the row's candidate vector, keys and values
// projected once per context (0 for an empty sequence).
func (m *L2) targetAttention(w *Worker, x0 []float32, b *Batch, so seqOut) {
	n, W := b.N, m.x0W
	dd := m.seq.d
	q := w.a.floats(n * dd)
	m.taQ.apply(w, q, dd, x0[m.adOff:], W, n, false)
	tot := int(so.off[b.U])
	k, v := w.a.floats(tot*dd), w.a.floats(tot*dd)
	m.taK.apply(w, k, dd, so.t, dd, tot, false)
	m.taV.apply(w, v, dd, so.t, dd, tot, false)
	// Each context's values transposed (d × n), so a row's output is d dot
	// products of its weights with contiguous rows.
	vt := w.a.floats(tot * dd)
	for c := 0; c < b.U; c++ {
		lo, ln := int(so.off[c]), int(so.off[c+1]-so.off[c])
		blk := vt[lo*dd : (lo+ln)*dd]
		for j := 0; j < ln; j++ {
			for i, x := range v[(lo+j)*dd : (lo+j+1)*dd] {
				blk[i*ln+j] = x
			}
		}
	}
	scale := float32(1 / math.Sqrt(float64(dd)))
	sc := w.a.floats(m.seq.l)
	for r := 0; r < n; r++ {
		c := int(b.Ctx[r])
		lo, ln := int(so.off[c]), int(so.off[c+1]-so.off[c])
		dst := x0[r*W+m.taOff:][:dd]
		if ln == 0 {
			clear(dst)
			continue
		}
		s := sc[:ln]
		kernel.Dots(s, q[r*dd:(r+1)*dd], k[lo*dd:(lo+ln)*dd], dd)
		for j := range s {
			s[j] *= scale
		}
		kernel.Softmax(s)
		kernel.Dots(dst, s, vt[lo*dd:(lo+ln)*dd], ln)
	}
}

// UserDenseDefaults returns, per user dense feature, the raw value the
// model normalises to 0 (its running mean): the default of a feature a
// request leaves out.
func (m *L2) UserDenseDefaults() []float32 { return m.bn.means(0, m.dims.UserDense) }
