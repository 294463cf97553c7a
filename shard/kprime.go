package shard

import "math"

// DefaultP is the per-shard overflow probability [Gather] uses when it is given no k′: the chance, under
// random placement, that one shard holds more than k′ of the true top k, so that a first round alone would
// miss a winner. By the union bound that happens to a request over S shards with probability at most
// S·DefaultP (6.4·10⁻⁶ at S = 64); the guard then refetches. The guard also refetches when a shard holds
// exactly k′ of the top k, so the refetch rate is P(X ≥ k′), a little above p. DefaultP makes k = 1000 over
// 64 shards give k′ = 40.
const DefaultP = 1e-7

// KPrime returns the per-shard limit k′: the smallest k′ in [1, k] with P(X > k′) ≤ p for
// X ~ Binomial(k, 1/shards), the number of the true top k that land on one shard when placement is
// independent of score (as a hash of the id is).
//
// Edge cases, all without panicking: k < 1 gives 0; shards ≤ 1 gives k (one shard holds everything);
// p ≤ 0 or NaN gives k (only k is certain); p ≥ 1 gives 1.
//
// The tail is summed from its far end downwards in log space (log-gamma binomial coefficients and a running
// log-sum-exp), so no term underflows to zero before it matters and k in the millions stays accurate.
func KPrime(k, shards int, p float64) int {
	switch {
	case k < 1:
		return 0
	case shards <= 1 || p <= 0 || math.IsNaN(p):
		return k
	case p >= 1:
		return 1
	}
	n := float64(k)
	logQ := -math.Log(float64(shards))         // log(1/S)
	log1mQ := math.Log1p(-1 / float64(shards)) // log(1 − 1/S)
	lgN1, _ := math.Lgamma(n + 1)
	logP := math.Log(p)
	// Hoeffding: P(X ≥ mean + t) ≤ exp(−2t²/k), below e⁻⁸⁰⁰ (under the smallest float64) for t = √(400k),
	// so the sum starts there instead of at k.
	start := k - 1
	if hi := n/float64(shards) + math.Sqrt(400*n); hi < float64(start) {
		start = int(hi)
	}
	// logTail is log P(X > j), growing as j falls (it is 0 = e^−∞ for j ≥ start).
	logTail := math.Inf(-1)
	for j := start; j >= 1; j-- {
		i := float64(j + 1)
		lgI, _ := math.Lgamma(i + 1)
		lgR, _ := math.Lgamma(n - i + 1)
		logTail = logAddExp(logTail, lgN1-lgI-lgR+i*logQ+(n-i)*log1mQ)
		if logTail > logP {
			return j + 1
		}
	}
	return 1
}

// logAddExp returns log(eᵃ + eᵇ) without overflow or underflow.
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(b, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}
