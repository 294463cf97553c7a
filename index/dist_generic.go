//go:build !amd64 || noasm

package index

// hasAsm reports whether the assembly kernels can run here: never in this
// build.
const hasAsm = false

// useAsm exists so that tests can set it; it selects nothing here.
var useAsm = false

func dot4AVX2(out *[4]float32, q, a, b, c, d, pa, pb, pc, pd *float32, n int) {
	panic("index: no assembly in this build")
}

func l2x4AVX2(out *[4]float32, q, a, b, c, d, pa, pb, pc, pd *float32, n int) {
	panic("index: no assembly in this build")
}

func l2x1AVX2(a, b *float32, n int) float32 { panic("index: no assembly in this build") }

func dot1AVX2(a, b *float32, n int) float32 { panic("index: no assembly in this build") }

func prefetch4AVX2(a, b, c, d *float32, n int) {}

func prefetch1(p *int32) {}
