package kernel

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

const benchRows = 100_000

// benchModes runs fn once per available Dots path, as sub-benchmarks.
func benchModes(b *testing.B, fn func(b *testing.B)) {
	for _, asm := range modes() {
		b.Run(modeName(asm), func(b *testing.B) {
			setAsm(b, asm)
			fn(b)
		})
	}
}

func reportRows(b *testing.B, n int) {
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkDots(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, d := range []int{32, 64} {
		q := randVec(r, d, 1)
		rows := randVec(r, benchRows*d, 1)
		out := make([]float32, benchRows)
		b.Run(fmt.Sprintf("d=%d", d), func(b *testing.B) {
			benchModes(b, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(4 * len(rows)))
				for b.Loop() {
					Dots(out, q, rows, d)
				}
				reportRows(b, benchRows)
			})
		})
	}
}

func BenchmarkDotsBF16(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, d := range []int{32, 64} {
		q := randVec(r, d, 1)
		rows := randBF16(r, benchRows*d)
		out := make([]float32, benchRows)
		b.Run(fmt.Sprintf("d=%d", d), func(b *testing.B) {
			benchModes(b, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(2 * len(rows)))
				for b.Loop() {
					DotsBF16(out, q, rows, d)
				}
				reportRows(b, benchRows)
			})
		})
	}
}

func BenchmarkTopK(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	scores := randVec(r, benchRows, 1)
	for _, k := range []int{100, 1000} {
		idx := make([]int32, 0, k)
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(4 * len(scores)))
			for b.Loop() {
				idx = TopK(idx, scores, k)
			}
		})
	}
}

func BenchmarkSoftmax32(b *testing.B) {
	x := randVec(rand.New(rand.NewPCG(4, 4)), 32, 3)
	w := make([]float32, len(x))
	b.ReportAllocs()
	for b.Loop() {
		copy(w, x)
		Softmax(w)
	}
}

func BenchmarkLayerNorm32x32(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 5))
	x := randVec(r, 32*32, 2)
	g, bias := randVec(r, 32, 1), randVec(r, 32, 1)
	dst := make([]float32, len(x))
	b.ReportAllocs()
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		LayerNorm(dst, x, 32, g, bias, 1e-5)
	}
}

// BenchmarkSoftmax runs Softmax on attention-sized rows, on both paths.
func BenchmarkSoftmax(b *testing.B) {
	for _, n := range []int{4, 8, 13, 32, 64} {
		x := randVec(rand.New(rand.NewPCG(6, uint64(n))), n, 3)
		w := make([]float32, n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			benchModes(b, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					copy(w, x)
					Softmax(w)
				}
			})
		})
	}
}
