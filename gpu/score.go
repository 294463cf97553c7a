package gpu

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/kernels"
)

// AdVectors is a route's a_t for every ad of a snapshot, resident on the
// device for L1 scoring of given candidates (UserTower.Score).
type AdVectors struct {
	d         *Device
	n, nt, od int
	ar        arena
	vec       cuda.Ptr
	lanes     []*pairLane
	refs      atomic.Int64
	closed    atomic.Bool
	freed     sync.Once
}

// pairLane is one lane's pair buffers, grown on demand: pinned ids | ctx |
// scores (tasks × cap) and their device twins.
type pairLane struct {
	cap      int
	stage    unsafe.Pointer
	in, outD cuda.Ptr
}

// RouteVectors lays out route r's a_t of every ad of snapshot c for
// NewAdVectors: ads × tasks × OutDim, ads in catalog row order.
func RouteVectors(c *catalog.Catalog, r *catalog.Route) []float32 {
	nt, od := len(c.Tasks), c.OutDim
	v := make([]float32, len(c.AdIDs)*nt*od)
	for a := range c.AdIDs {
		for t := range nt {
			copy(v[(a*nt+t)*od:(a*nt+t+1)*od], c.Vector(int32(a), r.Pos, t))
		}
	}
	return v
}

// NewAdVectors uploads n ads × tasks × outDim vectors.
func (d *Device) NewAdVectors(v []float32, n, tasks, outDim int) (*AdVectors, error) {
	if n <= 0 || tasks <= 0 || outDim <= 0 || len(v) != n*tasks*outDim {
		return nil, fmt.Errorf("gpu: ad vectors: %d values for %d ads × %d tasks × %d", len(v), n, tasks, outDim)
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("gpu: ad vectors: ad %d task %d value %d is %v", i/(tasks*outDim), i/outDim%tasks, i%outDim, x)
		}
	}
	a := &AdVectors{d: d, n: n, nt: tasks, od: outDim, ar: arena{drv: d.drv}, lanes: make([]*pairLane, len(d.lanes))}
	a.refs.Store(1)
	l := d.acquire()
	defer d.release(l)
	err := l.do(func() error {
		var err error
		a.vec, err = a.ar.upload(l, f32bytes(v))
		return err
	})
	if err != nil {
		_ = l.do(a.ar.free)
		return nil, err
	}
	return a, nil
}

// Len is the number of ads.
func (a *AdVectors) Len() int { return a.n }

// Close frees the vectors once in-flight scoring calls finish.
func (a *AdVectors) Close() {
	if !a.closed.Swap(true) {
		a.release()
	}
}

func (a *AdVectors) release() {
	if a.refs.Add(-1) == 0 {
		a.freed.Do(func() { _ = a.d.lanes[0].do(a.free) })
	}
}

func (a *AdVectors) free() error {
	var errs []error
	for _, pl := range a.lanes {
		if pl != nil {
			errs = append(errs, pl.release(a.d.drv))
		}
	}
	a.lanes = nil
	errs = append(errs, a.ar.free())
	return errors.Join(errs...)
}

func (pl *pairLane) release(drv *cuda.Driver) error {
	var errs []error
	if pl.stage != nil {
		errs = append(errs, drv.MemFreeHost(pl.stage))
	}
	if pl.in != 0 {
		errs = append(errs, drv.MemFree(pl.in))
	}
	if pl.outD != 0 {
		errs = append(errs, drv.MemFree(pl.outD))
	}
	*pl = pairLane{}
	return errors.Join(errs...)
}

// grow makes room for n pairs of nt tasks; it runs on the lane.
func (pl *pairLane) grow(drv *cuda.Driver, n, nt int) error {
	if n <= pl.cap {
		return nil
	}
	c := max(n, 2*pl.cap, 1024)
	if err := pl.release(drv); err != nil {
		return err
	}
	var err error
	if pl.stage, err = drv.MemAllocHost(uint64(4 * c * (2 + nt))); err != nil {
		return err
	}
	if pl.in, err = drv.MemAlloc(uint64(8 * c)); err != nil {
		return err
	}
	if pl.outD, err = drv.MemAlloc(uint64(4 * c * nt)); err != nil {
		return err
	}
	pl.cap = c
	return nil
}

// Score scores candidates with the tower: pair i is context ctx[i] of b
// and ad ads[i] of a, and z[i*tasks+t] = ⟨u_t, a_t⟩ + β_t for every task
// the tower trains (0 for the others) — the logits the CPU path computes
// from Run's output and the snapshot's vectors. The tower runs as in Run
// (one graph per chunk of contexts) and the dot products follow on the
// same lane, so the user vectors never leave the device.
func (t *UserTower) Score(b *engine.Batch, a *AdVectors, ctx, ads []int32, z []float32) error {
	u, err := t.acquire()
	if err != nil {
		return err
	}
	defer u.release()
	if err := u.cpu.Validate(b); err != nil {
		return err
	}
	nt, od := u.nt, u.w.OutDim
	if a.nt != nt || a.od != od {
		return fmt.Errorf("gpu: score: ad vectors of %d tasks × %d, the tower writes %d × %d", a.nt, a.od, nt, od)
	}
	if len(ctx) != len(ads) {
		return fmt.Errorf("gpu: score: %d contexts for %d ads", len(ctx), len(ads))
	}
	if len(z) < len(ads)*nt {
		return fmt.Errorf("gpu: score: output buffer holds %d values, want %d", len(z), len(ads)*nt)
	}
	for i := range ads {
		if ctx[i] < 0 || int(ctx[i]) >= b.U {
			return fmt.Errorf("gpu: score: ctx[%d] = %d, want 0..%d", i, ctx[i], b.U-1)
		}
		if ads[i] < 0 || int(ads[i]) >= a.n {
			return fmt.Errorf("gpu: score: ads[%d] = %d, want 0..%d", i, ads[i], a.n-1)
		}
	}
	a.refs.Add(1)
	defer a.release()
	if a.closed.Load() {
		return errors.New("gpu: score: ad vectors closed")
	}
	l := t.d.acquire()
	defer t.d.release(l)
	ul := u.lanes[l.id]
	if a.lanes[l.id] == nil {
		a.lanes[l.id] = &pairLane{}
	}
	pl := a.lanes[l.id]
	mb := t.d.maxBucket()
	var idx []int
	for c0 := 0; c0 < b.U; c0 += mb {
		n := min(b.U-c0, mb)
		idx = idx[:0]
		for i, c := range ctx {
			if int(c) >= c0 && int(c) < c0+n {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		bk := t.d.bucket(n)
		u.fill(ul, b, c0, n, bk)
		np := len(idx)
		err := l.do(func() error {
			drv := t.d.drv
			if err := pl.grow(drv, np, nt); err != nil {
				return err
			}
			ids := unsafe.Slice((*int32)(pl.stage), 2*np)
			for j, i := range idx {
				ids[j], ids[np+j] = ads[i], ctx[i]-int32(c0)
			}
			if err := ul.progs[bk].enqueue(); err != nil {
				return err
			}
			if err := drv.MemcpyHtoDAsync(pl.in, pl.stage, uint64(8*np), l.s); err != nil {
				return err
			}
			for k := range nt {
				if !u.cpu.HasTask(k) {
					continue
				}
				if err := l.launch(&kernels.RowDot{Out: uint64(pl.outD) + uint64(4*k*np), U: uint64(ul.out) + uint64(4*k*od),
					Ads: uint64(a.vec) + uint64(4*k*od), IDs: uint64(pl.in), Ctx: uint64(pl.in) + uint64(4*np),
					N: int32(np), D: int32(od), Ldu: int32(nt * od), Lda: int32(nt * od), Beta: u.cpu.Beta(k)}); err != nil {
					return err
				}
			}
			zs := unsafe.Add(pl.stage, 8*np)
			if err := drv.MemcpyDtoHAsync(zs, pl.outD, uint64(4*nt*np), l.s); err != nil {
				return err
			}
			if err := drv.StreamSynchronize(l.s); err != nil {
				return fmt.Errorf("gpu: score: %w", err)
			}
			zv := unsafe.Slice((*float32)(zs), nt*np)
			for k := range nt {
				has := u.cpu.HasTask(k)
				for j, i := range idx {
					if has {
						z[i*nt+k] = zv[k*np+j]
					} else {
						z[i*nt+k] = 0
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
