package index

import (
	"errors"
	"fmt"
	"math"

	"github.com/tandemml/tandem/kernel"
)

// Exact returns the k best of the row-major vectors (len(vectors)/dim
// rows) for q under metric, among the rows filter admits (all when filter
// is nil), by comparing q with every one: the ground truth for the graph
// and the fallback of last resort. Results are ranked and scored as by
// Graph.Search (squared distance for L2, similarity or inner product
// otherwise, best first, ties by id); InnerProduct and RawIP give the same
// answer here. Rows whose score is NaN, and under Cosine zero rows, are
// skipped.
//
// Errors: dim ≤ 0, len(vectors) not a multiple of dim, len(q) ≠ dim, a NaN
// or infinite query value, a zero Cosine query, k ≤ 0, an unknown metric,
// or more rows than int32 ids can number.
func Exact(vectors []float32, dim int, metric Metric, q []float32, k int, filter func(id int32) bool) ([]Result, error) {
	switch {
	case dim <= 0:
		return nil, fmt.Errorf("index: dim = %d, want > 0", dim)
	case len(vectors)%dim != 0:
		return nil, fmt.Errorf("index: len(vectors) = %d is not a multiple of dim = %d", len(vectors), dim)
	case len(vectors)/dim > maxNodes:
		return nil, fmt.Errorf("index: %d vectors, at most %d fit int32 ids", len(vectors)/dim, maxNodes)
	case len(q) != dim:
		return nil, fmt.Errorf("index: query has %d values, want %d", len(q), dim)
	case k <= 0:
		return nil, fmt.Errorf("index: k = %d, want > 0", k)
	case !metric.valid():
		return nil, fmt.Errorf("index: metric %d is not a known metric", int(metric))
	}
	sq := 0.0
	for j, v := range q {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("index: query column %d is %v", j, v)
		}
		sq += float64(v) * float64(v)
	}
	qv := q
	if metric == Cosine {
		if sq == 0 {
			return nil, errors.New("index: zero query has no direction (cosine)")
		}
		qv = make([]float32, dim)
		inv := 1 / math.Sqrt(sq)
		for j, v := range q {
			qv[j] = float32(float64(v) * inv)
		}
	}

	n := len(vectors) / dim
	// The heap keeps the k best as distances: the squared distance for
	// L2, the negated score otherwise.
	h := make(maxHeap, 0, min(k, n))
	var dots [scanBlock]float32
	for start := 0; start < n; start += scanBlock {
		end := min(start+scanBlock, n)
		if metric != L2 {
			kernel.Dots(dots[:end-start], qv, vectors[start*dim:end*dim], dim)
		}
		for id := start; id < end; id++ {
			if filter != nil && !filter(int32(id)) {
				continue
			}
			row := vectors[id*dim : (id+1)*dim]
			var d float32
			switch metric {
			case L2:
				d = l2Go(q, row)
			case Cosine:
				nr := math.Sqrt(norm2(row))
				if nr == 0 {
					continue
				}
				d = -float32(float64(dots[id-start]) / nr)
			default:
				d = -dots[id-start]
			}
			if d != d {
				continue
			}
			h.offer(item{d, int32(id)}, k)
		}
	}
	found := h.drain(nil)
	out := make([]Result, len(found))
	for i, x := range found {
		sc := x.d
		if metric != L2 {
			sc = -sc
		}
		out[i] = Result{ID: x.id, Score: sc}
	}
	sortResults(out, metric)
	return out, nil
}
