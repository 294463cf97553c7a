// Package retrieve is L1 candidate retrieval (SYSTEM.md §4): the user tower
// of every route that serves the request's surface and admitted products,
// an ANN search of the route's index for the top K′ by ⟨u, a⟩ among the
// ads the filters admit, per-task scores σ(⟨u_t, a_t⟩ + β_t) from the
// stored a_t, and the top k by utility (bid × pCTR) over all routes.
//
// Filters apply inside the graph traversal (index.SearchOptions.Filter): an
// ad must be active, eligible on the request's surface, of an admitted
// product routed to the route, and bid at least the minimum. Exact mode
// scans the admitted ads instead of walking the graph.
package retrieve

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/kernel"
	"github.com/tandemml/tandem/query"
	"github.com/tandemml/tandem/snapshot"
)

// Mode is how the index is searched.
type Mode int

const (
	// HNSW walks the route's graph.
	HNSW Mode = iota
	// Exact scans every admitted ad.
	Exact
	// GPUExact scores every admitted ad on the GPU (the routes' Exact
	// indexes, loaded by serve --device gpu --retrieval gpu-exact).
	GPUExact
)

// ParseMode reads "hnsw", "exact" or "gpu-exact".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "hnsw", "":
		return HNSW, nil
	case "exact":
		return Exact, nil
	case "gpu-exact":
		return GPUExact, nil
	}
	return 0, fmt.Errorf("retrieval mode %q: want hnsw, exact or gpu-exact", s)
}

// String is the mode's flag value.
func (m Mode) String() string {
	switch m {
	case Exact:
		return "exact"
	case GPUExact:
		return "gpu-exact"
	}
	return "hnsw"
}

// Options are one call's parameters.
type Options struct {
	K int
	// Products admitted (indexes into the config's products; nil: all).
	Products []int
	MinBid   float32
	Mode     Mode
	// KPrime is the number of index results rescored per route (default
	// max(4k, 200)); Ef the beam width (default KPrime).
	KPrime, Ef int
	// Timings, when set, receives the time spent per stage.
	Timings *Timings
}

// Timings splits a call's time by stage, summed over routes.
type Timings struct {
	UserTower, Search, Score time.Duration
}

// Hit is one retrieved ad.
type Hit struct {
	Row     int32 // the ad's row in the catalog
	Route   int   // index into Catalog.Routes
	Scores  []float32
	Utility float64
}

// Scratch is one goroutine's reusable state.
type Scratch struct {
	w    *engine.Worker
	b    engine.Batch
	u    []float32
	s    *index.Searcher
	hits []Hit
}

var pool = sync.Pool{New: func() any { return &Scratch{w: engine.NewWorker(), s: index.NewSearcher()} }}

// Retrieve returns the top o.K ads for u, best first. The Scores of the
// hits are fresh slices, kept by the caller.
func Retrieve(c *catalog.Catalog, u *query.User, o Options) ([]Hit, error) {
	if o.K <= 0 {
		return nil, fmt.Errorf("retrieve: k = %d", o.K)
	}
	kp := o.KPrime
	if kp <= 0 {
		kp = max(4*o.K, 200)
	}
	kp = max(kp, o.K)
	ef := max(o.Ef, kp)
	sc := pool.Get().(*Scratch)
	defer pool.Put(sc)
	cfg := c.Cfg
	surface := cfg.Surfaces[u.Surface].Name
	products := o.Products
	if products == nil {
		products = make([]int, len(cfg.Products))
		for i := range products {
			products[i] = i
		}
	}
	// Routes serving (surface, product) for each admitted product.
	perRoute := map[int][]bool{}
	for _, p := range products {
		name := snapshot.RouteFor(c.Manifest.Routing, surface, cfg.Products[p])
		if name == "" && len(c.Manifest.Routing) == 0 && len(c.Routes) == 1 {
			name = c.Routes[0].Name // a snapshot written before routing maps were stored
		}
		r := slices.IndexFunc(c.Routes, func(r *catalog.Route) bool { return r.Name == name })
		if r < 0 {
			continue
		}
		if perRoute[r] == nil {
			perRoute[r] = make([]bool, len(cfg.Products))
		}
		perRoute[r][p] = true
	}
	nt := len(c.Tasks)
	click := slices.Index(c.Tasks, "click")
	sc.hits = sc.hits[:0]
	bit := uint8(1) << u.Surface
	od := c.OutDim
	sc.u = slices.Grow(sc.u[:0], len(c.Routes)*nt*od)[:len(c.Routes)*nt*od]
	var z [1]float32
	for _, ri := range slices.Sorted(func(yield func(int) bool) {
		for r := range perRoute {
			if !yield(r) {
				return
			}
		}
	}) {
		r := c.Routes[ri]
		admit := perRoute[ri]
		t0 := time.Now()
		query.ResetUsers(&sc.b)
		c.Schema.FillUser(&sc.b, u, c, r.User.UserDenseDefaults())
		uv := sc.u[ri*nt*od : (ri+1)*nt*od]
		if err := r.Runner().Run(sc.w, &sc.b, uv); err != nil {
			return nil, fmt.Errorf("retrieve: route %s: %w", r.Name, err)
		}
		q := uv[r.Task*od : (r.Task+1)*od]
		filter := func(id int32) bool {
			a := r.Ads[id]
			return c.Active[a] && c.Eligible[a]&bit != 0 && admit[c.Product[a]] && c.Bid[a] >= o.MinBid
		}
		t1 := time.Now()
		var res []index.Result
		var err error
		switch o.Mode {
		case Exact:
			res, err = r.Graph.SearchExact(q, kp, filter, sc.s)
		case GPUExact:
			res, err = searchDevice(r, q, kp, bit, admit, o.MinBid)
		default:
			res, err = r.Graph.SearchWith(q, index.SearchOptions{K: kp, Ef: ef, Filter: filter}, sc.s)
		}
		if err != nil {
			return nil, fmt.Errorf("retrieve: route %s: %w", r.Name, err)
		}
		t2 := time.Now()
		// Utility needs pCTR only; the other tasks are scored for the
		// winners below.
		for _, h := range res {
			a := r.Ads[h.ID]
			util := 0.0
			if click >= 0 && r.User.HasTask(click) {
				kernel.Dots(z[:], uv[click*od:(click+1)*od], c.Vector(a, r.Pos, click), od)
				util = float64(c.Bid[a]) * float64(sigmoid(z[0]+r.User.Beta(click)))
			}
			sc.hits = append(sc.hits, Hit{Row: a, Route: ri, Utility: util})
		}
		if tm := o.Timings; tm != nil {
			tm.UserTower += t1.Sub(t0)
			tm.Search += t2.Sub(t1)
			tm.Score += time.Since(t2)
		}
	}
	t3 := time.Now()
	slices.SortFunc(sc.hits, func(a, b Hit) int {
		if c := cmp.Compare(b.Utility, a.Utility); c != 0 {
			return c
		}
		return cmp.Compare(c.AdIDs[a.Row], c.AdIDs[b.Row])
	})
	// An ad two routes returned keeps its best entry.
	out := make([]Hit, 0, o.K)
	var seen map[int32]bool
	if len(perRoute) > 1 {
		seen = map[int32]bool{}
	}
	for _, h := range sc.hits {
		if len(out) == o.K {
			break
		}
		if seen != nil {
			if seen[h.Row] {
				continue
			}
			seen[h.Row] = true
		}
		out = append(out, h)
	}
	scores := make([]float32, len(out)*nt)
	for i := range out {
		h := &out[i]
		r := c.Routes[h.Route]
		uv := sc.u[h.Route*nt*od : (h.Route+1)*nt*od]
		h.Scores = scores[i*nt : (i+1)*nt : (i+1)*nt]
		for t := range nt {
			if r.User.HasTask(t) {
				kernel.Dots(z[:], uv[t*od:(t+1)*od], c.Vector(h.Row, r.Pos, t), od)
				h.Scores[t] = sigmoid(z[0] + r.User.Beta(t))
			}
		}
	}
	if tm := o.Timings; tm != nil {
		tm.Score += time.Since(t3)
	}
	return out, nil
}

// searchDevice runs the route's exact index on the device with the same
// filter as the CPU paths.
func searchDevice(r *catalog.Route, q []float32, kp int, bit uint8, admit []bool, minBid float32) ([]index.Result, error) {
	if r.Exact == nil {
		return nil, fmt.Errorf("route %s has no device index (gpu-exact needs a GPU)", r.Name)
	}
	if kp > r.Exact.KMax() {
		return nil, fmt.Errorf("k' = %d is above the device index's %d", kp, r.Exact.KMax())
	}
	var products uint64
	for p, ok := range admit {
		if ok {
			if p >= 64 {
				return nil, fmt.Errorf("product %d: gpu-exact admits products 0..63", p)
			}
			products |= 1 << p
		}
	}
	return r.Exact.SearchOne(q, kp, uint32(bit), products, minBid)
}

func sigmoid(z float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(z))))
}
