package gpu

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/kernels"
)

// AdTower is an L1 ad tower on the device (the refresh job's embedding of
// the catalog). It computes what engine.L1Ad.Run computes.
type AdTower struct {
	d     *Device
	cpu   *engine.L1Ad
	w     *engine.L1AdWeights
	nt    int
	arena arena
	tab   cuda.Ptr
	base  cuda.Ptr
	bn    [4]cuda.Ptr // mean, sd, weight, bias
	cross *devLinear
	mlp   []*devLinear
	heads []*devLinear
	lanes []*adLane
	once  sync.Once
}

type adLane struct {
	sc    scratch
	stage unsafe.Pointer // codes (B×cats i32) | content (B×C f32) | dense (B×D f32)
	outH  unsafe.Pointer
	out   cuda.Ptr
	progs map[int]*prog
}

// NewAdTower puts m on the device; m must have been loaded with
// engine.Options{KeepWeights: true}.
func (d *Device) NewAdTower(m *engine.L1Ad) (*AdTower, error) {
	w, err := m.Weights()
	if err != nil {
		return nil, err
	}
	t := &AdTower{d: d, cpu: m, w: w, nt: len(m.Tasks), arena: arena{drv: d.drv}, lanes: make([]*adLane, len(d.lanes))}
	l := d.acquire()
	defer d.release(l)
	err = l.do(func() error { return t.upload(l) })
	for _, ln := range d.lanes {
		if err != nil {
			break
		}
		err = ln.do(func() error { return t.buildLane(ln) })
	}
	if err != nil {
		_ = l.do(t.free)
		return nil, err
	}
	return t, nil
}

func (t *AdTower) upload(l *lane) error {
	w, p := t.w, t.d.o.Precision
	var all []float32
	base := make([]int32, len(w.AdCat))
	for i, tb := range w.AdCat {
		base[i] = int32(len(all) / max(w.E, 1))
		all = append(all, tb...)
	}
	var err error
	up := func(b []byte) cuda.Ptr {
		if err != nil {
			return 0
		}
		var q cuda.Ptr
		q, err = t.arena.upload(l, b)
		return q
	}
	t.tab, t.base = up(f32bytes(all)), up(i32bytes(base))
	if w.BN != nil {
		t.bn = [4]cuda.Ptr{up(f64bytes(w.BN.Mean)), up(f64bytes(w.BN.SD)), up(f32bytes(w.BN.Weight)), up(f32bytes(w.BN.Bias))}
	}
	lin := func(x *engine.LinearWeights) *devLinear {
		if err != nil || x == nil {
			return nil
		}
		var dl *devLinear
		dl, err = uploadLinear(&t.arena, l, x, x.Big, p)
		return dl
	}
	t.cross = lin(w.Cross)
	for _, x := range w.MLP {
		t.mlp = append(t.mlp, lin(x))
	}
	for _, x := range w.Heads {
		t.heads = append(t.heads, lin(x))
	}
	return err
}

func (t *AdTower) stageWords(b int) int {
	dm := &t.w.Dims
	return b * (dm.AdCats + dm.Content + dm.AdDense)
}

func (t *AdTower) buildLane(l *lane) error {
	d := t.d
	al := &adLane{sc: scratch{a: arena{drv: d.drv}}, progs: map[int]*prog{}}
	t.lanes[l.id] = al
	mb := d.maxBucket()
	outN := mb * t.nt * t.w.OutDim
	var err error
	if al.stage, err = d.drv.MemAllocHost(uint64(4 * t.stageWords(mb))); err != nil {
		return err
	}
	if al.outH, err = d.drv.MemAllocHost(uint64(4 * outN)); err != nil {
		return err
	}
	if al.out, err = al.sc.a.alloc(4 * outN); err != nil {
		return err
	}
	if err := d.drv.MemsetD32Async(al.out, 0, uint64(outN), l.s); err != nil {
		return err
	}
	for i := len(d.o.Buckets) - 1; i >= 0; i-- {
		bk := d.o.Buckets[i]
		al.sc.reset()
		p := t.program(l, al, bk)
		if p.err != nil {
			return p.err
		}
		al.progs[bk] = p
		if !d.o.NoGraphs {
			if err := p.capture(); err != nil {
				return err
			}
		}
	}
	return d.drv.StreamSynchronize(l.s)
}

// program mirrors engine.L1Ad.Run for b ads.
func (t *AdTower) program(l *lane, al *adLane, b int) *prog {
	w, dm := t.w, &t.w.Dims
	p := &prog{l: l, sc: &al.sc, p: t.d.o.Precision}
	in, err := al.sc.get(4 * t.stageWords(b))
	p.fail(err)
	p.h2d("inputs", in, al.stage, 4*t.stageWords(b))
	codes := uint64(in)
	content := codes + uint64(4*b*dm.AdCats)
	dense := content + uint64(4*b*dm.Content)
	W := w.XW
	x := p.floats(b * W)
	if dm.AdCats > 0 {
		p.kernel("ad.cats", &kernels.EmbedGather{Dst: uint64(x), Codes: codes, Table: uint64(t.tab), Base: uint64(t.base),
			Rows: int32(b), Fields: int32(dm.AdCats), E: int32(w.E), Ldd: int32(W), Ldc: int32(dm.AdCats)}, 0, 0, 0, 0)
	}
	col := dm.AdCats * w.E
	if dm.Content > 0 {
		p.kernel("ad.content", &kernels.CopyCols{Dst: uint64(x) + uint64(4*col), Src: content, Rows: int32(b), Cols: int32(dm.Content),
			Ldd: int32(W), Lds: int32(dm.Content)}, 0, 0, 0, 0)
	}
	col += dm.Content
	if w.BN != nil && dm.AdDense > 0 {
		p.kernel("ad.dense", &kernels.BNApply{Dst: uint64(x) + uint64(4*col), Raw: dense, Mean: uint64(t.bn[0]), SD: uint64(t.bn[1]),
			Weight: uint64(t.bn[2]), Bias: uint64(t.bn[3]), Rows: int32(b), N: int32(dm.AdDense), Ldd: int32(W), Ldr: int32(dm.AdDense), Clamp: w.BN.Clamp}, x, b, W, W)
	}
	h, ld := x, W
	if t.cross != nil {
		h = p.floats(b * W)
		p.linear("ad.cross", t.cross, b, x, W, h, W, false)
		p.kernel("ad.cross.combine", &kernels.CrossCombine{H: uint64(h), X0: uint64(x), X: uint64(x), Rows: int32(b), D: int32(W),
			Ldh: int32(W), Ld0: int32(W), Ldx: int32(W)}, h, b, W, W)
	}
	h, ld = p.mlp("ad.mlp", t.mlp, b, h, ld)
	nt, od := t.nt, w.OutDim
	for k, hd := range t.heads {
		if hd != nil {
			p.linear(fmt.Sprintf("ad.head.%d", k), hd, b, h, ld, al.out+cuda.Ptr(4*k*od), nt*od, false)
		}
	}
	p.d2h("outputs", al.outH, al.out, 4*b*nt*od)
	return p
}

// Run writes a_t of b's N ads into out (N × tasks × OutDim), as
// engine.L1Ad.Run does.
func (t *AdTower) Run(b *engine.Batch, out []float32) error {
	if err := t.cpu.Validate(b); err != nil {
		return err
	}
	nt, od := t.nt, t.w.OutDim
	if len(out) < b.N*nt*od {
		return fmt.Errorf("gpu: output buffer holds %d values, want %d", len(out), b.N*nt*od)
	}
	dm := &t.w.Dims
	l := t.d.acquire()
	defer t.d.release(l)
	al := t.lanes[l.id]
	for r0 := 0; r0 < b.N; r0 += t.d.maxBucket() {
		n := min(b.N-r0, t.d.maxBucket())
		bk := t.d.bucket(n)
		words := t.stageWords(bk)
		wd := unsafe.Slice((*int32)(al.stage), words)
		f := unsafe.Slice((*float32)(al.stage), words)
		clear(wd)
		copy(wd[:n*dm.AdCats], b.AdCats[r0*dm.AdCats:(r0+n)*dm.AdCats])
		o := bk * dm.AdCats
		copy(f[o:o+n*dm.Content], b.AdContent[r0*dm.Content:(r0+n)*dm.Content])
		o += bk * dm.Content
		copy(f[o:o+n*dm.AdDense], b.AdDense[r0*dm.AdDense:(r0+n)*dm.AdDense])
		if err := l.do(al.progs[bk].run); err != nil {
			return err
		}
		copy(out[r0*nt*od:(r0+n)*nt*od], unsafe.Slice((*float32)(al.outH), n*nt*od))
	}
	return nil
}

// Close frees the tower; no call may be running.
func (t *AdTower) Close() {
	t.once.Do(func() { _ = t.d.lanes[0].do(t.free) })
}

func (t *AdTower) free() error {
	var errs []error
	for _, al := range t.lanes {
		if al == nil {
			continue
		}
		for _, p := range al.progs {
			errs = append(errs, p.free())
		}
		errs = append(errs, al.sc.a.free())
		if al.stage != nil {
			errs = append(errs, t.d.drv.MemFreeHost(al.stage))
		}
		if al.outH != nil {
			errs = append(errs, t.d.drv.MemFreeHost(al.outH))
		}
	}
	t.lanes = nil
	errs = append(errs, t.arena.free())
	return errors.Join(errs...)
}
