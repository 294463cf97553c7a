package gemm

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// sgemmCase is one call, with strides padded past the minimum.
type sgemmCase struct {
	tA, tB      blas.Transpose
	m, n, k     int
	alpha, beta float32
	pad         int
}

// checkAgainstGonum runs BLAS.Sgemm and gonum's on the same inputs and
// compares every output against the magnitude of its terms.
func checkAgainstGonum(t *testing.T, rng *rand.Rand, c sgemmCase) {
	t.Helper()
	rowA, colA := c.m, c.k
	if c.tA == blas.Trans {
		rowA, colA = c.k, c.m
	}
	rowB, colB := c.k, c.n
	if c.tB == blas.Trans {
		rowB, colB = c.n, c.k
	}
	lda, ldb, ldc := colA+c.pad, colB+c.pad, c.n+c.pad
	a := randSlice(rng, max(0, (rowA-1)*lda+colA))
	b := randSlice(rng, max(0, (rowB-1)*ldb+colB))
	c0 := randSlice(rng, max(0, (c.m-1)*ldc+c.n))
	if c.beta == 0 {
		// β = 0 must not read C: NaNs there must not leak.
		for i := range c0 {
			c0[i] = float32(math.NaN())
		}
	}
	got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
	BLAS{}.Sgemm(c.tA, c.tB, c.m, c.n, c.k, c.alpha, a, lda, b, ldb, c.beta, got, ldc)
	gonum.Implementation{}.Sgemm(c.tA, c.tB, c.m, c.n, c.k, c.alpha, a, lda, b, ldb, c.beta, want, ldc)
	at := func(i, p int) float32 {
		if c.tA == blas.Trans {
			return a[p*lda+i]
		}
		return a[i*lda+p]
	}
	bt := func(p, j int) float32 {
		if c.tB == blas.Trans {
			return b[j*ldb+p]
		}
		return b[p*ldb+j]
	}
	for i := range c.m {
		for j := range c.n {
			var mag float64
			for p := range c.k {
				mag += math.Abs(float64(at(i, p)) * float64(bt(p, j)))
			}
			mag *= math.Abs(float64(c.alpha))
			if c.beta != 0 {
				mag += math.Abs(float64(c.beta) * float64(c0[i*ldc+j]))
			}
			g, w := got[i*ldc+j], want[i*ldc+j]
			if d := math.Abs(float64(g - w)); !(d <= 2e-6*mag+1e-30) {
				t.Fatalf("%+v: C[%d,%d] = %v, gonum %v (|Δ| %.3g, terms %.3g)", c, i, j, g, w, d, mag)
			}
		}
		// Padding between rows is left alone.
		for j := c.n; j < ldc && i < c.m-1; j++ {
			if g, w := got[i*ldc+j], c0[i*ldc+j]; math.Float32bits(g) != math.Float32bits(w) {
				t.Fatalf("%+v: padding C[%d,%d] changed to %v", c, i, j, g)
			}
		}
	}
}

// TestSgemmMatchesGonum: every transpose combination, α and β, padded
// strides, shapes around the kernel's tile edges and both sides of the
// size threshold below which gonum's own loops run.
func TestSgemmMatchesGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	trans := []blas.Transpose{blas.NoTrans, blas.Trans}
	shapes := [][3]int{{6, 16, 32}, {7, 17, 33}, {64, 128, 32}, {256, 32, 128}, {5, 200, 200}, {100, 1, 64}, {33, 47, 1}, {300, 130, 70}, {2, 3, 4}}
	for _, tA := range trans {
		for _, tB := range trans {
			for _, sh := range shapes {
				for _, ab := range [][2]float32{{1, 0}, {1, 1}, {-0.5, 2}, {2, 0}} {
					for _, pad := range []int{0, 3} {
						checkAgainstGonum(t, rng, sgemmCase{tA, tB, sh[0], sh[1], sh[2], ab[0], ab[1], pad})
					}
				}
			}
		}
	}
	for range 200 {
		c := sgemmCase{trans[rng.IntN(2)], trans[rng.IntN(2)], 1 + rng.IntN(90), 1 + rng.IntN(90), 1 + rng.IntN(90), 1, 0, rng.IntN(4)}
		if rng.IntN(3) == 0 {
			c.beta = 1
		}
		checkAgainstGonum(t, rng, c)
	}
}

// TestSgemmSplitIsExact: a product large enough to be split across
// goroutines gives the same bits as the kernel over all rows at once.
func TestSgemmSplitIsExact(t *testing.T) {
	if !useAsm {
		t.Skip("the BLAS uses gonum without the assembly kernel")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	m, n, k := 600, 96, 64
	a, b := randSlice(rng, m*k), randSlice(rng, n*k)
	got := make([]float32, m*n)
	BLAS{}.Sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, a, k, b, k, 0, got, n)
	want := make([]float32, m*n)
	Pack(b, n, k).Mul(want, n, a, k, m, nil, false, &Buf{})
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("C[%d] = %v, unsplit %v", i, got[i], want[i])
		}
	}
}

// TestSgemmBadArguments: the BLAS panics on argument errors as gonum's
// does, whichever kernel would have run.
func TestSgemmBadArguments(t *testing.T) {
	a := make([]float32, 64*64)
	for _, f := range []func(){
		func() { BLAS{}.Sgemm(blas.NoTrans, blas.NoTrans, 64, 64, 64, 1, a, 63, a, 64, 0, a, 64) },
		func() { BLAS{}.Sgemm(blas.NoTrans, blas.NoTrans, 64, 64, 64, 1, a[:100], 64, a, 64, 0, a, 64) },
		func() { BLAS{}.Sgemm(blas.Transpose('x'), blas.NoTrans, 64, 64, 64, 1, a, 64, a, 64, 0, a, 64) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

func BenchmarkSgemmTraining(b *testing.B) {
	// A training step's typical product: batch 256, inner dimension 32.
	for _, impl := range []struct {
		name string
		f    func(blas.Transpose, blas.Transpose, int, int, int, float32, []float32, int, []float32, int, float32, []float32, int)
	}{{"tandem", BLAS{}.Sgemm}, {"gonum", gonum.Implementation{}.Sgemm}} {
		b.Run(impl.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, 6))
			m, n, k := 256, 128, 32
			a, w, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
			b.SetBytes(0)
			for b.Loop() {
				impl.f(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, w, n, 0, c, n)
			}
			b.ReportMetric(float64(2*m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
