package index

import (
	"slices"
	"sync"
	"sync/atomic"
)

// builder is one inserting goroutine: its scratch, and the shared state of
// a build in progress.
type builder struct {
	g  *Graph
	sh *shared

	visited []uint16
	epoch   uint16
	cand    minHeap
	res     maxHeap
	found   []item  // a layer search's results, nearest first
	sel     []item  // neighbours picked for the new node
	kept    []item  // neighbours kept when a full list is pruned
	pool    []item  // a full list plus the new node, while it is pruned
	nb      []int32 // a copy of a neighbour list
	batch   []int32 // unvisited neighbours, scored together
	dots    []float32
}

// shared is what the inserting goroutines of one build have in common.
type shared struct {
	parallel bool
	locks    []sync.Mutex // one per node, guarding its neighbour lists
	top      sync.Mutex   // guards entry and maxLevel
}

func (g *Graph) build(threads int) {
	if g.n == 0 {
		return
	}
	threads = min(threads, g.n)
	sh := &shared{parallel: threads > 1}
	if sh.parallel {
		sh.locks = make([]sync.Mutex, g.n)
	}
	b0 := newBuilder(g, sh)
	b0.insert(0)
	if !sh.parallel {
		for i := 1; i < g.n; i++ {
			b0.insert(int32(i))
		}
		return
	}
	var next atomic.Int64
	next.Store(1)
	var wg sync.WaitGroup
	for t := range threads {
		b := b0
		if t > 0 {
			b = newBuilder(g, sh)
		}
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(g.n) {
					return
				}
				b.insert(int32(i))
			}
		})
	}
	wg.Wait()
}

func newBuilder(g *Graph, sh *shared) *builder {
	return &builder{
		g:       g,
		sh:      sh,
		visited: make([]uint16, g.n),
		dots:    make([]float32, g.m0+1),
		batch:   make([]int32, 0, g.m0+1),
		nb:      make([]int32, 0, g.m0+1),
	}
}

func (b *builder) lock(id int32) {
	if b.sh.parallel {
		b.sh.locks[id].Lock()
	}
}

func (b *builder) unlock(id int32) {
	if b.sh.parallel {
		b.sh.locks[id].Unlock()
	}
}

// neighbours copies node id's list on layer lc into b.nb.
func (b *builder) neighbours(id int32, lc int) []int32 {
	b.lock(id)
	blk := b.g.block(id, lc)
	b.nb = append(b.nb[:0], blk[1:1+blk[0]]...)
	b.unlock(id)
	return b.nb
}

func (b *builder) nextEpoch() uint16 {
	b.epoch++
	if b.epoch == 0 {
		clear(b.visited)
		b.epoch = 1
	}
	return b.epoch
}

// insert links node q into the graph (Algorithm 1 of the paper).
func (b *builder) insert(q int32) {
	g := b.g
	lvl := int(g.levels[q])

	// The entry point. A node that will become the new top keeps the lock
	// for its whole insertion, so that no other insertion starts from a
	// level that is not linked yet.
	holdTop := false
	if b.sh.parallel {
		b.sh.top.Lock()
		holdTop = true
	}
	ep, top := g.entry, g.maxLevel
	if ep < 0 {
		g.entry, g.maxLevel = q, lvl
		if holdTop {
			b.sh.top.Unlock()
		}
		return
	}
	if holdTop && lvl <= top {
		b.sh.top.Unlock()
		holdTop = false
	}

	qv := g.row(q)
	qn := g.norms[q]
	epd := g.dist(qv, qn, ep)
	for lc := top; lc > lvl; lc-- {
		ep, epd = b.greedy(qv, qn, ep, epd, lc)
	}
	for lc := min(top, lvl); lc >= 0; lc-- {
		b.found = b.searchLayer(qv, qn, ep, epd, g.efc, lc)
		b.sel = b.heuristic(b.sel[:0], b.found, g.m)
		b.lock(q)
		blk := g.block(q, lc)
		blk[0] = int32(len(b.sel))
		for i, s := range b.sel {
			blk[1+i] = s.id
		}
		b.unlock(q)
		for _, s := range b.sel {
			b.connect(s.id, q, s.d, lc)
		}
		ep, epd = b.found[0].id, b.found[0].d
	}
	if lvl > top {
		g.entry, g.maxLevel = q, lvl
	}
	if holdTop {
		b.sh.top.Unlock()
	}
}

// greedy walks layer lc from ep towards q, always to the nearest neighbour,
// until no neighbour is nearer (a search with ef = 1).
func (b *builder) greedy(qv []float32, qn float32, ep int32, epd float32, lc int) (int32, float32) {
	g := b.g
	for changed := true; changed; {
		changed = false
		nb := b.neighbours(ep, lc)
		g.dists(b.dots, qv, qn, nb)
		for i, e := range nb {
			if d := b.dots[i]; d < epd {
				ep, epd, changed = e, d, true
			}
		}
	}
	return ep, epd
}

// searchLayer is the beam search of layer lc from ep (Algorithm 2): it
// returns up to ef nodes nearest to q, nearest first.
func (b *builder) searchLayer(qv []float32, qn float32, ep int32, epd float32, ef, lc int) []item {
	g := b.g
	epoch := b.nextEpoch()
	b.visited[ep] = epoch
	b.cand = b.cand[:0]
	b.res = b.res[:0]
	b.cand.push(item{epd, ep})
	b.res.push(item{epd, ep})
	for len(b.cand) > 0 {
		c := b.cand.pop()
		if c.d > b.res[0].d && len(b.res) >= ef {
			break
		}
		nb := b.neighbours(c.id, lc)
		batch := b.batch[:0]
		for _, e := range nb {
			if b.visited[e] != epoch {
				b.visited[e] = epoch
				batch = append(batch, e)
			}
		}
		g.dists(b.dots, qv, qn, batch)
		for i, e := range batch {
			d := b.dots[i]
			if len(b.res) < ef || d < b.res[0].d {
				x := item{d, e}
				b.cand.push(x)
				b.res.offer(x, ef)
			}
		}
	}
	return b.res.drain(b.found)
}

// heuristic picks up to m neighbours from cands (nearest first) by the
// paper's Algorithm 4, as hnswlib runs it (no extension of the candidates,
// pruned ones not kept): a candidate is taken when it is nearer to the base
// node than to every neighbour taken before it. Fewer than m candidates
// are all taken.
func (b *builder) heuristic(out, cands []item, m int) []item {
	if len(cands) < m {
		return append(out, cands...)
	}
	g := b.g
	for _, e := range cands {
		if len(out) >= m {
			break
		}
		good := true
		for _, r := range out {
			if g.pairDist(e.id, r.id) < e.d {
				good = false
				break
			}
		}
		if good {
			out = append(out, e)
		}
	}
	return out
}

// connect adds q, at distance d, to e's list on layer lc; a full list is
// pruned back to capacity by the heuristic, with e as the base node.
func (b *builder) connect(e, q int32, d float32, lc int) {
	g := b.g
	capLc := g.capacity(lc)
	b.lock(e)
	defer b.unlock(e)
	blk := g.block(e, lc)
	cnt := int(blk[0])
	if cnt < capLc {
		blk[1+cnt] = q
		blk[0]++
		return
	}
	ids := blk[1 : 1+cnt]
	ev := g.row(e)
	en := g.norms[e]
	g.dists(b.dots, ev, en, ids)
	b.pool = b.pool[:0]
	for i, x := range ids {
		b.pool = append(b.pool, item{b.dots[i], x})
	}
	b.pool = append(b.pool, item{d, q})
	slices.SortFunc(b.pool, cmpItem)
	b.kept = b.heuristic(b.kept[:0], b.pool, capLc)
	blk[0] = int32(len(b.kept))
	for i, s := range b.kept {
		blk[1+i] = s.id
	}
}

func cmpItem(a, b item) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}
