package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

var benchShapes = [][3]int{
	{1, 128, 256},
	{64, 128, 256},
	{512, 128, 256},
	{2048, 128, 256},
	{512, 128, 128},
	{512, 128, 1152},
}

func reportGFLOPS(b *testing.B, flopsPerOp float64) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(flopsPerOp*float64(b.N)/s/1e9, "GFLOP/s")
	}
}

func benchMul(b *testing.B, m, n, k int, bf bool) {
	rng := rand.New(rand.NewPCG(1, 1))
	w := randSlice(rng, n*k)
	a := randSlice(rng, m*k)
	bias := randSlice(rng, n)
	c := make([]float32, m*n)
	pk := Pack(w, n, k)
	if bf {
		pk = PackBF16(w, n, k)
	}
	var buf Buf
	pk.Mul(c, n, a, k, m, bias, true, &buf)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pk.Mul(c, n, a, k, m, bias, true, &buf)
	}
	reportGFLOPS(b, 2*float64(m)*float64(n)*float64(k))
}

func BenchmarkMul(b *testing.B) {
	for _, bf := range []bool{false, true} {
		kind := "f32"
		if bf {
			kind = "bf16"
		}
		for _, d := range benchShapes {
			b.Run(fmt.Sprintf("%s/m=%d/n=%d/k=%d", kind, d[0], d[1], d[2]), func(b *testing.B) {
				benchMul(b, d[0], d[1], d[2], bf)
			})
		}
	}
}

// BenchmarkMulGo is the pure-Go kernel (the noasm build's) at one size.
func BenchmarkMulGo(b *testing.B) {
	saved := useAsm
	defer func() { useAsm = saved }()
	useAsm = false
	b.Run("f32/m=64/n=128/k=256", func(b *testing.B) { benchMul(b, 64, 128, 256, false) })
}

// BenchmarkPeak is the core's FMA throughput: 12 independent register-only
// VFMADD231PS a loop iteration, no loads (2 FMA pipes × 8 lanes × 2 flops
// a cycle when nothing else limits).
func BenchmarkPeak(b *testing.B) {
	if !useAsm {
		b.Skip("no assembly kernel")
	}
	const iters = 1000
	for b.Loop() {
		fmaPeak(iters)
	}
	reportGFLOPS(b, iters*12*8*2)
}

// BenchmarkKernel is the micro-kernel alone on one 6×16 tile with A and
// the W panel in L1: the single-core ceiling the driver can approach.
func BenchmarkKernel(b *testing.B) {
	if !useAsm {
		b.Skip("no assembly kernel")
	}
	const k = 256
	ld := ldPack(k)
	rng := rand.New(rand.NewPCG(2, 2))
	a := randSlice(rng, mr*ld)
	w := randSlice(rng, k*nr)
	w16 := PackBF16(w, nr, k).w16
	c := make([]float32, mr*nr)
	b.Run("f32", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			kernF32(k, &a[0], ld, &w[0], &c[0], nr, nil, 0)
		}
		reportGFLOPS(b, 2*mr*nr*k)
	})
	b.Run("bf16", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			kernBF16(k, &a[0], ld, &w16[0], &c[0], nr, nil, 0)
		}
		reportGFLOPS(b, 2*mr*nr*k)
	})
}

// BenchmarkGonum is the alternative the engine does not use: gonum's pure-Go
// SGEMM (C = A·Wᵀ, no bias) on the same shapes, single-threaded as Mul is
// (gonum splits large products over goroutines, so one core is pinned with
// GOMAXPROCS=1 in the command of docs/BENCHMARKS.md).
func BenchmarkGonum(b *testing.B) {
	for _, s := range benchShapes {
		m, n, k := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("m=%d/n=%d/k=%d", m, n, k), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			w := blas32.General{Rows: n, Cols: k, Stride: k, Data: randSlice(rng, n*k)}
			a := blas32.General{Rows: m, Cols: k, Stride: k, Data: randSlice(rng, m*k)}
			c := blas32.General{Rows: m, Cols: n, Stride: n, Data: make([]float32, m*n)}
			b.ReportAllocs()
			for b.Loop() {
				blas32.Gemm(blas.NoTrans, blas.Trans, 1, a, w, 0, c)
			}
			reportGFLOPS(b, 2*float64(m*n*k))
		})
	}
}
