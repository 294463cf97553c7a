package index

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/tandemml/tandem/kernel"
)

// Searcher holds one goroutine's scratch for searching: the visited marks,
// the two heaps, the prepared query and the result buffer. The zero value
// is ready. It grows to the largest graph and ef it has served and is then
// reused, so searches in steady state allocate nothing. A Searcher must not
// be used by two searches at once; it may serve any number of graphs one
// after the other.
type Searcher struct {
	// visited[i] == epoch marks node i as seen by the current search;
	// each search takes the next epoch, so nothing is cleared between
	// searches (only when the counter wraps, once every 65535).
	visited []uint16
	epoch   uint16
	cand    minHeap
	res     maxHeap
	found   []item
	q       []float32
	batch   []int32
	dots    []float32
	out     []Result
	stats   Stats
	// graphOnly turns the exact-scan fallback of filtered searches off,
	// so that tests can measure the filtered traversal alone.
	graphOnly bool
}

// NewSearcher returns an empty Searcher (the zero value works as well).
func NewSearcher() *Searcher { return new(Searcher) }

// Stats describes the last search of a Searcher.
type Stats struct {
	// Distances counts the vectors the query was compared with.
	Distances int
	// Exact reports that the answer came from the exact scan (a filter
	// passing too few nodes for the graph to find enough of them).
	Exact bool
}

// Stats returns what the last search through s did.
func (s *Searcher) Stats() Stats { return s.stats }

// SearchOptions are the parameters of one search.
type SearchOptions struct {
	// K is the number of results wanted; it must be positive.
	K int
	// Ef is the size of the result list of the layer-0 beam search; the
	// best K of those are returned. Values below K (0 included) mean K;
	// negative values are an error.
	Ef int
	// Filter, when not nil, admits the ids that may be returned. Nodes it
	// rejects are still traversed, so that the graph stays connected.
	Filter func(id int32) bool
	// PassRate, when in (0, 1], is the caller's estimate of the share of
	// ids Filter admits. With it the search goes straight to the exact
	// scan over the admitted ids when that is the cheaper way; without it
	// the search estimates the rate while it explores. Ignored without a
	// Filter.
	PassRate float64
}

var searcherPool = sync.Pool{New: func() any { return new(Searcher) }}

// Search returns the k nearest vectors to q among those filter admits (all
// when filter is nil), best first: by squared distance for L2, by
// similarity or inner product for the other metrics. ef ≥ k is the beam
// width of the layer-0 search. See SearchWith.
func (g *Graph) Search(q []float32, k, ef int, filter func(id int32) bool, s *Searcher) ([]Result, error) {
	return g.SearchWith(q, SearchOptions{K: k, Ef: ef, Filter: filter}, s)
}

// SearchWith searches the graph for q; see SearchOptions.
//
// The results live in s and stay valid until s's next search; copy them to
// keep them. With a nil s a pooled Searcher is used and the results are a
// fresh slice owned by the caller. Fewer than K results come back only when
// fewer than K vectors are admitted.
//
// An error is returned, and nothing searched, when len(q) ≠ Dim(), q holds
// a NaN or an infinity or is too large to square in float32, a Cosine query
// is zero, K ≤ 0 or Ef < 0.
func (g *Graph) SearchWith(q []float32, o SearchOptions, s *Searcher) ([]Result, error) {
	if g == nil {
		return nil, errors.New("index: search of a nil Graph")
	}
	if o.K <= 0 {
		return nil, fmt.Errorf("index: k = %d, want > 0", o.K)
	}
	if o.Ef < 0 {
		return nil, fmt.Errorf("index: ef = %d, want ≥ 0", o.Ef)
	}
	if s == nil {
		ps := searcherPool.Get().(*Searcher)
		res, err := g.SearchWith(q, o, ps)
		res = slices.Clone(res)
		searcherPool.Put(ps)
		return res, err
	}
	s.stats = Stats{}
	qv, qn, err := g.prepare(s, q)
	if err != nil {
		return nil, err
	}
	s.out = s.out[:0]
	if g.n == 0 {
		return s.out, nil
	}
	k := min(o.K, g.n)
	ef := max(o.Ef, k)
	s.reserve(g)
	if o.Filter != nil && o.PassRate > 0 && o.PassRate <= 1 && !s.graphOnly && g.exactFirst(o.PassRate, ef) {
		g.scan(s, qv, qn, k, o.Filter)
		return g.finish(s, qv, k), nil
	}

	// Greedy descent through the upper layers, then the beam search of
	// layer 0.
	ep := g.entry
	epd := g.dist(qv, qn, ep)
	s.stats.Distances = 1
	for lc := g.maxLevel; lc > 0; lc-- {
		ep, epd = g.greedy(s, qv, qn, ep, epd, lc)
	}
	complete := g.search0(s, qv, qn, ep, epd, ef, o.Filter)
	if o.Filter != nil && (!complete || len(s.res) < k) && !s.graphOnly {
		g.scan(s, qv, qn, k, o.Filter)
	}
	return g.finish(s, qv, k), nil
}

// SearchExact returns the k nearest vectors among those filter admits by
// scanning all of them: the exact answer, for ground truth and for callers
// that want no approximation. Results and errors are as in SearchWith.
func (g *Graph) SearchExact(q []float32, k int, filter func(id int32) bool, s *Searcher) ([]Result, error) {
	if g == nil {
		return nil, errors.New("index: search of a nil Graph")
	}
	if k <= 0 {
		return nil, fmt.Errorf("index: k = %d, want > 0", k)
	}
	if s == nil {
		ps := searcherPool.Get().(*Searcher)
		res, err := g.SearchExact(q, k, filter, ps)
		res = slices.Clone(res)
		searcherPool.Put(ps)
		return res, err
	}
	s.stats = Stats{}
	qv, qn, err := g.prepare(s, q)
	if err != nil {
		return nil, err
	}
	s.out = s.out[:0]
	if g.n == 0 {
		return s.out, nil
	}
	s.reserve(g)
	k = min(k, g.n)
	g.scan(s, qv, qn, k, filter)
	return g.finish(s, qv, k), nil
}

// prepare copies q into s, zero padded to the stride, checks it and
// applies the metric's query transform (normalisation for Cosine, a zero
// extra coordinate for InnerProduct). It returns the prepared query and its
// squared norm (0 for RawIP).
func (g *Graph) prepare(s *Searcher, q []float32) ([]float32, float32, error) {
	if len(q) != g.dim {
		return nil, 0, fmt.Errorf("index: query has %d values, want %d", len(q), g.dim)
	}
	if cap(s.q) < g.stride {
		s.q = make([]float32, g.stride)
	}
	qv := s.q[:g.stride]
	copy(qv, q)
	clear(qv[g.dim:])
	sq := 0.0
	for j, v := range q {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, 0, fmt.Errorf("index: query column %d is %v", j, v)
		}
		sq += float64(v) * float64(v)
	}
	if sq > math.MaxFloat32/4 {
		return nil, 0, errors.New("index: query's squared norm overflows float32")
	}
	switch g.metric {
	case Cosine:
		if sq == 0 {
			return nil, 0, errors.New("index: zero query has no direction (cosine)")
		}
		inv := 1 / math.Sqrt(sq)
		for j := range g.dim {
			qv[j] = float32(float64(qv[j]) * inv)
		}
	case RawIP:
		return qv, 0, nil
	}
	return qv, dot(qv, qv), nil
}

// reserve sizes the scratch for g.
func (s *Searcher) reserve(g *Graph) {
	if len(s.visited) < g.n {
		s.visited = make([]uint16, g.n)
		s.epoch = 0
	}
	if need := max(scanBlock, g.m0+1); cap(s.batch) < need {
		s.batch = make([]int32, 0, need)
		s.dots = make([]float32, need)
	}
}

func (s *Searcher) nextEpoch() uint16 {
	s.epoch++
	if s.epoch == 0 {
		clear(s.visited)
		s.epoch = 1
	}
	return s.epoch
}

// greedy walks layer lc ≥ 1 towards q while a neighbour is nearer.
func (g *Graph) greedy(s *Searcher, qv []float32, qn float32, ep int32, epd float32, lc int) (int32, float32) {
	for changed := true; changed; {
		changed = false
		blk := g.block(ep, lc)
		nb := blk[1 : 1+blk[0]]
		g.dists(s.dots, qv, qn, nb)
		s.stats.Distances += len(nb)
		for i, e := range nb {
			if d := s.dots[i]; d < epd {
				ep, epd, changed = e, d, true
			}
		}
	}
	return ep, epd
}

// search0 is the beam search of layer 0 from ep, leaving up to ef admitted
// nodes in s.res. Nodes the filter rejects are expanded like the others
// but never enter s.res. The search stops when the nearest candidate left
// is farther than the farthest result and s.res holds ef nodes, or when no
// candidate is left. With a filter it also stops, and reports false, once
// it has compared more vectors than an exact scan of the admitted nodes
// would, at the admission rate it has seen so far.
func (g *Graph) search0(s *Searcher, qv []float32, qn float32, ep int32, epd float32, ef int, filter func(int32) bool) bool {
	epoch := s.nextEpoch()
	visited := s.visited[:g.n]
	visited[ep] = epoch
	s.cand = s.cand[:0]
	s.res = s.res[:0]
	s.cand.push(item{epd, ep})
	worst := float32(math.Inf(1))
	seen, passed := 1, 0
	if filter == nil || filter(ep) {
		s.res.push(item{epd, ep})
		worst = epd
		passed++
	}
	evals := 0
	m0, links := g.m0, g.links0
	complete := true
	for len(s.cand) > 0 {
		c := s.cand.pop()
		if c.d > worst && len(s.res) >= ef {
			break
		}
		o := int(c.id) * (m0 + 1)
		blk := links[o : o+m0+1 : o+m0+1]
		// Keep the unvisited neighbours without a branch per neighbour:
		// whether one was visited is close to a coin toss.
		batch := s.batch[:m0]
		nb := 0
		for _, e := range blk[1 : 1+blk[0]] {
			v := uint32(visited[e] ^ epoch)
			visited[e] = epoch
			batch[nb] = e
			nb += int((v | -v) >> 31)
		}
		if nb == 0 {
			continue
		}
		batch = batch[:nb]
		dists := s.dots[:nb]
		g.dists(dists, qv, qn, batch)
		evals += nb
		for i, e := range batch {
			d := dists[i]
			if len(s.res) < ef || d < worst {
				x := item{d, e}
				s.cand.push(x)
				if useAsm {
					prefetch1(&links[int(e)*(m0+1)])
				}
				if filter != nil {
					seen++
					if !filter(e) {
						continue
					}
					passed++
				}
				s.res.offer(x, ef)
				worst = s.res[0].d
			}
		}
		if filter != nil && !s.graphOnly && evals >= minSample && float64(evals) > g.scanCost(float64(passed)/float64(seen)) {
			complete = false
			break
		}
	}
	s.stats.Distances += evals
	return complete
}

// minSample is the number of comparisons a filtered search makes before
// it trusts its estimate of the admission rate.
const minSample = 256

// scanCost estimates the exact scan at admission rate p in units of one
// comparison made by the graph search (which reads a row at random and
// updates the heaps): a filter call and a comparison in the sequential scan
// are taken to cost scanIDWeight and scanRowWeight of that.
func (g *Graph) scanCost(p float64) float64 {
	n := float64(g.n)
	return n * (scanIDWeight + p*scanRowWeight)
}

// Cost weights, measured on the benchmark sets (dimension 32 and 784).
const (
	scanIDWeight  = 0.1
	scanRowWeight = 0.25
	// graphWork is the number of comparisons per unit of ef of an
	// unfiltered layer-0 search (7 to 25 for M = 16).
	graphWork = 8
)

// exactFirst reports whether, at admission rate p, the exact scan is
// expected to be cheaper than a filtered graph search with beam ef. The
// graph search is taken to compare about graphWork·ef/p vectors: it has to
// meet ef/p nodes to admit ef of them.
func (g *Graph) exactFirst(p float64, ef int) bool {
	return g.scanCost(p) <= graphWork*float64(ef)/p
}

// scanBlock is the number of rows the exact scan scores per kernel call.
const scanBlock = 256

// scan leaves the k nearest admitted nodes in s.res, comparing q with
// every admitted node.
func (g *Graph) scan(s *Searcher, qv []float32, qn float32, k int, filter func(int32) bool) {
	s.res = s.res[:0]
	s.stats.Exact = true
	stride := g.stride
	for start := 0; start < g.n; start += scanBlock {
		end := min(start+scanBlock, g.n)
		if filter == nil && g.metric != L2 {
			// Contiguous rows: the kernel package's dot products.
			dots := s.dots[:end-start]
			kernel.Dots(dots, qv, g.vecs[start*stride:end*stride], stride)
			for i, dt := range dots {
				id := start + i
				s.res.offer(item{qn + g.norms[id] - 2*dt, int32(id)}, k)
			}
			s.stats.Distances += end - start
			continue
		}
		batch := s.batch[:0]
		for id := start; id < end; id++ {
			if filter == nil || filter(int32(id)) {
				batch = append(batch, int32(id))
			}
		}
		dists := s.dots[:len(batch)]
		g.dists(dists, qv, qn, batch)
		for i, id := range batch {
			s.res.offer(item{dists[i], id}, k)
		}
		s.stats.Distances += len(batch)
	}
}

// finish turns the best k of s.res into results in s.out, scored for the
// caller's metric (the squared distance for L2, the inner product of the
// prepared query and row otherwise) and sorted best first.
func (g *Graph) finish(s *Searcher, qv []float32, k int) []Result {
	s.found = s.res.drain(s.found)
	found := s.found[:min(k, len(s.found))]
	out := s.out[:0]
	for _, x := range found {
		sc := x.d // the squared distance for L2
		if g.metric != L2 {
			sc = dot(qv, g.row(x.id))
		}
		out = append(out, Result{ID: x.id, Score: sc})
	}
	sortResults(out, g.metric)
	s.out = out
	return out
}

// sortResults orders results best first, equal scores by id.
func sortResults(r []Result, m Metric) {
	if m.higherIsBetter() {
		slices.SortFunc(r, byScoreDesc)
	} else {
		slices.SortFunc(r, byScoreAsc)
	}
}

func byScoreAsc(a, b Result) int {
	switch {
	case a.Score < b.Score:
		return -1
	case a.Score > b.Score:
		return 1
	}
	return int(a.ID) - int(b.ID)
}

func byScoreDesc(a, b Result) int {
	switch {
	case a.Score > b.Score:
		return -1
	case a.Score < b.Score:
		return 1
	}
	return int(a.ID) - int(b.ID)
}
