package gpu

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/kernels"
)

// UserTower is an L1 user tower on the device. It computes what
// engine.L1User.Run computes, for the same coded inputs, and can be swapped
// to new weights while serving (Swap).
type UserTower struct {
	d   *Device
	cur atomic.Pointer[userUnit]
}

// userUnit is one model's device state: weights and, per lane, the
// activations, pinned staging and a program per bucket.
type userUnit struct {
	cpu   *engine.L1User
	w     *engine.L1UserWeights
	nt    int
	d     *Device
	arena arena
	lanes []*userLane
	refs  atomic.Int64
	freed sync.Once      // a late acquire may touch refs after the last release
	konst unsafe.Pointer // pinned: attention scale

	userTab, ctxTab, userBase, ctxBase cuda.Ptr
	bnMean, bnSD, bnW, bnB             cuda.Ptr
	act, surf, age, pos, oov           cuda.Ptr
	token, pool, cross, proj           *devLinear
	layers                             []devLayer
	first                              *devLinear
	experts                            []devExpert
	gates                              []*devGate
	tmlp, heads                        []*devLinear
}

type devLayer struct {
	qkv, out, ffn1, ffn2   *devLinear
	ln1g, ln1b, ln2g, ln2b cuda.Ptr
}

type devExpert struct {
	cross *devLinear
	low   [][2]*devLinear
	mlp   []*devLinear
}

type devGate struct {
	first, width int
	mlp          []*devLinear
	out          *devLinear
}

type userLane struct {
	l      *lane
	sc     scratch
	stage  unsafe.Pointer // pinned inputs
	outH   unsafe.Pointer // pinned outputs
	in     cuda.Ptr       // device inputs
	out    cuda.Ptr       // device outputs (zeros where no head writes)
	progs  map[int]*prog
	layout map[int]inputLayout
}

// inputLayout places a bucket's inputs in the staging buffer (4-byte words).
type inputLayout struct {
	userCats, ctx, lens, oov, action, surface, age int
	pretrained, dense, content, words              int
}

func layoutFor(d *engine.Dims, nctx, b int) inputLayout {
	var o inputLayout
	n := 0
	put := func(k int) int { at := n; n += k; return at }
	o.userCats = put(b * d.UserCats)
	o.ctx = put(b * nctx)
	o.lens = put(b)
	o.oov = put(b * d.L)
	o.action = put(b * d.L)
	o.surface = put(b * d.L)
	o.age = put(b * d.L)
	o.pretrained = put(b * d.Pretrained)
	o.dense = put(b * d.UserDense)
	o.content = put(b * d.L * d.Content)
	o.words = n
	return o
}

// NewUserTower puts m on the device; m must have been loaded with
// engine.Options{KeepWeights: true}.
func (d *Device) NewUserTower(m *engine.L1User) (*UserTower, error) {
	t := &UserTower{d: d}
	u, err := d.newUserUnit(m)
	if err != nil {
		return nil, err
	}
	t.cur.Store(u)
	return t, nil
}

// Swap replaces the tower's weights with m's: the new unit is built and its
// graphs captured before the swap; the old one is freed once the calls
// running on it have finished.
func (t *UserTower) Swap(m *engine.L1User) error {
	u, err := t.d.newUserUnit(m)
	if err != nil {
		return err
	}
	old := t.cur.Swap(u)
	if old != nil {
		old.release()
	}
	return nil
}

// Close frees the tower once in-flight calls finish; later calls fail.
func (t *UserTower) Close() {
	if u := t.cur.Swap(nil); u != nil {
		u.release()
	}
}

// acquire pins the current unit for one call.
func (t *UserTower) acquire() (*userUnit, error) {
	for {
		u := t.cur.Load()
		if u == nil {
			return nil, errors.New("gpu: user tower closed")
		}
		u.refs.Add(1)
		if t.cur.Load() == u {
			return u, nil
		}
		u.release()
	}
}

// release drops one reference; the last one frees the unit on a lane
// (CUDA calls need the context current). Never called from a lane.
func (u *userUnit) release() {
	if u.refs.Add(-1) == 0 {
		u.freed.Do(func() { _ = u.d.lanes[0].do(u.free) })
	}
}

// HasTask, Beta and UserDenseDefaults answer as the CPU model does.
func (t *UserTower) HasTask(k int) bool {
	u := t.cur.Load()
	return u != nil && u.cpu.HasTask(k)
}

// Run writes u_t of b's U contexts into out (U × tasks × OutDim), as
// engine.L1User.Run does; the worker is not used.
func (t *UserTower) Run(_ *engine.Worker, b *engine.Batch, out []float32) error {
	u, err := t.acquire()
	if err != nil {
		return err
	}
	defer u.release()
	if err := u.cpu.Validate(b); err != nil {
		return err
	}
	nt, od := u.nt, u.w.OutDim
	if len(out) < b.U*nt*od {
		return fmt.Errorf("gpu: output buffer holds %d values, want %d", len(out), b.U*nt*od)
	}
	l := t.d.acquire()
	defer t.d.release(l)
	ul := u.lanes[l.id]
	for c0 := 0; c0 < b.U; c0 += t.d.maxBucket() {
		n := min(b.U-c0, t.d.maxBucket())
		bk := t.d.bucket(n)
		u.fill(ul, b, c0, n, bk)
		p := ul.progs[bk]
		if err := l.do(p.run); err != nil {
			return err
		}
		copy(out[c0*nt*od:(c0+n)*nt*od], unsafe.Slice((*float32)(ul.outH), n*nt*od))
	}
	return nil
}

// Trace runs b's first contexts (up to the largest bucket) step by step
// and hands every named activation to f (padded rows included).
func (t *UserTower) Trace(b *engine.Batch, f func(name string, rows, cols int, v []float32)) error {
	u, err := t.acquire()
	if err != nil {
		return err
	}
	defer u.release()
	if err := u.cpu.Validate(b); err != nil {
		return err
	}
	l := t.d.acquire()
	defer t.d.release(l)
	ul := u.lanes[l.id]
	n := min(b.U, t.d.maxBucket())
	bk := t.d.bucket(n)
	u.fill(ul, b, 0, n, bk)
	return l.do(func() error { return ul.progs[bk].trace(f) })
}

// fill writes contexts [c0, c0+n) of b into the lane's staging buffer in
// bucket bk's layout; padded contexts get code 0, length 0, zero values.
func (u *userUnit) fill(ul *userLane, b *engine.Batch, c0, n, bk int) {
	d := &u.w.Dims
	nctx := len(d.UserContextRows)
	lo := ul.layout[bk]
	w := unsafe.Slice((*int32)(ul.stage), lo.words)
	f := unsafe.Slice((*float32)(ul.stage), lo.words)
	clear(w)
	cp := func(at int, src []int32, per int) { copy(w[at:at+n*per], src[c0*per:(c0+n)*per]) }
	cpf := func(at int, src []float32, per int) { copy(f[at:at+n*per], src[c0*per:(c0+n)*per]) }
	cp(lo.userCats, b.UserCats, d.UserCats)
	cp(lo.ctx, b.UserContext, nctx)
	cpf(lo.pretrained, b.Pretrained, d.Pretrained)
	cpf(lo.dense, b.UserDense, d.UserDense)
	if d.L > 0 {
		cp(lo.lens, b.SeqLen, 1)
		cp(lo.action, b.SeqAction, d.L)
		cp(lo.surface, b.SeqSurface, d.L)
		cp(lo.age, b.SeqAge, d.L)
		cpf(lo.content, b.SeqContent, d.L*d.Content)
		for i, v := range b.SeqOOV[c0*d.L : (c0+n)*d.L] {
			w[lo.oov+i] = int32(v)
		}
	}
}

func (d *Device) newUserUnit(m *engine.L1User) (*userUnit, error) {
	w, err := m.Weights()
	if err != nil {
		return nil, err
	}
	if w.Seq == nil || w.Dims.L == 0 {
		return nil, fmt.Errorf("gpu: l1 user tower %s: the device plan needs a sequence encoder", m.Route)
	}
	u := &userUnit{cpu: m, w: w, nt: len(m.Tasks), d: d, arena: arena{drv: d.drv}, lanes: make([]*userLane, len(d.lanes))}
	u.refs.Store(1)
	l := d.acquire()
	defer d.release(l)
	if err := l.do(func() error { return u.upload(l) }); err != nil {
		_ = l.do(u.free)
		return nil, err
	}
	for _, ln := range d.lanes {
		if err := ln.do(func() error { return u.buildLane(ln) }); err != nil {
			_ = l.do(u.free)
			return nil, err
		}
	}
	return u, nil
}

// upload puts the weights on the device.
func (u *userUnit) upload(l *lane) error {
	w, p, a := u.w, u.d.o.Precision, &u.arena
	var err error
	up := func(b []byte) cuda.Ptr {
		if err != nil {
			return 0
		}
		var ptr cuda.Ptr
		ptr, err = a.upload(l, b)
		return ptr
	}
	lin := func(x *engine.LinearWeights) *devLinear {
		if err != nil || x == nil {
			return nil
		}
		var dl *devLinear
		dl, err = uploadLinear(a, l, x, x.Big, p)
		return dl
	}
	lins := func(xs []*engine.LinearWeights) []*devLinear {
		out := make([]*devLinear, len(xs))
		for i, x := range xs {
			out[i] = lin(x)
		}
		return out
	}
	cat := func(ts [][]float32) (cuda.Ptr, cuda.Ptr) {
		var all []float32
		base := make([]int32, len(ts))
		for i, t := range ts {
			base[i] = int32(len(all) / max(w.E, 1))
			all = append(all, t...)
		}
		return up(f32bytes(all)), up(i32bytes(base))
	}
	u.userTab, u.userBase = cat(w.UserCat)
	u.ctxTab, u.ctxBase = cat(w.CtxCat)
	if w.BN != nil {
		u.bnMean, u.bnSD = up(f64bytes(w.BN.Mean)), up(f64bytes(w.BN.SD))
		u.bnW, u.bnB = up(f32bytes(w.BN.Weight)), up(f32bytes(w.BN.Bias))
	}
	s := w.Seq
	u.act, u.surf, u.age = up(f32bytes(s.Act)), up(f32bytes(s.Surf)), up(f32bytes(s.Age))
	u.pos, u.oov = up(f32bytes(s.Pos)), up(f32bytes(s.OOV))
	u.token, u.pool, u.cross, u.proj = lin(s.Token), lin(s.Pool), lin(s.Cross), lin(s.Proj)
	for _, e := range s.Layers {
		u.layers = append(u.layers, devLayer{qkv: lin(e.QKV), out: lin(e.Out), ffn1: lin(e.FFN1), ffn2: lin(e.FFN2),
			ln1g: up(f32bytes(e.LN1G)), ln1b: up(f32bytes(e.LN1B)), ln2g: up(f32bytes(e.LN2G)), ln2b: up(f32bytes(e.LN2B))})
	}
	tr := w.Trunk
	u.first = lin(tr.First)
	u.tmlp = lins(tr.MLP)
	for _, e := range tr.Experts {
		de := devExpert{cross: lin(e.Cross), mlp: lins(e.MLP)}
		for _, lr := range e.LowRank {
			de.low = append(de.low, [2]*devLinear{lin(lr[0]), lin(lr[1])})
		}
		u.experts = append(u.experts, de)
	}
	u.gates = make([]*devGate, len(tr.Gates))
	for k, g := range tr.Gates {
		if g != nil {
			u.gates[k] = &devGate{first: g.First, width: g.Width, mlp: lins(g.MLP), out: lin(g.Out)}
		}
	}
	u.heads = lins(w.Heads)
	if err != nil {
		return err
	}
	if u.konst, err = u.d.drv.MemAllocHost(4); err != nil {
		return err
	}
	*(*float32)(u.konst) = float32(1 / math.Sqrt(float64(s.D/s.Heads)))
	return nil
}

// buildLane allocates a lane's buffers and builds (and captures) a program
// per bucket, largest first so that scratch buffers are shared.
func (u *userUnit) buildLane(l *lane) error {
	d := u.d
	ul := &userLane{l: l, sc: scratch{a: arena{drv: d.drv}}, progs: map[int]*prog{}, layout: map[int]inputLayout{}}
	u.lanes[l.id] = ul
	mb := d.maxBucket()
	nctx := len(u.w.Dims.UserContextRows)
	big := layoutFor(&u.w.Dims, nctx, mb)
	outN := mb * u.nt * u.w.OutDim
	var err error
	if ul.stage, err = d.drv.MemAllocHost(uint64(4 * big.words)); err != nil {
		return err
	}
	if ul.outH, err = d.drv.MemAllocHost(uint64(4 * outN)); err != nil {
		return err
	}
	if ul.in, err = ul.sc.a.alloc(4 * big.words); err != nil {
		return err
	}
	if ul.out, err = ul.sc.a.alloc(4 * outN); err != nil {
		return err
	}
	if err := d.drv.MemsetD32Async(ul.out, 0, uint64(outN), l.s); err != nil {
		return err
	}
	for i := len(d.o.Buckets) - 1; i >= 0; i-- {
		bk := d.o.Buckets[i]
		ul.sc.reset()
		ul.layout[bk] = layoutFor(&u.w.Dims, nctx, bk)
		p := u.program(ul, bk)
		if p.err != nil {
			return p.err
		}
		ul.progs[bk] = p
		if !d.o.NoGraphs {
			if err := p.capture(); err != nil {
				return err
			}
		}
	}
	return d.drv.StreamSynchronize(l.s)
}

// program builds the user tower's steps for bucket b, mirroring
// engine.L1User.Run (and seqModel.run, trunk.run) layer for layer.
func (u *userUnit) program(ul *userLane, b int) *prog {
	w, dm := u.w, &u.w.Dims
	s := w.Seq
	p := &prog{l: ul.l, sc: &ul.sc, p: u.d.o.Precision}
	lo := ul.layout[b]
	in := func(off int) uint64 { return uint64(ul.in) + uint64(4*off) }
	p.h2d("inputs", ul.in, ul.stage, 4*lo.words)
	L, D, e := s.L, s.D, w.E
	T := b * L
	lens := in(lo.lens)

	// Sequence tokens → encoder.
	tokIn := s.Content + s.ActDim + s.SurfDim + s.AgeDim
	tok := p.floats(T * tokIn)
	p.kernel("seq.tokens", &kernels.SeqTokens{Dst: uint64(tok), Content: in(lo.content), OOV: in(lo.oov), Action: in(lo.action),
		Surface: in(lo.surface), Age: in(lo.age), OOVRow: uint64(u.oov), ActT: uint64(u.act), SurfT: uint64(u.surf), AgeT: uint64(u.age),
		Rows: int32(T), ContentDim: int32(s.Content), ActDim: int32(s.ActDim), SurfDim: int32(s.SurfDim), AgeDim: int32(s.AgeDim)}, tok, T, tokIn, tokIn)
	x := p.floats(T * D)
	p.linear("seq.token", u.token, T, tok, tokIn, x, D, false)
	p.kernel("seq.position", &kernels.AddPos{X: uint64(x), Pos: uint64(u.pos), Rows: int32(T), L: int32(L), D: int32(D)}, x, T, D, D)
	heads := s.Heads
	dh := D / heads
	qkv := p.floats(T * 3 * D)
	sc := p.floats(heads * b * L * L)
	o := p.floats(T * D)
	y := p.floats(T * D)
	f1 := p.floats(T * 4 * D)
	f2 := p.floats(T * D)
	blas := u.d.api.BLAS
	for i, ly := range u.layers {
		name := fmt.Sprintf("seq.layer.%d", i)
		p.linear(name+".qkv", ly.qkv, T, x, D, qkv, 3*D, false)
		for h := range heads {
			q := qkv + cuda.Ptr(4*h*dh)
			k := q + cuda.Ptr(4*D)
			sh := sc + cuda.Ptr(4*h*b*L*L)
			ln, comp, hb := ul.l, p.attnCompute(), b
			p.add(step{name: fmt.Sprintf("%s.scores.%d", name, h), run: func() error {
				return blas.RowMajorGemmStridedBatched(ln.blas, false, true, L, L, dh, u.konst, q, cuda.R32F, 3*D, int64(L*3*D),
					k, cuda.R32F, 3*D, int64(L*3*D), ln.konstPtr(konstZero), sh, cuda.R32F, L, int64(L*L), hb, comp)
			}})
		}
		p.kernel(name+".softmax", &kernels.MaskedSoftmax{S: uint64(sc), Lens: lens, Rows: int32(heads * b * L), L: int32(L), B: int32(b)}, sc, heads*b*L, L, L)
		for h := range heads {
			v := qkv + cuda.Ptr(4*(2*D+h*dh))
			sh := sc + cuda.Ptr(4*h*b*L*L)
			oh := o + cuda.Ptr(4*h*dh)
			ln, comp, hb := ul.l, p.attnCompute(), b
			p.add(step{name: fmt.Sprintf("%s.values.%d", name, h), run: func() error {
				return blas.RowMajorGemmStridedBatched(ln.blas, false, false, L, dh, L, ln.konstPtr(konstOne), sh, cuda.R32F, L, int64(L*L),
					v, cuda.R32F, 3*D, int64(L*3*D), ln.konstPtr(konstZero), oh, cuda.R32F, D, int64(L*D), hb, comp)
			}})
		}
		p.linear(name+".out", ly.out, T, o, D, y, D, false)
		p.kernel(name+".ln1", &kernels.AddLayerNorm{Y: uint64(y), X: uint64(x), G: uint64(ly.ln1g), Bias: uint64(ly.ln1b), Rows: int32(T), D: int32(D), Eps: 1e-5}, y, T, D, D)
		p.linear(name+".ffn1", ly.ffn1, T, y, D, f1, 4*D, true)
		p.linear(name+".ffn2", ly.ffn2, T, f1, 4*D, f2, D, false)
		p.kernel(name+".ln2", &kernels.AddLayerNorm{Y: uint64(f2), X: uint64(y), G: uint64(ly.ln2g), Bias: uint64(ly.ln2b), Rows: int32(T), D: int32(D), Eps: 1e-5}, f2, T, D, D)
		x, f2 = f2, x
	}

	// Sequence output and projection.
	sw := (s.Short + 1) * D
	sb := p.floats(b * sw)
	pooled := p.floats(b * D)
	p.kernel("seq.summary", &kernels.SeqSummary{S: uint64(sb), Pooled: uint64(pooled), X: uint64(x), Lens: lens,
		B: int32(b), L: int32(L), D: int32(D), Short: int32(s.Short), Lds: int32(sw)}, pooled, b, D, D)
	p.linear("seq.pool", u.pool, b, pooled, D, sb+cuda.Ptr(4*s.Short*D), sw, false)
	hs := p.floats(b * sw)
	p.linear("seq.cross", u.cross, b, sb, sw, hs, sw, false)
	p.kernel("seq.cross.combine", &kernels.CrossCombine{H: uint64(hs), X0: uint64(sb), X: uint64(sb), Rows: int32(b), D: int32(sw),
		Ldh: int32(sw), Ld0: int32(sw), Ldx: int32(sw)}, hs, b, sw, sw)
	W := w.UXW
	ux := p.floats(b * W)
	p.linear("seq.proj", u.proj, b, hs, sw, ux+cuda.Ptr(4*w.ProjOff), W, false)

	// The user row.
	col := 0
	if dm.UserCats > 0 {
		p.kernel("user.cats", &kernels.EmbedGather{Dst: uint64(ux), Codes: in(lo.userCats), Table: uint64(u.userTab), Base: uint64(u.userBase),
			Rows: int32(b), Fields: int32(dm.UserCats), E: int32(e), Ldd: int32(W), Ldc: int32(dm.UserCats)}, 0, 0, 0, 0)
	}
	col += dm.UserCats * e
	if dm.Pretrained > 0 {
		p.kernel("user.pretrained", &kernels.CopyCols{Dst: uint64(ux) + uint64(4*col), Src: in(lo.pretrained), Rows: int32(b),
			Cols: int32(dm.Pretrained), Ldd: int32(W), Lds: int32(dm.Pretrained)}, 0, 0, 0, 0)
	}
	col += dm.Pretrained
	nctx := len(dm.UserContextRows)
	if nctx > 0 {
		p.kernel("user.context", &kernels.EmbedGather{Dst: uint64(ux) + uint64(4*col), Codes: in(lo.ctx), Table: uint64(u.ctxTab), Base: uint64(u.ctxBase),
			Rows: int32(b), Fields: int32(nctx), E: int32(e), Ldd: int32(W), Ldc: int32(nctx)}, 0, 0, 0, 0)
	}
	col += nctx * e
	if w.BN != nil && dm.UserDense > 0 {
		p.kernel("user.dense", &kernels.BNApply{Dst: uint64(ux) + uint64(4*col), Raw: in(lo.dense), Mean: uint64(u.bnMean), SD: uint64(u.bnSD),
			Weight: uint64(u.bnW), Bias: uint64(u.bnB), Rows: int32(b), N: int32(dm.UserDense), Ldd: int32(W), Ldr: int32(dm.UserDense), Clamp: w.BN.Clamp}, 0, 0, 0, 0)
	}
	p.add(step{name: "user.row", run: func() error { return nil }, out: ux, rows: b, cols: W, ld: W})

	// Trunk.
	tr := w.Trunk
	hk := make([]cuda.Ptr, u.nt)
	outW := tr.OutW
	if tr.Arch == "mlp" {
		h, _ := p.mlp("trunk.mlp", u.tmlp, b, ux, W)
		for k := range hk {
			hk[k] = h
		}
	} else {
		fw := u.first.out
		f0 := p.floats(b * fw)
		p.linear("trunk.first", u.first, b, ux, W, f0, fw, false)
		ne := len(u.experts)
		ex := p.floats(ne * b * outW)
		Dm := tr.Dim
		for i, xe := range u.experts {
			name := fmt.Sprintf("trunk.expert.%d", i)
			x0 := f0 + cuda.Ptr(4*tr.FirstOff[i])
			slot := ex + cuda.Ptr(4*i*b*outW)
			h := p.floats(b * Dm)
			p.linear(name+".cross", xe.cross, b, x0, fw, h, Dm, false)
			p.kernel(name+".cross.combine", &kernels.CrossCombine{H: uint64(h), X0: uint64(x0), X: uint64(x0), Rows: int32(b), D: int32(Dm),
				Ldh: int32(Dm), Ld0: int32(fw), Ldx: int32(fw)}, h, b, Dm, Dm)
			for j, lr := range xe.low {
				r := lr[0].out
				tmp := p.floats(b * r)
				p.linear(fmt.Sprintf("%s.lowrank.%d.v", name, j), lr[0], b, h, Dm, tmp, r, false)
				h2 := p.floats(b * Dm)
				p.linear(fmt.Sprintf("%s.lowrank.%d.u", name, j), lr[1], b, tmp, r, h2, Dm, false)
				p.kernel(fmt.Sprintf("%s.lowrank.%d.combine", name, j), &kernels.CrossCombine{H: uint64(h2), X0: uint64(x0), X: uint64(h), Rows: int32(b), D: int32(Dm),
					Ldh: int32(Dm), Ld0: int32(fw), Ldx: int32(Dm)}, h2, b, Dm, Dm)
				h = h2
			}
			hx, ldh := h, Dm
			for j, ml := range xe.mlp {
				dst := p.floats(b * ml.out)
				if j == len(xe.mlp)-1 {
					dst = slot
				}
				p.linear(fmt.Sprintf("%s.mlp.%d", name, j), ml, b, hx, ldh, dst, ml.out, true)
				hx, ldh = dst, ml.out
			}
			if len(xe.mlp) == 0 {
				p.kernel(name+".out", &kernels.CopyCols{Dst: uint64(slot), Src: uint64(h), Rows: int32(b), Cols: int32(Dm), Ldd: int32(outW), Lds: int32(Dm)}, 0, 0, 0, 0)
			}
		}
		for k, g := range u.gates {
			if g == nil || u.heads[k] == nil {
				continue
			}
			name := fmt.Sprintf("trunk.gate.%d", k)
			gx, ldg := ux, W
			if g.first >= 0 {
				gx, ldg = p.floats(b*g.width), g.width
				p.kernel(name+".first", &kernels.CopyCols{Dst: uint64(gx), Src: uint64(f0) + uint64(4*g.first), Rows: int32(b), Cols: int32(g.width),
					Ldd: int32(g.width), Lds: int32(fw), Relu: 1}, gx, b, g.width, g.width)
			}
			gh, ldh := p.mlp(name+".mlp", g.mlp, b, gx, ldg)
			logits := p.floats(b * ne)
			p.linear(name+".out", g.out, b, gh, ldh, logits, ne, false)
			hk[k] = p.floats(b * outW)
			p.kernel(name+".combine", &kernels.MMoECombine{H: uint64(hk[k]), Logits: uint64(logits), Experts: uint64(ex), Rows: int32(b), NE: int32(ne),
				W: int32(outW), Ldh: int32(outW), Lde: int32(outW), ES: int32(b * outW)}, hk[k], b, outW, outW)
		}
	}

	// Heads, straight into the output rows.
	nt, od := u.nt, w.OutDim
	for k, hd := range u.heads {
		if hd == nil {
			continue
		}
		p.linear(fmt.Sprintf("head.%d", k), hd, b, hk[k], outW, ul.out+cuda.Ptr(4*k*od), nt*od, false)
	}
	p.d2h("outputs", ul.outH, ul.out, 4*b*nt*od)
	return p
}

// free releases the unit's device memory, graphs and pinned buffers.
func (u *userUnit) free() error {
	drv := u.d.drv
	var errs []error
	for _, ul := range u.lanes {
		if ul == nil {
			continue
		}
		for _, p := range ul.progs {
			errs = append(errs, p.free())
		}
		errs = append(errs, ul.sc.a.free())
		if ul.stage != nil {
			errs = append(errs, drv.MemFreeHost(ul.stage))
		}
		if ul.outH != nil {
			errs = append(errs, drv.MemFreeHost(ul.outH))
		}
	}
	u.lanes = nil
	errs = append(errs, u.arena.free())
	if u.konst != nil {
		errs = append(errs, drv.MemFreeHost(u.konst))
		u.konst = nil
	}
	return errors.Join(errs...)
}
