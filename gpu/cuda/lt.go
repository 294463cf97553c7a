package cuda

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// Lt is the bound cuBLASLt (libcublasLt).
type Lt struct {
	cublasLtCreate                 func(h *uintptr) int32
	cublasLtDestroy                func(h uintptr) int32
	cublasLtGetVersion             func() uint64
	cublasLtGetStatusName          func(s int32) unsafe.Pointer
	cublasLtGetStatusString        func(s int32) unsafe.Pointer
	cublasLtMatmulDescCreate       func(d *uintptr, compute, scale int32) int32
	cublasLtMatmulDescDestroy      func(d uintptr) int32
	cublasLtMatmulDescSetAttribute func(d uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32
	cublasLtMatrixLayoutCreate     func(l *uintptr, dtype int32, rows, cols uint64, ld int64) int32
	cublasLtMatrixLayoutDestroy    func(l uintptr) int32
	cublasLtMatmul                 func(h, desc uintptr, alpha unsafe.Pointer, a uint64, ad uintptr, b uint64, bd uintptr, beta unsafe.Pointer, c uint64, cd uintptr, d uint64, dd uintptr, algo unsafe.Pointer, ws uint64, wsBytes uint64, s uintptr) int32

	mu      sync.Mutex     // guards scratch
	scratch unsafe.Pointer // 8 bytes of C memory for attribute values
}

func (l *Lt) bind(b *binder) {
	b.fn(&l.cublasLtCreate, "cublasLtCreate")
	b.fn(&l.cublasLtDestroy, "cublasLtDestroy")
	b.fn(&l.cublasLtGetVersion, "cublasLtGetVersion")
	b.fn(&l.cublasLtGetStatusName, "cublasLtGetStatusName")
	b.fn(&l.cublasLtGetStatusString, "cublasLtGetStatusString")
	b.fn(&l.cublasLtMatmulDescCreate, "cublasLtMatmulDescCreate")
	b.fn(&l.cublasLtMatmulDescDestroy, "cublasLtMatmulDescDestroy")
	b.fn(&l.cublasLtMatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute")
	b.fn(&l.cublasLtMatrixLayoutCreate, "cublasLtMatrixLayoutCreate")
	b.fn(&l.cublasLtMatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy")
	b.fn(&l.cublasLtMatmul, "cublasLtMatmul")
}

// init allocates the attribute scratch; it lives as long as the process
// (an API is loaded once).
func (l *Lt) init() error {
	if l.scratch = cAlloc(8); l.scratch == nil {
		return errors.New("cuda: malloc of the cuBLASLt attribute scratch failed")
	}
	return nil
}

func (l *Lt) check(fn string, r int32) error {
	return statusError("cublasLt", fn, r, l.cublasLtGetStatusName, l.cublasLtGetStatusString)
}

// Create creates a cuBLASLt handle.
func (l *Lt) Create() (Handle, error) {
	var h uintptr
	err := l.check("cublasLtCreate", l.cublasLtCreate(&h))
	return Handle(h), err
}

// Destroy destroys h.
func (l *Lt) Destroy(h Handle) error {
	return l.check("cublasLtDestroy", l.cublasLtDestroy(uintptr(h)))
}

// Version is cuBLASLt's version, e.g. 130000.
func (l *Lt) Version() uint64 { return l.cublasLtGetVersion() }

// MatmulDescCreate creates a matmul descriptor with the compute type and
// the scale (alpha, beta) data type.
func (l *Lt) MatmulDescCreate(compute, scaleType int) (Handle, error) {
	var d uintptr
	err := l.check("cublasLtMatmulDescCreate", l.cublasLtMatmulDescCreate(&d, int32(compute), int32(scaleType)))
	return Handle(d), err
}

// MatmulDescDestroy destroys d.
func (l *Lt) MatmulDescDestroy(d Handle) error {
	return l.check("cublasLtMatmulDescDestroy", l.cublasLtMatmulDescDestroy(uintptr(d)))
}

// MatmulDescSetAttribute sets attr (LtDesc* constants) of desc to the size
// bytes at value (C memory).
func (l *Lt) MatmulDescSetAttribute(desc Handle, attr int, value unsafe.Pointer, size uintptr) error {
	if err := l.check("cublasLtMatmulDescSetAttribute", l.cublasLtMatmulDescSetAttribute(uintptr(desc), int32(attr), value, size)); err != nil {
		return fmt.Errorf("%w (attribute %d)", err, attr)
	}
	return nil
}

// SetInt32Attr sets a 32-bit attribute (transposes, epilogue, data types).
func (l *Lt) SetInt32Attr(desc Handle, attr int, v int32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*(*int32)(l.scratch) = v
	return l.MatmulDescSetAttribute(desc, attr, l.scratch, 4)
}

// SetPtrAttr sets a pointer attribute (the bias pointer).
func (l *Lt) SetPtrAttr(desc Handle, attr int, p Ptr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*(*uint64)(l.scratch) = uint64(p)
	return l.MatmulDescSetAttribute(desc, attr, l.scratch, 8)
}

// MatrixLayoutCreate describes a column-major rows×cols matrix of dtype
// with leading dimension ld.
func (l *Lt) MatrixLayoutCreate(dtype int, rows, cols uint64, ld int64) (Handle, error) {
	var h uintptr
	err := l.check("cublasLtMatrixLayoutCreate", l.cublasLtMatrixLayoutCreate(&h, int32(dtype), rows, cols, ld))
	return Handle(h), err
}

// MatrixLayoutDestroy destroys layout h.
func (l *Lt) MatrixLayoutDestroy(h Handle) error {
	return l.check("cublasLtMatrixLayoutDestroy", l.cublasLtMatrixLayoutDestroy(uintptr(h)))
}

// Matmul is cublasLtMatmul: D = epilogue(alpha·op(A)·op(B) + beta·C) on s,
// with algo nil for the implicit heuristic.
func (l *Lt) Matmul(h, desc Handle, alpha unsafe.Pointer, A Ptr, aDesc Handle, B Ptr, bDesc Handle,
	beta unsafe.Pointer, C Ptr, cDesc Handle, D Ptr, dDesc Handle, algo unsafe.Pointer, ws Ptr, wsBytes uint64,
	s Stream) error {
	return l.check("cublasLtMatmul", l.cublasLtMatmul(uintptr(h), uintptr(desc), alpha, uint64(A), uintptr(aDesc),
		uint64(B), uintptr(bDesc), beta, uint64(C), uintptr(cDesc), uint64(D), uintptr(dDesc), algo, uint64(ws),
		wsBytes, uintptr(s)))
}

// LinearDesc describes Y(rows×out, ldy) = X(rows×in, ldx)·Wᵀ + bias (then ReLU) for W stored [out,in] row-major (ld = in): transa=T, m=out, n=rows, k=in on the column-major side, bias per output.
//
// A is W's layout (in×out, ld in), B is X's (in×rows, ld ldx) and C is Y's
// (out×rows, ld ldy, fp32), used for both C and D.
type LinearDesc struct{ Desc, A, B, C Handle }

// NewLinear builds the descriptor and layouts of a row-major Linear. bias
// (fp32, out values) may be 0 for none; relu adds the ReLU epilogue.
func (l *Lt) NewLinear(rows, in, out, ldx, ldy int, wType, xType int, compute int, bias Ptr, relu bool) (*LinearDesc, error) {
	if rows < 0 || in < 1 || out < 1 || ldx < in || ldy < out {
		return nil, fmt.Errorf("cuda: NewLinear: rows %d, in %d, out %d, ldx %d, ldy %d: want ldx ≥ in ≥ 1, ldy ≥ out ≥ 1", rows, in, out, ldx, ldy)
	}
	d := &LinearDesc{}
	var err error
	fail := func(e error) (*LinearDesc, error) {
		_ = l.FreeLinear(d)
		return nil, e
	}
	if d.Desc, err = l.MatmulDescCreate(compute, R32F); err != nil {
		return fail(err)
	}
	epi := int32(EpilogueDefault)
	switch {
	case bias != 0 && relu:
		epi = EpilogueReLUBias
	case bias != 0:
		epi = EpilogueBias
	case relu:
		epi = EpilogueReLU
	}
	if err = l.SetInt32Attr(d.Desc, LtDescTransA, OpT); err != nil {
		return fail(err)
	}
	if err = l.SetInt32Attr(d.Desc, LtDescTransB, OpN); err != nil {
		return fail(err)
	}
	if err = l.SetInt32Attr(d.Desc, LtDescEpilogue, epi); err != nil {
		return fail(err)
	}
	if bias != 0 {
		if err = l.SetPtrAttr(d.Desc, LtDescBiasPointer, bias); err != nil {
			return fail(err)
		}
		if err = l.SetInt32Attr(d.Desc, LtDescBiasDataType, R32F); err != nil {
			return fail(err)
		}
	}
	if d.A, err = l.MatrixLayoutCreate(wType, uint64(in), uint64(out), int64(in)); err != nil {
		return fail(err)
	}
	if d.B, err = l.MatrixLayoutCreate(xType, uint64(in), uint64(rows), int64(ldx)); err != nil {
		return fail(err)
	}
	if d.C, err = l.MatrixLayoutCreate(R32F, uint64(out), uint64(rows), int64(ldy)); err != nil {
		return fail(err)
	}
	return d, nil
}

// RunLinear computes Y = alpha·X·Wᵀ + beta·Y (+ bias, ReLU as described)
// on s; alpha and beta are float32 in C memory.
func (l *Lt) RunLinear(h Handle, d *LinearDesc, alpha, beta unsafe.Pointer, W, X, Y Ptr, ws Ptr, wsBytes uint64, s Stream) error {
	return l.Matmul(h, d.Desc, alpha, W, d.A, X, d.B, beta, Y, d.C, Y, d.C, nil, ws, wsBytes, s)
}

// FreeLinear destroys d's descriptor and layouts; the first error is
// returned, the rest are still released.
func (l *Lt) FreeLinear(d *LinearDesc) error {
	if d == nil {
		return nil
	}
	var errs []error
	for _, h := range []Handle{d.A, d.B, d.C} {
		if h != 0 {
			errs = append(errs, l.MatrixLayoutDestroy(h))
		}
	}
	if d.Desc != 0 {
		errs = append(errs, l.MatmulDescDestroy(d.Desc))
	}
	*d = LinearDesc{}
	return errors.Join(errs...)
}
