//go:build amd64 && !noasm

package gemm

import "golang.org/x/sys/cpu"

// useAsm selects the AVX2+FMA micro-kernels. Tests turn it off to run the
// pure-Go kernels on the same machine.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kernF32 is the assembly micro-kernel on fp32 panels: the 6×16 tile of C
// at c (row stride ldc floats) from the 6 rows of A at a (row stride lda
// floats) and k steps of the panel at w. See kernGoF32 for the exact
// operations.
//
//go:noescape
func kernF32(k int, a *float32, lda int, w *float32, c *float32, ldc int, bias *float32, flags int)

// kernBF16 is kernF32 on bfloat16 panels.
//
//go:noescape
func kernBF16(k int, a *float32, lda int, w *uint16, c *float32, ldc int, bias *float32, flags int)

// fmaPeak runs n iterations of 12 independent register-only FMAs (8 lanes
// each): a measure of the core's FMA peak for the benchmarks.
//
//go:noescape
func fmaPeak(n int)
