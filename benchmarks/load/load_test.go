package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestArrivalsDeterministic(t *testing.T) {
	a := Arrivals(1000, 2*time.Second, 0, 7)
	b := Arrivals(1000, 2*time.Second, 0, 7)
	c := Arrivals(1000, 2*time.Second, 0, 8)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different arrivals")
	}
	if slices.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same arrivals")
	}
}

func TestArrivalsPoisson(t *testing.T) {
	const rate, n = 2000.0, 100_000
	at := Arrivals(rate, time.Hour, n, 1)
	if len(at) != n {
		t.Fatalf("%d arrivals, want the cap %d", len(at), n)
	}
	gaps := make([]float64, n)
	prev := time.Duration(0)
	for i, a := range at {
		if a < prev {
			t.Fatalf("arrival %d at %v before arrival %d at %v", i, a, i-1, prev)
		}
		gaps[i] = (a - prev).Seconds()
		prev = a
	}
	mean, sq := 0.0, 0.0
	for _, g := range gaps {
		mean += g
	}
	mean /= n
	for _, g := range gaps {
		sq += (g - mean) * (g - mean)
	}
	sd := math.Sqrt(sq / (n - 1))
	// The mean of 100k exponential gaps has a relative standard error of
	// 0.3%; 2% is far outside chance.
	if rel := math.Abs(mean*rate - 1); rel > 0.02 {
		t.Errorf("mean gap %.6f s, want 1/rate = %.6f s (off by %.1f%%)", mean, 1/rate, 100*rel)
	}
	// Exponential gaps have sd = mean; evenly spaced ones would have 0.
	if cv := sd / mean; math.Abs(cv-1) > 0.03 {
		t.Errorf("gap coefficient of variation %.3f, want ≈ 1 (exponential)", cv)
	}
	// Memorylessness in one number: P(gap > mean) = 1/e.
	over := 0
	for _, g := range gaps {
		if g > 1/rate {
			over++
		}
	}
	if f := float64(over) / n; math.Abs(f-math.Exp(-1)) > 0.01 {
		t.Errorf("P(gap > 1/rate) = %.4f, want %.4f", f, math.Exp(-1))
	}
}

func TestArrivalsBounds(t *testing.T) {
	at := Arrivals(500, 10*time.Second, 0, 3)
	if len(at) < 4700 || len(at) > 5300 {
		t.Errorf("%d arrivals in 10 s at 500/s, want ≈ 5000", len(at))
	}
	for _, a := range at {
		if a < 0 || a >= 10*time.Second {
			t.Fatalf("arrival at %v outside [0, 10s)", a)
		}
	}
	if got := Arrivals(500, 10*time.Second, 100, 3); len(got) != 100 || !slices.Equal(got, at[:100]) {
		t.Errorf("capped at 100: %d arrivals, or not the uncapped run's first 100", len(got))
	}
	if got := Arrivals(0, time.Second, 0, 3); len(got) != 0 {
		t.Errorf("rate 0 gave %d arrivals", len(got))
	}
}

// reference is the nearest-rank percentile by its definition: the smallest
// value v of xs with #{x ≤ v} ≥ p·n.
func reference(xs []time.Duration, p float64) time.Duration {
	best := time.Duration(math.MaxInt64)
	for _, v := range xs {
		c := 0
		for _, x := range xs {
			if x <= v {
				c++
			}
		}
		if float64(c) >= p*float64(len(xs))-1e-9 && v < best {
			best = v
		}
	}
	return best
}

func TestPercentiles(t *testing.T) {
	ps := []float64{0.001, 0.5, 0.9, 0.99, 0.999, 1}
	rng := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{1, 2, 3, 10, 99, 100, 1000, 1001} {
		xs := make([]time.Duration, n)
		for i := range xs {
			xs[i] = time.Duration(rng.IntN(50)) * time.Microsecond // ties on purpose
		}
		ref := slices.Clone(xs)
		got := Percentiles(xs, ps)
		for j, p := range ps {
			if want := reference(ref, p); got[j] != want {
				t.Errorf("n=%d p=%g: got %v, want %v", n, p, got[j], want)
			}
		}
	}
	// Exact ranks: 1…1000 ms.
	xs := make([]time.Duration, 1000)
	for i := range xs {
		xs[i] = time.Duration(1000-i) * time.Millisecond
	}
	got := Percentiles(xs, []float64{0.5, 0.99, 0.999, 1})
	want := []time.Duration{500 * time.Millisecond, 990 * time.Millisecond, 999 * time.Millisecond, 1000 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Errorf("1…1000 ms: got %v, want %v", got, want)
	}
	if got := Percentiles(nil, []float64{0.99}); got[0] != 0 {
		t.Errorf("empty: got %v", got[0])
	}
}

func TestMaxRateWithin(t *testing.T) {
	s := func(rate float64, pass bool) Step { return Step{Rate: rate, Pass: pass} }
	for _, c := range []struct {
		steps []Step
		want  float64
	}{
		{[]Step{s(250, true), s(500, true), s(1000, false), s(1500, true)}, 500},
		{[]Step{s(250, false), s(500, true)}, 0},
		{[]Step{s(250, true), s(500, true)}, 500},
		{nil, 0},
	} {
		if got := MaxRateWithin(c.steps); got != c.want {
			t.Errorf("%v: got %g, want %g", c.steps, got, c.want)
		}
	}
}

func TestPad(t *testing.T) {
	pool := make([]int64, 1000)
	for i := range pool {
		pool[i] = int64(i)
	}
	ids := pad([]int64{3, 5, 7}, pool, 500, rand.New(rand.NewPCG(1, 1)))
	if len(ids) != 500 || !slices.Equal(ids[:3], []int64{3, 5, 7}) {
		t.Fatalf("got %d ids starting %v", len(ids), ids[:3])
	}
	seen := map[int64]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("id %d twice", id)
		}
		seen[id] = true
	}
}
