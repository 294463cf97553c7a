package cuda

import (
	"fmt"
	"unsafe"
)

// BLAS is the bound cuBLAS (libcublas). Scale factors (alpha, beta) are
// float32 values in C memory, read by cuBLAS in host pointer mode.
type BLAS struct {
	cublasCreate               func(h *uintptr) int32
	cublasDestroy              func(h uintptr) int32
	cublasSetStream            func(h, s uintptr) int32
	cublasSetMathMode          func(h uintptr, mode int32) int32
	cublasSetWorkspace         func(h uintptr, ws uint64, bytes uint64) int32
	cublasGetVersion           func(h uintptr, v *int32) int32
	cublasGetStatusName        func(s int32) unsafe.Pointer
	cublasGetStatusString      func(s int32) unsafe.Pointer
	cublasGemmEx               func(h uintptr, ta, tb, m, n, k int32, alpha unsafe.Pointer, a uint64, atype, lda int32, b uint64, btype, ldb int32, beta unsafe.Pointer, c uint64, ctype, ldc, compute, algo int32) int32
	cublasGemmStridedBatchedEx func(h uintptr, ta, tb, m, n, k int32, alpha unsafe.Pointer, a uint64, atype, lda int32, sa int64, b uint64, btype, ldb int32, sb int64, beta unsafe.Pointer, c uint64, ctype, ldc int32, sc int64, batch, compute, algo int32) int32
}

func (b *BLAS) bind(x *binder) {
	x.fn(&b.cublasCreate, "cublasCreate_v2")
	x.fn(&b.cublasDestroy, "cublasDestroy_v2")
	x.fn(&b.cublasSetStream, "cublasSetStream_v2")
	x.fn(&b.cublasSetMathMode, "cublasSetMathMode")
	x.fn(&b.cublasSetWorkspace, "cublasSetWorkspace_v2")
	x.fn(&b.cublasGetVersion, "cublasGetVersion_v2")
	x.fn(&b.cublasGetStatusName, "cublasGetStatusName")
	x.fn(&b.cublasGetStatusString, "cublasGetStatusString")
	x.fn(&b.cublasGemmEx, "cublasGemmEx")
	x.fn(&b.cublasGemmStridedBatchedEx, "cublasGemmStridedBatchedEx")
}

func statusError(lib, fn string, r int32, name, msg func(int32) unsafe.Pointer) error {
	if r == 0 {
		return nil
	}
	e := &Error{Lib: lib, Func: fn, Code: int(r), Name: goString(name(r)), Msg: goString(msg(r))}
	if e.Name == "" {
		e.Name = fmt.Sprintf("cublasStatus_t(%d)", r)
	}
	return e
}

func (b *BLAS) check(fn string, r int32) error {
	return statusError("cublas", fn, r, b.cublasGetStatusName, b.cublasGetStatusString)
}

// Create creates a cuBLAS handle for the current context.
func (b *BLAS) Create() (Handle, error) {
	var h uintptr
	err := b.check("cublasCreate_v2", b.cublasCreate(&h))
	return Handle(h), err
}

// Destroy destroys h.
func (b *BLAS) Destroy(h Handle) error {
	return b.check("cublasDestroy_v2", b.cublasDestroy(uintptr(h)))
}

// SetStream makes h issue its work on s.
func (b *BLAS) SetStream(h Handle, s Stream) error {
	return b.check("cublasSetStream_v2", b.cublasSetStream(uintptr(h), uintptr(s)))
}

// SetMathMode sets h's math mode (MathDefault, MathPedantic, MathTF32).
func (b *BLAS) SetMathMode(h Handle, mode int) error {
	return b.check("cublasSetMathMode", b.cublasSetMathMode(uintptr(h), int32(mode)))
}

// SetWorkspace gives h a fixed device workspace (needed for graph capture).
func (b *BLAS) SetWorkspace(h Handle, ws Ptr, bytes uint64) error {
	return b.check("cublasSetWorkspace_v2", b.cublasSetWorkspace(uintptr(h), uint64(ws), bytes))
}

// Version is cuBLAS's version, e.g. 130000.
func (b *BLAS) Version(h Handle) (int, error) {
	var v int32
	err := b.check("cublasGetVersion_v2", b.cublasGetVersion(uintptr(h), &v))
	return int(v), err
}

// GemmEx is cublasGemmEx, column-major: C = alpha·op(A)·op(B) + beta·C.
func (b *BLAS) GemmEx(h Handle, transa, transb, m, n, k int, alpha unsafe.Pointer, A Ptr, aType, lda int,
	B Ptr, bType, ldb int, beta unsafe.Pointer, C Ptr, cType, ldc int, compute, algo int) error {
	return b.check("cublasGemmEx", b.cublasGemmEx(uintptr(h), int32(transa), int32(transb), int32(m), int32(n), int32(k),
		alpha, uint64(A), int32(aType), int32(lda), uint64(B), int32(bType), int32(ldb), beta, uint64(C), int32(cType),
		int32(ldc), int32(compute), int32(algo)))
}

// GemmStridedBatchedEx is cublasGemmStridedBatchedEx, column-major, over
// batch products whose operands are stride elements apart.
func (b *BLAS) GemmStridedBatchedEx(h Handle, transa, transb, m, n, k int, alpha unsafe.Pointer, A Ptr, aType, lda int,
	strideA int64, B Ptr, bType, ldb int, strideB int64, beta unsafe.Pointer, C Ptr, cType, ldc int, strideC int64,
	batch, compute, algo int) error {
	return b.check("cublasGemmStridedBatchedEx", b.cublasGemmStridedBatchedEx(uintptr(h), int32(transa), int32(transb),
		int32(m), int32(n), int32(k), alpha, uint64(A), int32(aType), int32(lda), strideA, uint64(B), int32(bType),
		int32(ldb), strideB, beta, uint64(C), int32(cType), int32(ldc), strideC, int32(batch), int32(compute), int32(algo)))
}

func op(trans bool) int {
	if trans {
		return OpT
	}
	return OpN
}

// RowMajorGemm issues C(m×n, row-major, ldc) = alpha·op(A)·op(B) + beta·C for row-major A, B as the column-major call with the operands swapped.
//
// op(A) is m×k: A is stored m×k (lda ≥ k) or, with transA, k×m (lda ≥ m);
// op(B) is k×n: B is stored k×n (ldb ≥ n) or, with transB, n×k (ldb ≥ k).
// A row-major matrix read column-major is its transpose, so the call is the
// column-major Cᵀ(n×m) = op(B)ᵀ·op(A)ᵀ: cublas(transB, transA, n, m, k, B,
// ldb, A, lda, C, ldc). The algorithm is GemmDefault.
func (b *BLAS) RowMajorGemm(h Handle, transA, transB bool, m, n, k int, alpha unsafe.Pointer, A Ptr, aType, lda int,
	B Ptr, bType, ldb int, beta unsafe.Pointer, C Ptr, cType, ldc int, compute int) error {
	return b.GemmEx(h, op(transB), op(transA), n, m, k, alpha, B, bType, ldb, A, aType, lda, beta, C, cType, ldc,
		compute, GemmDefault)
}

// RowMajorGemmStridedBatched is [BLAS.RowMajorGemm] over batch products
// whose A, B and C are strideA, strideB and strideC elements apart.
func (b *BLAS) RowMajorGemmStridedBatched(h Handle, transA, transB bool, m, n, k int, alpha unsafe.Pointer, A Ptr,
	aType, lda int, strideA int64, B Ptr, bType, ldb int, strideB int64, beta unsafe.Pointer, C Ptr, cType, ldc int,
	strideC int64, batch int, compute int) error {
	return b.GemmStridedBatchedEx(h, op(transB), op(transA), n, m, k, alpha, B, bType, ldb, strideB, A, aType, lda,
		strideA, beta, C, cType, ldc, strideC, batch, compute, GemmDefault)
}
