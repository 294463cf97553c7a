package shard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// mem is an in-memory sharded index: each shard's hits sorted best first. It counts calls and rows.
type mem struct {
	shards [][]Hit
	calls  atomic.Int64
	rows   atomic.Int64
}

// place splits hits over shards by where; the lists come out sorted by the Searcher contract.
func place(hits []Hit, shards int, where func(Hit) int) *mem {
	m := &mem{shards: make([][]Hit, shards)}
	for _, h := range hits {
		s := where(h)
		m.shards[s] = append(m.shards[s], h)
	}
	for _, l := range m.shards {
		slices.SortFunc(l, compare)
	}
	return m
}

func byOf(shards int) func(Hit) int {
	return func(h Hit) int {
		s, err := Of(h.ID, shards)
		if err != nil {
			panic(err)
		}
		return s
	}
}

func (m *mem) Search(_ context.Context, shard, limit int) ([]Hit, error) {
	l := m.shards[shard]
	l = l[:min(limit, len(l))]
	m.calls.Add(1)
	m.rows.Add(int64(len(l)))
	return l, nil
}

// brute is the global top k by sorting everything.
func brute(hits []Hit, k int) []Hit {
	all := slices.Clone(hits)
	slices.SortFunc(all, compare)
	return all[:min(k, len(all))]
}

// randomAds draws n ads with distinct ids; with ties set, scores come from a few values only.
func randomAds(r *rand.Rand, n int, ties bool) []Hit {
	hits := make([]Hit, n)
	seen := make(map[int64]bool, n)
	for i := range hits {
		id := r.Int64N(1 << 40)
		for seen[id] {
			id = r.Int64N(1 << 40)
		}
		seen[id] = true
		score := float32(r.NormFloat64())
		if ties {
			score = float32(r.IntN(8))
		}
		hits[i] = Hit{ID: id, Score: score}
	}
	return hits
}

// check runs Gather and compares it with brute force and the searcher's own counts.
func check(t *testing.T, name string, ads []Hit, m *mem, k, kprime int) Result {
	t.Helper()
	shards := len(m.shards)
	res, err := Gather(context.Background(), m, shards, k, kprime, Options{})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if want := brute(ads, k); !slices.Equal(res.Hits, want) {
		t.Fatalf("%s: got %d hits %v\nwant %d hits %v", name, len(res.Hits), first5(res.Hits), len(want), first5(want))
	}
	if res.Merged != int(m.rows.Load()) {
		t.Errorf("%s: Merged = %d, shards returned %d rows", name, res.Merged, m.rows.Load())
	}
	if res.Refetches != int(m.calls.Load())-shards {
		t.Errorf("%s: Refetches = %d, with %d calls over %d shards", name, res.Refetches, m.calls.Load(), shards)
	}
	if res.Coverage != 1 || len(res.Missing) != 0 {
		t.Errorf("%s: Coverage = %g, Missing = %v", name, res.Coverage, res.Missing)
	}
	return res
}

func first5(h []Hit) []Hit { return h[:min(len(h), 5)] }

// TestGatherExact: against brute force over random data placed by the shard map, for many seeds.
func TestGatherExact(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		for _, shards := range []int{1, 2, 4, 16} {
			for _, k := range []int{1, 10, 100} {
				for _, kprime := range []int{0, 1, 3} {
					ties := seed%4 == 3
					ads := randomAds(r, r.IntN(1200), ties)
					m := place(ads, shards, byOf(shards))
					name := fmt.Sprintf("seed %d, S %d, k %d, k′ %d, ties %t, %d ads", seed, shards, k, kprime, ties, len(ads))
					check(t, name, ads, m, k, kprime)
				}
			}
		}
	}
}

// TestGatherAdversarial puts the whole top k on one shard: k′ is far too small there, the guard refetches,
// and the answer stays exact.
func TestGatherAdversarial(t *testing.T) {
	const shards, k = 4, 100
	var ads []Hit
	for i := range 1000 {
		ads = append(ads, Hit{ID: int64(i), Score: float32(1000 - i)})
	}
	// The best k on shard 0, the rest spread over the others.
	m := place(ads, shards, func(h Hit) int {
		if h.ID < k {
			return 0
		}
		return 1 + int(h.ID)%(shards-1)
	})
	res := check(t, "adversarial", ads, m, k, 0)
	// Shard 0 goes 49 → 98 → 100.
	if res.Refetches < 2 || res.Rounds != 3 {
		t.Errorf("Refetches = %d, Rounds = %d; want at least 2 refetches over 3 rounds", res.Refetches, res.Rounds)
	}
	if want := KPrime(k, shards, DefaultP); want != 49 {
		t.Fatalf("KPrime(100, 4) = %d, the test assumes 49", want)
	}
}

// TestGatherNoRefetch: with random placement and the default k′ nothing is refetched, and the merge volume
// is S·k′.
func TestGatherNoRefetch(t *testing.T) {
	const shards, k = 16, 100
	r := rand.New(rand.NewPCG(3, 3))
	ads := randomAds(r, 20000, false)
	m := place(ads, shards, byOf(shards))
	res := check(t, "random placement", ads, m, k, 0)
	kp := KPrime(k, shards, DefaultP)
	if res.Refetches != 0 || res.Merged != shards*kp {
		t.Errorf("Refetches = %d, Merged = %d; want 0 and %d", res.Refetches, res.Merged, shards*kp)
	}
}

// TestGatherTies: equal scores order by id, across shards.
func TestGatherTies(t *testing.T) {
	var ads []Hit
	for i := range 200 {
		ads = append(ads, Hit{ID: int64(200 - i), Score: 0.5})
	}
	for _, shards := range []int{1, 4, 16} {
		for _, kprime := range []int{0, 1, 5} {
			m := place(ads, shards, byOf(shards))
			res := check(t, fmt.Sprintf("ties, S %d, k′ %d", shards, kprime), ads, m, 10, kprime)
			for i, h := range res.Hits {
				if h.ID != int64(i+1) {
					t.Fatalf("hit %d has id %d, want %d", i, h.ID, i+1)
				}
			}
		}
	}
}

// TestGatherUnsortedTies: a shard that returns the right hits but equal scores in another order is sorted.
func TestGatherUnsortedTies(t *testing.T) {
	s := SearcherFunc(func(_ context.Context, shard, limit int) ([]Hit, error) {
		l := []Hit{{ID: 9, Score: 2}, {ID: int64(shard*10 + 3), Score: 1}, {ID: int64(shard*10 + 1), Score: 1}}
		return l[:min(limit, len(l))], nil
	})
	res, err := Gather(context.Background(), s, 1, 3, 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Hit{{9, 2}, {1, 1}, {3, 1}}; !slices.Equal(res.Hits, want) {
		t.Errorf("got %v, want %v", res.Hits, want)
	}
}

// TestGatherSmall: fewer ads than k, in total and per shard, and empty shards.
func TestGatherSmall(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, c := range []struct{ n, shards, k int }{
		{0, 4, 10},
		{1, 16, 10},
		{5, 16, 100},
		{30, 4, 100},
		{99, 4, 100},
		{100, 4, 100},
		{101, 4, 100},
	} {
		ads := randomAds(r, c.n, false)
		m := place(ads, c.shards, byOf(c.shards))
		res := check(t, fmt.Sprintf("%d ads, S %d, k %d", c.n, c.shards, c.k), ads, m, c.k, 0)
		if len(res.Hits) != min(c.n, c.k) {
			t.Errorf("%d ads, k %d: %d hits", c.n, c.k, len(res.Hits))
		}
	}
}

// failing wraps a searcher and fails some shards, on their first call or only on a refetch.
type failing struct {
	Searcher
	fail      map[int]bool
	onRefetch bool
	mu        sync.Mutex
	seen      map[int]bool
}

var errDown = errors.New("connection refused")

func (f *failing) Search(ctx context.Context, shard, limit int) ([]Hit, error) {
	f.mu.Lock()
	again := f.seen[shard]
	f.seen[shard] = true
	f.mu.Unlock()
	if f.fail[shard] && (!f.onRefetch || again) {
		return nil, errDown
	}
	return f.Searcher.Search(ctx, shard, limit)
}

func TestGatherShardError(t *testing.T) {
	const shards, k = 4, 50
	r := rand.New(rand.NewPCG(9, 9))
	ads := randomAds(r, 1000, false)
	for _, onRefetch := range []bool{false, true} {
		m := place(ads, shards, byOf(shards))
		f := &failing{Searcher: m, fail: map[int]bool{2: true}, onRefetch: onRefetch, seen: map[int]bool{}}
		// k′ = 1 makes every shard refetch, so onRefetch fails shard 2 in the second round.
		_, err := Gather(context.Background(), f, shards, k, 1, Options{})
		var se *ShardError
		if !errors.As(err, &se) || se.Shard != 2 || !errors.Is(err, errDown) || !strings.Contains(err.Error(), "shard 2") {
			t.Fatalf("onRefetch %t: err = %v, want a ShardError for shard 2", onRefetch, err)
		}

		f.seen = map[int]bool{}
		res, err := Gather(context.Background(), f, shards, k, 1, Options{AllowPartial: true})
		if err != nil {
			t.Fatalf("onRefetch %t, partial: %v", onRefetch, err)
		}
		if res.Coverage != 0.75 || !slices.Equal(res.Missing, []int{2}) {
			t.Errorf("onRefetch %t, partial: Coverage = %g, Missing = %v", onRefetch, res.Coverage, res.Missing)
		}
		var rest []Hit
		for _, h := range ads {
			if s, _ := Of(h.ID, shards); s != 2 {
				rest = append(rest, h)
			}
		}
		if want := brute(rest, k); !slices.Equal(res.Hits, want) {
			t.Errorf("onRefetch %t, partial: not the exact top k of the other shards", onRefetch)
		}
	}
}

func TestGatherAllFail(t *testing.T) {
	m := place(nil, 3, func(Hit) int { return 0 })
	f := &failing{Searcher: m, fail: map[int]bool{0: true, 1: true, 2: true}, seen: map[int]bool{}}
	_, err := Gather(context.Background(), f, 3, 10, 0, Options{AllowPartial: true})
	if !errors.Is(err, ErrNoShards) || !errors.Is(err, errDown) || !strings.Contains(err.Error(), "shard 1") {
		t.Errorf("err = %v, want ErrNoShards with every shard's error", err)
	}
}

func TestGatherBadResponse(t *testing.T) {
	for name, l := range map[string][]Hit{
		"too many": {{1, 3}, {2, 2}, {3, 1}},
		"NaN":      {{1, 3}, {2, float32(math.NaN())}},
		"unsorted": {{1, 1}, {2, 3}},
	} {
		s := SearcherFunc(func(context.Context, int, int) ([]Hit, error) { return l, nil })
		_, err := Gather(context.Background(), s, 2, 2, 2, Options{})
		var se *ShardError
		if !errors.Is(err, ErrBadResponse) || !errors.As(err, &se) {
			t.Errorf("%s: err = %v, want ErrBadResponse in a ShardError", name, err)
		}
	}
}

func TestGatherInvalid(t *testing.T) {
	_, err := Gather(context.Background(), nil, 0, 0, -1, Options{MaxParallel: -1})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"searcher is nil", "shards = 0", "k = 0", "kprime = -1", "MaxParallel = -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
	m := place(nil, 1, func(Hit) int { return 0 })
	if _, err := Gather(context.Background(), m, MaxShards+1, 10, 0, Options{}); err == nil {
		t.Error("shards above MaxShards: no error")
	}
}

func TestGatherCancel(t *testing.T) {
	m := place(randomAds(rand.New(rand.NewPCG(1, 1)), 100, false), 4, byOf(4))

	// Done before the call: no shard is asked.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Gather(ctx, m, 4, 10, 0, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before: err = %v", err)
	}
	if m.calls.Load() != 0 {
		t.Errorf("cancelled before: %d calls", m.calls.Load())
	}

	// Cancelled by a shard while the round runs, partial or not: the call fails with the context's error.
	for _, partial := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		s := SearcherFunc(func(ctx context.Context, shard, limit int) ([]Hit, error) {
			if shard == 1 {
				cancel()
			}
			<-ctx.Done()
			return nil, ctx.Err()
		})
		if _, err := Gather(ctx, s, 4, 10, 0, Options{AllowPartial: partial}); !errors.Is(err, context.Canceled) {
			t.Errorf("partial %t: err = %v, want context.Canceled", partial, err)
		}
		cancel()
	}

	// One shard's failure cancels the others, which would otherwise wait forever.
	s := SearcherFunc(func(ctx context.Context, shard, limit int) ([]Hit, error) {
		if shard == 3 {
			return nil, errDown
		}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	_, err := Gather(context.Background(), s, 4, 10, 0, Options{})
	var se *ShardError
	if !errors.As(err, &se) || se.Shard != 3 || !errors.Is(err, errDown) {
		t.Errorf("err = %v, want shard 3's error", err)
	}
}

func TestGatherMaxParallel(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	ads := randomAds(r, 500, false)
	m := place(ads, 8, byOf(8))
	for _, par := range []int{1, 3} {
		var now, peak atomic.Int64
		s := SearcherFunc(func(ctx context.Context, shard, limit int) ([]Hit, error) {
			n := now.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			defer now.Add(-1)
			return m.Search(ctx, shard, limit)
		})
		res, err := Gather(context.Background(), s, 8, 20, 1, Options{MaxParallel: par})
		if err != nil {
			t.Fatal(err)
		}
		if peak.Load() > int64(par) {
			t.Errorf("MaxParallel %d: %d calls in flight", par, peak.Load())
		}
		if !slices.Equal(res.Hits, brute(ads, 20)) {
			t.Errorf("MaxParallel %d: not exact", par)
		}
	}
}

// FuzzGather checks exactness and the counters for any data, placement, S, k and k′.
func FuzzGather(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(4), uint8(3), uint8(1))
	f.Add([]byte{0, 0, 0, 0, 255, 255, 1, 1}, uint8(1), uint8(10), uint8(0))
	f.Add([]byte{}, uint8(16), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, s, k, kprime uint8) {
		shards := 1 + int(s)%16
		kk := 1 + int(k)%64
		// Each pair of bytes is an ad: a placement byte and a score byte; the id is its position.
		ads := make([]Hit, 0, len(data)/2)
		where := make(map[int64]int, len(data)/2)
		for i := 0; i+1 < len(data); i += 2 {
			id := int64(i / 2)
			ads = append(ads, Hit{ID: id, Score: float32(data[i+1]) / 16})
			where[id] = int(data[i]) % shards
		}
		m := place(ads, shards, func(h Hit) int { return where[h.ID] })
		check(t, "fuzz", ads, m, kk, int(kprime)%(kk+2))
	})
}

func BenchmarkGather(b *testing.B) {
	for _, shards := range []int{4, 16, 64} {
		for _, k := range []int{100, 1000} {
			r := rand.New(rand.NewPCG(1, 1))
			ads := randomAds(r, 100*k, false)
			m := place(ads, shards, byOf(shards))
			b.Run(fmt.Sprintf("S=%d/k=%d", shards, k), func(b *testing.B) {
				b.ReportAllocs()
				var merged, refetches int
				for b.Loop() {
					res, err := Gather(context.Background(), m, shards, k, 0, Options{})
					if err != nil {
						b.Fatal(err)
					}
					merged += res.Merged
					refetches += res.Refetches
				}
				b.ReportMetric(float64(merged)/float64(b.N), "rows/op")
				b.ReportMetric(float64(refetches)/float64(b.N), "refetches/op")
			})
		}
	}
}
