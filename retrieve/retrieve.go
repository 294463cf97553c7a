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
	kp, ef := o.Limits()
	sc := pool.Get().(*Scratch)
	defer pool.Put(sc)
	routes, admits := Routes(c, u.Surface, o.Products)
	nt, od := len(c.Tasks), c.OutDim
	click := slices.Index(c.Tasks, "click")
	sc.hits = sc.hits[:0]
	sc.u = slices.Grow(sc.u[:0], len(c.Routes)*nt*od)[:len(c.Routes)*nt*od]
	for i, ri := range routes {
		r := c.Routes[ri]
		t0 := time.Now()
		uv := sc.u[ri*nt*od : (ri+1)*nt*od]
		if err := UserVectors(c, ri, u, sc, uv); err != nil {
			return nil, err
		}
		t1 := time.Now()
		res, err := search(c, r, uv[r.Task*od:(r.Task+1)*od], kp, ef, u.Surface, admits[i], o, sc)
		if err != nil {
			return nil, fmt.Errorf("retrieve: route %s: %w", r.Name, err)
		}
		t2 := time.Now()
		// Utility needs pCTR only; the other tasks are scored for the
		// winners below.
		for _, h := range res {
			a := r.Ads[h.ID]
			sc.hits = append(sc.hits, Hit{Row: a, Route: ri, Utility: utility(c, r, uv, a, click)})
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
	if len(routes) > 1 {
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
		h.Scores = scores[i*nt : (i+1)*nt : (i+1)*nt]
		taskScores(c, r, sc.u[h.Route*nt*od:(h.Route+1)*nt*od], h.Row, h.Scores)
	}
	if tm := o.Timings; tm != nil {
		tm.Score += time.Since(t3)
	}
	return out, nil
}

// Limits returns K′ (the index results rescored per route: o.KPrime, by
// default max(4k, 200), at least k) and the HNSW beam width.
func (o Options) Limits() (kp, ef int) {
	kp = o.KPrime
	if kp <= 0 {
		kp = max(4*o.K, 200)
	}
	kp = max(kp, o.K)
	return kp, max(o.Ef, kp)
}

// Routes returns the routes (indexes into c.Routes, ascending) that the
// routing map gives the surface's admitted products (nil: all), and per
// route which products it admits.
func Routes(c *catalog.Catalog, surface int, products []int) ([]int, [][]bool) {
	cfg := c.Cfg
	if products == nil {
		products = make([]int, len(cfg.Products))
		for i := range products {
			products[i] = i
		}
	}
	sname := cfg.Surfaces[surface].Name
	perRoute := map[int][]bool{}
	for _, p := range products {
		name := snapshot.RouteFor(c.Manifest.Routing, sname, cfg.Products[p])
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
	routes := slices.Sorted(func(yield func(int) bool) {
		for r := range perRoute {
			if !yield(r) {
				return
			}
		}
	})
	admits := make([][]bool, len(routes))
	for i, r := range routes {
		admits[i] = perRoute[r]
	}
	return routes, admits
}

// UserVectors runs route ri's user tower for u into uv (tasks × OutDim).
func UserVectors(c *catalog.Catalog, ri int, u *query.User, sc *Scratch, uv []float32) error {
	if sc == nil {
		sc = pool.Get().(*Scratch)
		defer pool.Put(sc)
	}
	r := c.Routes[ri]
	query.ResetUsers(&sc.b)
	c.Schema.FillUser(&sc.b, u, c, r.User.UserDenseDefaults())
	if err := r.Runner().Run(sc.w, &sc.b, uv); err != nil {
		return fmt.Errorf("retrieve: route %s: %w", r.Name, err)
	}
	return nil
}

// Candidate is one ad of a route's search with everything the final
// merge needs: its inner product with the route's query, its utility and
// its per-task scores.
type Candidate struct {
	Row     int32
	Score   float32
	Utility float64
	Scores  []float32
}

// SearchRoute returns route ri's top kp admitted ads by inner product
// with uv's index-task vector (best first), scored as Retrieve scores its
// hits: the shard side of sharded retrieval.
func SearchRoute(c *catalog.Catalog, ri int, uv []float32, surface int, admit []bool, o Options) ([]Candidate, error) {
	sc := pool.Get().(*Scratch)
	defer pool.Put(sc)
	r := c.Routes[ri]
	nt, od := len(c.Tasks), c.OutDim
	if len(uv) != nt*od {
		return nil, fmt.Errorf("retrieve: route %s: %d user values, want %d tasks × %d", r.Name, len(uv), nt, od)
	}
	kp, ef := o.Limits()
	res, err := search(c, r, uv[r.Task*od:(r.Task+1)*od], kp, ef, surface, admit, o, sc)
	if err != nil {
		return nil, fmt.Errorf("retrieve: route %s: %w", r.Name, err)
	}
	click := slices.Index(c.Tasks, "click")
	out := make([]Candidate, len(res))
	scores := make([]float32, len(res)*nt)
	for i, h := range res {
		a := r.Ads[h.ID]
		out[i] = Candidate{Row: a, Score: h.Score, Utility: utility(c, r, uv, a, click), Scores: scores[i*nt : (i+1)*nt : (i+1)*nt]}
		taskScores(c, r, uv, a, out[i].Scores)
	}
	return out, nil
}

// search runs the route's index (or scan) for q under the request's filter.
func search(c *catalog.Catalog, r *catalog.Route, q []float32, kp, ef, surface int, admit []bool, o Options, sc *Scratch) ([]index.Result, error) {
	bit := uint8(1) << surface
	filter := func(id int32) bool {
		a := r.Ads[id]
		return c.Active[a] && c.Eligible[a]&bit != 0 && admit[c.Product[a]] && c.Bid[a] >= o.MinBid
	}
	switch o.Mode {
	case Exact:
		return r.Graph.SearchExact(q, kp, filter, sc.s)
	case GPUExact:
		return searchDevice(r, q, kp, bit, admit, o.MinBid)
	}
	return r.Graph.SearchWith(q, index.SearchOptions{K: kp, Ef: ef, Filter: filter}, sc.s)
}

// utility is bid × pCTR of ad row a for the route's user vectors uv.
func utility(c *catalog.Catalog, r *catalog.Route, uv []float32, a int32, click int) float64 {
	if click < 0 || !r.User.HasTask(click) {
		return 0
	}
	od := c.OutDim
	var z [1]float32
	kernel.Dots(z[:], uv[click*od:(click+1)*od], c.Vector(a, r.Pos, click), od)
	return float64(c.Bid[a]) * float64(sigmoid(z[0]+r.User.Beta(click)))
}

// taskScores writes σ(⟨u_t, a_t⟩ + β_t) of ad row a per task into dst.
func taskScores(c *catalog.Catalog, r *catalog.Route, uv []float32, a int32, dst []float32) {
	od := c.OutDim
	var z [1]float32
	for t := range dst {
		if r.User.HasTask(t) {
			kernel.Dots(z[:], uv[t*od:(t+1)*od], c.Vector(a, r.Pos, t), od)
			dst[t] = sigmoid(z[0] + r.User.Beta(t))
		}
	}
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
