package shard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// Hit is one scored ad. A higher score is better; equal scores order by ID ascending.
type Hit struct {
	ID    int64
	Score float32
}

// better reports whether a ranks before b: the one order Gather merges by and Searchers answer in.
func better(a, b Hit) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.ID < b.ID
}

// compare is better as a three-way comparison for the slices package.
func compare(a, b Hit) int {
	switch {
	case better(a, b):
		return -1
	case better(b, a):
		return 1
	}
	return 0
}

// Searcher answers for one shard: its best limit hits, best first (score descending, ties by ID ascending),
// fewer only when the shard holds fewer. Scores must not be NaN. Search is called concurrently for different
// shards, and again for the same shard with a larger limit when the merge needs more of it. Gather reads the
// returned slice and never changes it.
type Searcher interface {
	Search(ctx context.Context, shard, limit int) ([]Hit, error)
}

// SearcherFunc is a function as a [Searcher].
type SearcherFunc func(ctx context.Context, shard, limit int) ([]Hit, error)

// Search calls f.
func (f SearcherFunc) Search(ctx context.Context, shard, limit int) ([]Hit, error) {
	return f(ctx, shard, limit)
}

var _ Searcher = SearcherFunc(nil)

// Options tunes [Gather]. The zero value is valid.
type Options struct {
	// AllowPartial leaves a failing shard out of the answer instead of failing the call; Result.Coverage
	// and Result.Missing then say what was left out. Default false: any shard error fails the call.
	AllowPartial bool
	// MaxParallel bounds the Search calls in flight. Default 0: every shard of a round at once.
	MaxParallel int
}

// Result is the merged answer of [Gather].
type Result struct {
	// Hits is the exact top k over the answering shards, best first; shorter than k only when they hold
	// fewer than k ads.
	Hits []Hit
	// Rounds counts the rounds of Search calls: 1 when k′ sufficed everywhere.
	Rounds int
	// Refetches counts the Search calls after the first one per shard.
	Refetches int
	// Merged counts the rows the shards returned over all calls: the merge volume.
	Merged int
	// Coverage is the share of shards the answer is exact over: 1, or less with AllowPartial.
	Coverage float64
	// Missing lists the shards left out, ascending; empty unless AllowPartial left some out.
	Missing []int
}

// ErrBadResponse is wrapped by a [*ShardError] when a shard answers against the [Searcher] contract: more hits
// than asked for, a NaN score, or scores out of order.
var ErrBadResponse = errors.New("shard: bad response")

// ErrNoShards is returned with AllowPartial when no shard answered, joined with every shard's error.
var ErrNoShards = errors.New("shard: no shard answered")

// ShardError is a failure of one shard's Search, or of its answer.
type ShardError struct {
	Shard int
	Err   error
}

func (e *ShardError) Error() string { return fmt.Sprintf("shard %d: %v", e.Shard, e.Err) }

// Unwrap returns the shard's error.
func (e *ShardError) Unwrap() error { return e.Err }

// Gather returns the exact top k over shards shards of s.
//
// It asks every shard for kprime hits (0 means KPrime(k, shards, DefaultP); more than k means k), merges
// them, and then re-asks with a doubled limit, capped at k, every shard that returned a full list whose last
// score is at least the merged k-th score (or any full shard while fewer than k hits are merged), until no
// shard is left in doubt. A shard whose list is short has nothing more; one whose last score is below the
// k-th has nothing that could enter; one that returned its best k has nothing that could enter either.
// So the answer is the global top k for any placement of the ads, given Searchers that keep their contract.
//
// Without opts.AllowPartial the first shard error cancels the calls in flight and is returned as a
// [*ShardError]. A done ctx returns its error.
func Gather(ctx context.Context, s Searcher, shards, k, kprime int, opts Options) (Result, error) {
	var problems []error
	if s == nil {
		problems = append(problems, errors.New("searcher is nil"))
	}
	if shards < 1 || shards > MaxShards {
		problems = append(problems, fmt.Errorf("shards = %d, want 1 to %d", shards, MaxShards))
	}
	if k < 1 {
		problems = append(problems, fmt.Errorf("k = %d, want at least 1", k))
	}
	if kprime < 0 {
		problems = append(problems, fmt.Errorf("kprime = %d, want 0 (default) or more", kprime))
	}
	if opts.MaxParallel < 0 {
		problems = append(problems, fmt.Errorf("MaxParallel = %d, want 0 (all) or more", opts.MaxParallel))
	}
	if len(problems) > 0 {
		return Result{}, fmt.Errorf("gather: %w", errors.Join(problems...))
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("gather: %w", err)
	}
	if kprime == 0 {
		kprime = defaultKPrime(k, shards)
	}
	kprime = min(kprime, k)

	g := gatherer{s: s, k: k, opts: opts, state: make([]shardState, shards), pending: make([]int, shards)}
	for i := range g.state {
		g.state[i].limit = kprime
		g.pending[i] = i
	}
	return g.run(ctx)
}

// kprimes caches KPrime(k, S, DefaultP), which costs O(k) log-gamma calls, for the pairs Gather sees.
var kprimes struct {
	sync.Mutex
	m map[[2]int]int
}

// maxCachedKPrimes bounds the cache; past it, KPrime is computed on every call.
const maxCachedKPrimes = 4096

func defaultKPrime(k, shards int) int {
	key := [2]int{k, shards}
	kprimes.Lock()
	kp, ok := kprimes.m[key]
	kprimes.Unlock()
	if ok {
		return kp
	}
	kp = KPrime(k, shards, DefaultP)
	kprimes.Lock()
	if kprimes.m == nil {
		kprimes.m = make(map[[2]int]int)
	}
	if len(kprimes.m) < maxCachedKPrimes {
		kprimes.m[key] = kp
	}
	kprimes.Unlock()
	return kp
}

type shardState struct {
	limit int
	hits  []Hit // sorted by better
	err   error // of the latest call
	dead  bool  // left out (AllowPartial)
}

type gatherer struct {
	s       Searcher
	k       int
	opts    Options
	state   []shardState
	pending []int // shards to ask in the next round
	merged  []Hit
	res     Result
	// merge scratch
	pos  []int  // per shard, the next hit of its list
	heap []head // list heads
}

func (g *gatherer) run(ctx context.Context) (Result, error) {
	var failed []error
	for len(g.pending) > 0 {
		if g.res.Rounds > 0 {
			g.res.Refetches += len(g.pending)
		}
		g.res.Rounds++
		if err := g.round(ctx); err != nil {
			return Result{}, err
		}
		for _, sh := range g.pending {
			st := &g.state[sh]
			if st.err != nil {
				st.dead, st.hits = true, nil
				failed = append(failed, &ShardError{Shard: sh, Err: st.err})
				g.res.Missing = append(g.res.Missing, sh)
				continue
			}
			g.res.Merged += len(st.hits)
		}
		if len(g.res.Missing) == len(g.state) {
			return Result{}, fmt.Errorf("gather: %w", errors.Join(append([]error{ErrNoShards}, failed...)...))
		}
		g.merge()
		g.pending = g.pending[:0]
		for sh := range g.state {
			if g.ambiguous(&g.state[sh]) {
				g.state[sh].limit = min(2*g.state[sh].limit, g.k)
				g.pending = append(g.pending, sh)
			}
		}
	}
	slices.Sort(g.res.Missing)
	g.res.Hits = g.merged
	g.res.Coverage = float64(len(g.state)-len(g.res.Missing)) / float64(len(g.state))
	return g.res, nil
}

// ambiguous reports whether st may hold a hit of the true top k that it has not returned.
func (g *gatherer) ambiguous(st *shardState) bool {
	if st.dead || len(st.hits) < st.limit || st.limit >= g.k {
		return false
	}
	return len(g.merged) < g.k || st.hits[len(st.hits)-1].Score >= g.merged[g.k-1].Score
}

// round asks every pending shard once, concurrently, and leaves each answer or error in its state. It
// returns an error only when the call as a whole fails: ctx is done, or a shard failed without AllowPartial.
func (g *gatherer) round(ctx context.Context) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu    sync.Mutex
		first *ShardError // the first failure in time, the cause of any cancellations after it
	)
	ask := func(sh int) {
		st := &g.state[sh]
		st.hits, st.err = g.search(rctx, sh, st.limit)
		if st.err != nil && !g.opts.AllowPartial {
			mu.Lock()
			if first == nil {
				first = &ShardError{Shard: sh, Err: st.err}
				cancel(first)
			}
			mu.Unlock()
		}
	}
	if len(g.pending) == 1 {
		ask(g.pending[0])
	} else {
		par := g.opts.MaxParallel
		if par == 0 || par > len(g.pending) {
			par = len(g.pending)
		}
		sem := make(chan struct{}, par)
		var wg sync.WaitGroup
	launch:
		for _, sh := range g.pending {
			select {
			case sem <- struct{}{}:
			case <-rctx.Done():
				break launch
			}
			wg.Go(func() {
				defer func() { <-sem }()
				ask(sh)
			})
		}
		wg.Wait()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gather: %w", err)
	}
	if first != nil {
		return fmt.Errorf("gather: %w", first)
	}
	return nil
}

// search calls the Searcher and checks its answer against the contract, sorting ties by ID when a shard
// did not.
func (g *gatherer) search(ctx context.Context, sh, limit int) ([]Hit, error) {
	hits, err := g.s.Search(ctx, sh, limit)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	if len(hits) > limit {
		return nil, fmt.Errorf("%w: %d hits for limit %d", ErrBadResponse, len(hits), limit)
	}
	tiesOrdered := true
	for i, h := range hits {
		if math.IsNaN(float64(h.Score)) {
			return nil, fmt.Errorf("%w: hit %d (id %d) has a NaN score", ErrBadResponse, i, h.ID)
		}
		if i == 0 {
			continue
		}
		switch prev := hits[i-1]; {
		case h.Score > prev.Score:
			return nil, fmt.Errorf("%w: hit %d (id %d) scores %g, above hit %d's %g", ErrBadResponse, i, h.ID,
				h.Score, i-1, prev.Score)
		case h.Score == prev.Score && h.ID <= prev.ID:
			tiesOrdered = false
		}
	}
	if !tiesOrdered {
		hits = slices.Clone(hits)
		slices.SortFunc(hits, compare)
	}
	return hits, nil
}

// merge sets g.merged to the best k hits of the live shards: a k-way merge over a heap of list heads.
func (g *gatherer) merge() {
	if cap(g.pos) < len(g.state) {
		g.pos = make([]int, len(g.state))
		g.heap = make([]head, 0, len(g.state))
	}
	h, rows := g.heap[:0], 0
	for i := range g.state {
		if st := &g.state[i]; !st.dead && len(st.hits) > 0 {
			h = append(h, head{hit: st.hits[0], shard: i})
			g.pos[i] = 0
			rows += len(st.hits)
		}
	}
	if g.merged == nil {
		g.merged = make([]Hit, 0, min(rows, g.k))
	}
	g.merged = g.merged[:0]
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(h, i)
	}
	for len(h) > 0 && len(g.merged) < g.k {
		top := &h[0]
		g.merged = append(g.merged, top.hit)
		g.pos[top.shard]++
		if l := g.state[top.shard].hits; g.pos[top.shard] < len(l) {
			top.hit = l[g.pos[top.shard]]
		} else {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		down(h, 0)
	}
	g.heap = h
}

// head is the next hit of one shard's list in the merge heap.
type head struct {
	hit   Hit
	shard int
}

// down restores the heap order of h (best hit on top) below i.
func down(h []head, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && better(h[r].hit, h[l].hit) {
			m = r
		}
		if !better(h[m].hit, h[i].hit) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
