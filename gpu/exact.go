package gpu

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/kernels"
	"github.com/tandemml/tandem/index"
)

// ExactBatches are the query batch sizes an Exact index captures graphs for.
var ExactBatches = []int{1, 32}

// ExactAds is what exact retrieval keeps on the device for one route, in
// index node order: the vectors (N × Dim) and each node's filter fields.
type ExactAds struct {
	Vectors  []float32
	Dim      int
	Active   []uint8 // 1: active
	Surfaces []uint8 // bit s: eligible on surface s
	Product  []uint8 // product index (< 64)
	Bid      []float32
}

// Filter is one query's eligibility: a node passes when it is active,
// eligible on a surface in SurfaceBits, of a product in Products (bit p)
// and bids at least MinBid.
type Filter struct {
	SurfaceBits uint32
	Products    uint64
	MinBid      float32
}

// Exact scores every node of a route on the device and returns the top K
// by inner product among those the filter admits (ties: smaller node id).
type Exact struct {
	d                    *Device
	n                    int
	dim                  int
	kmax                 int
	ar                   arena
	vec                  cuda.Ptr
	act, surf, prod, bid cuda.Ptr
	lanes                []*exactLane
	refs                 atomic.Int64
	closed               atomic.Bool
	freed                sync.Once
}

type exactLane struct {
	sc    scratch
	stage unsafe.Pointer // products (Q u64) | q (Q×dim f32) | surface bits (Q u32) | min bid (Q f32)
	outH  unsafe.Pointer // Q×kmax values then Q×kmax ids
	progs map[int]*prog
}

// NewExact uploads a route's ads; kmax bounds the K of a search.
func (d *Device) NewExact(a ExactAds, kmax int) (*Exact, error) {
	n := len(a.Bid)
	if a.Dim <= 0 || len(a.Vectors) != n*a.Dim || len(a.Active) != n || len(a.Surfaces) != n || len(a.Product) != n {
		return nil, fmt.Errorf("gpu: exact ads: %d vectors of dim %d, %d active, %d surfaces, %d products for %d bids",
			len(a.Vectors), a.Dim, len(a.Active), len(a.Surfaces), len(a.Product), n)
	}
	if i := slices.IndexFunc(a.Product, func(p uint8) bool { return p >= 64 }); i >= 0 {
		return nil, fmt.Errorf("gpu: exact ads: node %d has product %d, the device filter admits products 0..63", i, a.Product[i])
	}
	if kmax <= 0 {
		return nil, fmt.Errorf("gpu: exact: kmax = %d", kmax)
	}
	e := &Exact{d: d, n: n, dim: a.Dim, kmax: kmax, ar: arena{drv: d.drv}, lanes: make([]*exactLane, len(d.lanes))}
	e.refs.Store(1)
	l := d.acquire()
	defer d.release(l)
	err := l.do(func() error {
		var err error
		up := func(b []byte) cuda.Ptr {
			if err != nil {
				return 0
			}
			var p cuda.Ptr
			p, err = e.ar.upload(l, b)
			return p
		}
		e.vec = up(f32bytes(a.Vectors))
		e.act, e.surf, e.prod = up(a.Active), up(a.Surfaces), up(a.Product)
		e.bid = up(f32bytes(a.Bid))
		return err
	})
	if err == nil {
		for _, ln := range d.lanes {
			if err = ln.do(func() error { return e.buildLane(ln) }); err != nil {
				break
			}
		}
	}
	if err != nil {
		_ = l.do(e.free)
		return nil, err
	}
	return e, nil
}

func (e *Exact) stageBytes(q int) int { return q * (4*e.dim + 4 + 8 + 4) }

func (e *Exact) buildLane(l *lane) error {
	d := e.d
	el := &exactLane{sc: scratch{a: arena{drv: d.drv}}, progs: map[int]*prog{}}
	e.lanes[l.id] = el
	qmax := ExactBatches[len(ExactBatches)-1]
	var err error
	if el.stage, err = d.drv.MemAllocHost(uint64(e.stageBytes(qmax))); err != nil {
		return err
	}
	if el.outH, err = d.drv.MemAllocHost(uint64(8 * qmax * e.kmax)); err != nil {
		return err
	}
	for i := len(ExactBatches) - 1; i >= 0; i-- {
		q := ExactBatches[i]
		el.sc.reset()
		p := e.program(l, el, q)
		if p.err != nil {
			return p.err
		}
		el.progs[q] = p
		if !d.o.NoGraphs {
			if err := p.capture(); err != nil {
				return err
			}
		}
	}
	return nil
}

// topKChunk is the chunk a TopK thread scans: several times K so that
// each stage shrinks the candidates, small enough for many threads.
func topKChunk(k int) int { return max(8*k, 1024) }

func (e *Exact) program(l *lane, el *exactLane, q int) *prog {
	p := &prog{l: l, sc: &el.sc, p: e.d.o.Precision}
	in, err := el.sc.get(e.stageBytes(q))
	p.fail(err)
	p.h2d("inputs", in, el.stage, e.stageBytes(q))
	prods := in
	qv := prods + cuda.Ptr(8*q)
	sbits := qv + cuda.Ptr(4*q*e.dim)
	minBid := sbits + cuda.Ptr(4*q)
	ldm := (e.n + 31) / 32
	mask, err := el.sc.get(4 * q * ldm)
	p.fail(err)
	p.kernel("exact.eligible", &kernels.Eligible{Mask: uint64(mask), Active: uint64(e.act), Surfaces: uint64(e.surf), Product: uint64(e.prod),
		Bid: uint64(e.bid), SurfaceBit: uint64(sbits), Products: uint64(prods), MinBid: uint64(minBid),
		Queries: int32(q), N: int32(e.n), Ldm: int32(ldm)}, 0, 0, 0, 0)
	scores := p.floats(q * e.n)
	blas := e.d.api.BLAS
	compute := cuda.Compute32FPedantic
	if p.p == TF32 {
		compute = cuda.Compute32FFastTF32
	}
	vec, n, dim := e.vec, e.n, e.dim
	p.add(step{name: "exact.scores", out: scores, rows: q, cols: n, ld: n, run: func() error {
		return blas.RowMajorGemm(l.blas, false, true, q, n, dim, l.konstPtr(konstOne), qv, cuda.R32F, dim,
			vec, cuda.R32F, dim, l.konstPtr(konstZero), scores, cuda.R32F, n, compute)
	}})
	k, chunk := e.kmax, topKChunk(e.kmax)
	stages := kernels.TopKStages(n, k, chunk)
	width := stages[0].Chunks * k
	vals := [2]cuda.Ptr{p.floats(q * width), p.floats(q * width)}
	ids := [2]cuda.Ptr{p.floats(q * width), p.floats(q * width)}
	src, srcIdx, ldv, m := scores, cuda.Ptr(0), n, mask
	for i, st := range stages {
		o := i % 2
		p.kernel(fmt.Sprintf("exact.topk.%d", i), &kernels.TopK{OutVal: uint64(vals[o]), OutIdx: uint64(ids[o]), Val: uint64(src), Idx: uint64(srcIdx),
			Mask: uint64(m), Queries: int32(q), N: int32(st.N), Ldv: int32(ldv), Ldm: int32(ldm), Chunk: int32(chunk), K: int32(k), Ldo: int32(st.Chunks * k)}, 0, 0, 0, 0)
		src, srcIdx, ldv, m = vals[o], ids[o], st.Chunks*k, 0
	}
	// The last stage has one chunk: K values and ids per query, row stride K.
	p.d2h("values", el.outH, src, 4*q*k)
	p.d2h("ids", unsafe.Add(el.outH, 4*q*k), srcIdx, 4*q*k)
	return p
}

// Search returns the top k nodes for each query (queries × Dim, one
// filter each), best first; a query with fewer admitted nodes gets fewer.
func (e *Exact) Search(queries []float32, filters []Filter, k int) ([][]index.Result, error) {
	nq := len(filters)
	if k <= 0 || k > e.kmax {
		return nil, fmt.Errorf("gpu: exact search k = %d, want 1..%d", k, e.kmax)
	}
	if len(queries) != nq*e.dim {
		return nil, fmt.Errorf("gpu: exact search: %d query values for %d filters of dim %d", len(queries), nq, e.dim)
	}
	for i, v := range queries {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("gpu: exact search: query %d value %d is %v", i/e.dim, i%e.dim, v)
		}
	}
	e.refs.Add(1)
	defer e.release()
	if e.closed.Load() {
		return nil, errors.New("gpu: exact index closed")
	}
	l := e.d.acquire()
	defer e.d.release(l)
	el := e.lanes[l.id]
	out := make([][]index.Result, 0, nq)
	qmax := ExactBatches[len(ExactBatches)-1]
	for q0 := 0; q0 < nq; q0 += qmax {
		qn := min(nq-q0, qmax)
		qb := ExactBatches[slices.IndexFunc(ExactBatches, func(b int) bool { return b >= qn })]
		st := unsafe.Slice((*byte)(el.stage), e.stageBytes(qb))
		clear(st)
		pr := unsafe.Slice((*uint64)(el.stage), qb)
		f := unsafe.Slice((*float32)(unsafe.Add(el.stage, 8*qb)), qb*e.dim)
		copy(f, queries[q0*e.dim:(q0+qn)*e.dim])
		sb := unsafe.Slice((*uint32)(unsafe.Add(el.stage, 8*qb+4*qb*e.dim)), qb)
		mb := unsafe.Slice((*float32)(unsafe.Add(el.stage, 12*qb+4*qb*e.dim)), qb)
		for i, fl := range filters[q0 : q0+qn] {
			sb[i], pr[i], mb[i] = fl.SurfaceBits, fl.Products, fl.MinBid
		}
		if err := l.do(el.progs[qb].run); err != nil {
			return nil, err
		}
		vals := unsafe.Slice((*float32)(el.outH), qb*e.kmax)
		ids := unsafe.Slice((*int32)(unsafe.Add(el.outH, 4*qb*e.kmax)), qb*e.kmax)
		for i := range qn {
			var rs []index.Result
			for j := range k {
				id := ids[i*e.kmax+j]
				if id < 0 {
					break
				}
				rs = append(rs, index.Result{ID: id, Score: vals[i*e.kmax+j]})
			}
			out = append(out, rs)
		}
	}
	return out, nil
}

// Close frees the index once in-flight searches finish.
func (e *Exact) Close() {
	if !e.closed.Swap(true) {
		e.release()
	}
}

func (e *Exact) release() {
	if e.refs.Add(-1) == 0 {
		e.freed.Do(func() { _ = e.d.lanes[0].do(e.free) })
	}
}

func (e *Exact) free() error {
	var errs []error
	for _, el := range e.lanes {
		if el == nil {
			continue
		}
		for _, p := range el.progs {
			errs = append(errs, p.free())
		}
		errs = append(errs, el.sc.a.free())
		if el.stage != nil {
			errs = append(errs, e.d.drv.MemFreeHost(el.stage))
		}
		if el.outH != nil {
			errs = append(errs, e.d.drv.MemFreeHost(el.outH))
		}
	}
	e.lanes = nil
	errs = append(errs, e.ar.free())
	return errors.Join(errs...)
}

// SearchOne is Search for one query.
func (e *Exact) SearchOne(q []float32, k int, surfaceBits uint32, products uint64, minBid float32) ([]index.Result, error) {
	rs, err := e.Search(q, []Filter{{SurfaceBits: surfaceBits, Products: products, MinBid: minBid}}, k)
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// KMax is the largest k a search may ask for.
func (e *Exact) KMax() int { return e.kmax }

// RouteAds lays out route r's index nodes of snapshot c for NewExact: the
// a_t of the route's index task and each node's filter fields.
func RouteAds(c *catalog.Catalog, r *catalog.Route) ExactAds {
	n, od := len(r.Ads), c.OutDim
	a := ExactAds{Vectors: make([]float32, n*od), Dim: od, Active: make([]uint8, n), Surfaces: make([]uint8, n),
		Product: make([]uint8, n), Bid: make([]float32, n)}
	for i, ad := range r.Ads {
		copy(a.Vectors[i*od:(i+1)*od], c.Vector(ad, r.Pos, r.Task))
		if c.Active[ad] {
			a.Active[i] = 1
		}
		a.Surfaces[i], a.Product[i], a.Bid[i] = c.Eligible[ad], c.Product[ad], c.Bid[ad]
	}
	return a
}
