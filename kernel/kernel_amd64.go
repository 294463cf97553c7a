//go:build amd64 && !noasm

package kernel

import "golang.org/x/sys/cpu"

// hasAsm reports whether the assembly kernels can run here.
var hasAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// useAsm selects the assembly kernels; tests turn it off to run the
// pure-Go twins on the same machine.
var useAsm = hasAsm

func dotsF32(out, q, rows []float32, d int) {
	if useAsm && d >= 8 {
		dotsF32AVX2(out, q, rows, d)
		return
	}
	dotsF32Go(out, q, rows, d)
}

func dotsBF16(out, q []float32, rows []uint16, d int) {
	if useAsm && d >= 8 {
		dotsBF16AVX2(out, q, rows, d)
		return
	}
	dotsBF16Go(out, q, rows, d)
}

func firstAbove(x []float32, t float32) int {
	if useAsm {
		return firstAboveAVX2(x, t)
	}
	return firstAboveGo(x, t)
}

// softmax runs the assembly on ordinary rows; rows with a NaN or an
// infinite maximum, which the assembly declines without writing anything,
// go to the pure-Go path.
func softmax(x []float32) {
	if useAsm && softmaxAVX2(x) {
		return
	}
	softmaxGo(x)
}

// dotsF32AVX2 and dotsBF16AVX2 need len(out) ≥ 1, d ≥ 8, len(q) ≥ d and
// len(rows) ≥ len(out)·d; they read nothing outside q[:d] and
// rows[:len(out)·d].
//
//go:noescape
func dotsF32AVX2(out, q, rows []float32, d int)

//go:noescape
func dotsBF16AVX2(out, q []float32, rows []uint16, d int)

//go:noescape
func firstAboveAVX2(x []float32, t float32) int

// softmaxAVX2 computes Softmax of a non-empty row in place and reports
// true, or reports false and leaves x untouched when the row holds a NaN
// or its maximum is infinite. It reads and writes nothing outside x.
//
//go:noescape
func softmaxAVX2(x []float32) bool
