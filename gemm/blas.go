package gemm

import (
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLAS is gonum's BLAS with Sgemm, the float32 matrix product, computed by
// this package's packed kernel. It is meant for gorgonia.Use: training
// graphs spend most of their time in Sgemm on skinny matrices (inner
// dimensions of 32–128), where gonum's kernel runs at 7–11 GFLOP/s and
// this one at 60–80 on one core (docs/BENCHMARKS.md). Every other
// routine, float64 included, is gonum's. Without the assembly kernel
// (a noasm build, or a CPU without AVX2+FMA) Sgemm is gonum's too: the
// pure-Go twin is exact but slow.
type BLAS struct {
	gonum.Implementation
}

// blasMinWork is the smallest m·n·k the packed kernel takes; below it
// the packing costs more than gonum's straight loops.
const blasMinWork = 4096

// blasScratch is one call's reusable memory.
type blasScratch struct {
	w   Packed
	buf Buf
	at  []float32 // A transposed, m×k
	t   []float32 // α·op(A)·op(B) before β·C is added, m×n
}

var blasPool = sync.Pool{New: func() any { return new(blasScratch) }}

// Sgemm computes C = α·op(A)·op(B) + β·C for row-major matrices, with
// op(A) m×k and op(B) k×n, as the BLAS standard defines it (β = 0 means
// C is not read).
func (b BLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	if !useAsm || m*n*k < blasMinWork || m < mr || alpha == 0 {
		b.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
		return
	}
	// gonum checks the arguments (and panics as the BLAS interface
	// specifies) for the calls it serves; these are the same checks.
	checkSgemm(tA, tB, m, n, k, len(a), lda, len(bm), ldb, len(c), ldc)
	s := blasPool.Get().(*blasScratch)
	defer blasPool.Put(s)

	repack(&s.w, bm, ldb, n, k, tB == blas.NoTrans)

	// op(A), m×k with its stride.
	ap, aStride := a, lda
	if tA != blas.NoTrans {
		s.at = grow(s.at, m*k)
		for p := range k {
			row := a[p*lda : p*lda+m]
			for i, v := range row {
				s.at[i*k+p] = v
			}
		}
		ap, aStride = s.at, k
	}

	direct := alpha == 1 && beta == 0
	out, outStride := c, ldc
	if !direct {
		s.t = grow(s.t, m*n)
		out, outStride = s.t, n
	}
	mulRows(&s.w, out, outStride, ap, aStride, m, &s.buf)
	if direct {
		return
	}
	for i := range m {
		ci, ti := c[i*ldc:i*ldc+n], s.t[i*n:i*n+n]
		if beta == 0 {
			for j, v := range ti {
				ci[j] = alpha * v
			}
			continue
		}
		for j, v := range ti {
			ci[j] = alpha*v + beta*ci[j]
		}
	}
}

// mulRows is p.Mul over m rows, split across the cores when the product
// is large enough to pay for the goroutines. A row's result does not
// depend on which rows share its call, so the split changes nothing.
func mulRows(p *Packed, c []float32, ldc int, a []float32, lda, m int, buf *Buf) {
	const minRowsPerWorker = 4 * mr
	workers := min(runtime.GOMAXPROCS(0), m/minRowsPerWorker)
	if workers < 2 || m*p.N*p.K < 1<<20 {
		p.Mul(c, ldc, a, lda, m, nil, false, buf)
		return
	}
	per := (m + workers - 1) / workers
	per = (per + mr - 1) / mr * mr
	var wg sync.WaitGroup
	for lo := per; lo < m; lo += per {
		rows := min(per, m-lo)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b Buf
			p.Mul(c[lo*ldc:], ldc, a[lo*lda:], lda, rows, nil, false, &b)
		}()
	}
	p.Mul(c, ldc, a, lda, min(per, m), nil, false, buf)
	wg.Wait()
}

// repack packs op(B)ᵀ [n, k] into p, reusing p's panels. B is k×n when
// kn (the panels' own k-major order: a straight copy of 16 columns per k
// step), n×k otherwise; ld is its row stride.
func repack(p *Packed, bm []float32, ld, n, k int, kn bool) {
	p.N, p.K, p.panels, p.w16 = n, k, (n+nr-1)/nr, nil
	p.w32 = grow(p.w32, p.panels*k*nr)
	if n%nr != 0 {
		clear(p.w32[(p.panels-1)*k*nr:])
	}
	if kn {
		for q := range p.panels {
			j0, cols := q*nr, min(nr, n-q*nr)
			panel := p.w32[q*k*nr:]
			for i := range k {
				copy(panel[i*nr:i*nr+cols], bm[i*ld+j0:])
			}
		}
		return
	}
	for j := range n {
		q, l := j/nr, j%nr
		dst := p.w32[q*k*nr+l:]
		for i, v := range bm[j*ld : j*ld+k] {
			dst[i*nr] = v
		}
	}
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// checkSgemm panics, with the messages of gonum's BLAS, on the argument
// errors the standard defines.
func checkSgemm(tA, tB blas.Transpose, m, n, k, la, lda, lb, ldb, lc, ldc int) {
	if tA != blas.NoTrans && tA != blas.Trans && tA != blas.ConjTrans {
		panic("blas: illegal transpose")
	}
	if tB != blas.NoTrans && tB != blas.Trans && tB != blas.ConjTrans {
		panic("blas: illegal transpose")
	}
	rowA, colA := m, k
	if tA != blas.NoTrans {
		rowA, colA = k, m
	}
	rowB, colB := k, n
	if tB != blas.NoTrans {
		rowB, colB = n, k
	}
	switch {
	case lda < max(1, colA):
		panic("blas: bad leading dimension of A")
	case ldb < max(1, colB):
		panic("blas: bad leading dimension of B")
	case ldc < max(1, n):
		panic("blas: bad leading dimension of C")
	case la < lda*(rowA-1)+colA:
		panic("blas: insufficient length of a")
	case lb < ldb*(rowB-1)+colB:
		panic("blas: insufficient length of b")
	case lc < ldc*(m-1)+n:
		panic("blas: insufficient length of c")
	}
}
