//go:build !amd64 || noasm

package gemm

// useAsm is false: this build has no assembly kernels.
var useAsm = false

func kernF32(k int, a *float32, lda int, w *float32, c *float32, ldc int, bias *float32, flags int) {
	panic("gemm: no assembly kernel in this build")
}

func kernBF16(k int, a *float32, lda int, w *uint16, c *float32, ldc int, bias *float32, flags int) {
	panic("gemm: no assembly kernel in this build")
}

func fmaPeak(n int) { panic("gemm: no assembly kernel in this build") }
