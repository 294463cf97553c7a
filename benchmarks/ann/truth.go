package main

import (
	"cmp"
	"runtime"
	"slices"
	"sync"

	"github.com/tandemml/tandem/gemm"
	"github.com/tandemml/tandem/kernel"
)

// groundTruth returns the exact k nearest base rows (squared L2) of every
// query, nearest first, ties by id; with ip, the k rows of largest inner
// product instead. Inner products come from the SGEMM kernel, one block of
// queries per goroutine at a time; the best shortlist rows by
// ‖b‖² − 2⟨q,b⟩ (by ⟨q,b⟩ with ip) are then re-ranked by the distance
// computed from differences (the inner product) in float64, so float32
// rounding of the products cannot swap neighbours.
func groundTruth(base []float32, nb int, queries []float32, nq, dim, k int, ip bool) [][]int32 {
	const block, shortlist = 64, 100
	w := gemm.Pack(base, nb, dim)
	norms := make([]float32, nb)
	for j := range nb {
		s := float32(0)
		for _, v := range base[j*dim : (j+1)*dim] {
			s += v * v
		}
		if ip {
			s = 0
		}
		norms[j] = s
	}
	out := make([][]int32, nq)
	var next sync.Mutex
	start := 0
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			var buf gemm.Buf
			c := make([]float32, block*nb)
			scores := make([]float32, nb)
			idx := make([]int32, 0, shortlist)
			type cand struct {
				d  float64
				id int32
			}
			cands := make([]cand, 0, shortlist)
			for {
				next.Lock()
				i0 := start
				start += block
				next.Unlock()
				if i0 >= nq {
					return
				}
				m := min(block, nq-i0)
				w.Mul(c, nb, queries[i0*dim:], dim, m, nil, false, &buf)
				for i := range m {
					q := queries[(i0+i)*dim : (i0+i+1)*dim]
					for j, p := range c[i*nb : (i+1)*nb] {
						scores[j] = 2*p - norms[j] // 2p when ip
					}
					idx = kernel.TopK(idx[:0], scores, min(shortlist, nb))
					cands = cands[:0]
					for _, id := range idx {
						d := 0.0
						for t, v := range base[int(id)*dim : (int(id)+1)*dim] {
							if ip {
								d -= float64(v) * float64(q[t])
								continue
							}
							x := float64(v) - float64(q[t])
							d += x * x
						}
						cands = append(cands, cand{d, id})
					}
					slices.SortFunc(cands, func(a, b cand) int {
						return cmp.Or(cmp.Compare(a.d, b.d), cmp.Compare(a.id, b.id))
					})
					ids := make([]int32, min(k, len(cands)))
					for t := range ids {
						ids[t] = cands[t].id
					}
					out[i0+i] = ids
				}
			}
		})
	}
	wg.Wait()
	return out
}

// recall returns the mean share of each query's true top k found among
// its results.
func recall(got, truth [][]int32) float64 {
	s := 0.0
	for i, t := range truth {
		hit := 0
		for _, id := range got[i] {
			if slices.Contains(t, id) {
				hit++
			}
		}
		s += float64(hit) / float64(len(t))
	}
	return s / float64(len(truth))
}
