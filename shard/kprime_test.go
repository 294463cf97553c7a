package shard

import (
	"math"
	"testing"
)

// TestKPrimeTable pins the numbers docs/SCALING.md quotes, the k = 1000, S = 64 → ≈ 40 among them.
func TestKPrimeTable(t *testing.T) {
	for _, c := range []struct{ k, shards, want int }{
		{1000, 4, 323},
		{1000, 16, 106},
		{1000, 64, 40},
		{100, 4, 49},
		{100, 64, 11},
		{10, 4, 10},
		{1, 64, 1},
		{1000, 1, 1000},
	} {
		if got := KPrime(c.k, c.shards, DefaultP); got != c.want {
			t.Errorf("KPrime(%d, %d, DefaultP) = %d, want %d", c.k, c.shards, got, c.want)
		}
	}
}

func TestKPrimeEdges(t *testing.T) {
	for _, c := range []struct {
		k, shards int
		p         float64
		want      int
	}{
		{0, 4, DefaultP, 0},
		{-5, 4, DefaultP, 0},
		{100, 0, DefaultP, 100},
		{100, -3, DefaultP, 100},
		{100, 4, 0, 100},
		{100, 4, -1, 100},
		{100, 4, math.NaN(), 100},
		{100, 4, 1, 1},
		{100, 4, 2, 1},
		{1, 1, 0.5, 1},
	} {
		if got := KPrime(c.k, c.shards, c.p); got != c.want {
			t.Errorf("KPrime(%d, %d, %g) = %d, want %d", c.k, c.shards, c.p, got, c.want)
		}
	}
}

// binomTail is P(X > j) for X ~ Binomial(n, q), summed directly (fine for the small n it is used with).
func binomTail(n, j int, q float64) float64 {
	s := 0.0
	for i := j + 1; i <= n; i++ {
		lc := lchoose(n, i)
		s += math.Exp(lc + float64(i)*math.Log(q) + float64(n-i)*math.Log1p(-q))
	}
	return s
}

func lchoose(n, i int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(i + 1))
	c, _ := math.Lgamma(float64(n - i + 1))
	return a - b - c
}

// TestKPrimeDefinition checks the result is the smallest k′ that meets the bound, against a direct sum.
func TestKPrimeDefinition(t *testing.T) {
	for _, k := range []int{1, 2, 7, 50, 300} {
		for _, s := range []int{2, 3, 8, 64} {
			for _, p := range []float64{0.5, 1e-3, 1e-7, 1e-12} {
				kp := KPrime(k, s, p)
				if kp < 1 || kp > k {
					t.Fatalf("KPrime(%d, %d, %g) = %d, outside [1, %d]", k, s, p, kp, k)
				}
				q := 1 / float64(s)
				if tail := binomTail(k, kp, q); tail > p*(1+1e-9) {
					t.Errorf("KPrime(%d, %d, %g) = %d: tail %g above p", k, s, p, kp, tail)
				}
				if kp > 1 {
					if tail := binomTail(k, kp-1, q); tail <= p*(1-1e-9) {
						t.Errorf("KPrime(%d, %d, %g) = %d: %d already has tail %g", k, s, p, kp, kp-1, tail)
					}
				}
			}
		}
	}
}

// TestKPrimeMonotone: k′ grows with k, shrinks with S and with a looser p.
func TestKPrimeMonotone(t *testing.T) {
	prev := 0
	for k := 1; k <= 2000; k += 37 {
		kp := KPrime(k, 16, DefaultP)
		if kp < prev {
			t.Fatalf("KPrime(%d, 16) = %d below KPrime at a smaller k (%d)", k, kp, prev)
		}
		prev = kp
	}
	prev = math.MaxInt
	for s := 1; s <= 256; s++ {
		kp := KPrime(1000, s, DefaultP)
		if kp > prev {
			t.Fatalf("KPrime(1000, %d) = %d above KPrime at fewer shards (%d)", s, kp, prev)
		}
		prev = kp
	}
	prev = math.MaxInt
	for _, p := range []float64{1e-15, 1e-12, 1e-9, 1e-7, 1e-5, 1e-3, 0.1, 0.5, 0.9} {
		kp := KPrime(1000, 64, p)
		if kp > prev {
			t.Fatalf("KPrime(1000, 64, %g) = %d above KPrime at a smaller p (%d)", p, kp, prev)
		}
		prev = kp
	}
}

// TestKPrimeLarge: a k far beyond direct summation stays finite and near the normal approximation.
func TestKPrimeLarge(t *testing.T) {
	k, s := 1_000_000, 64
	kp := KPrime(k, s, DefaultP)
	mean := float64(k) / float64(s)
	sd := math.Sqrt(mean * (1 - 1/float64(s)))
	// P(Z > 5.2) ≈ 1e-7.
	if z := (float64(kp) - mean) / sd; z < 4.8 || z > 5.6 {
		t.Errorf("KPrime(%d, %d) = %d, %.2f standard deviations above the mean; want about 5.2", k, s, kp, z)
	}
}
