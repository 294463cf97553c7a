package cuda_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tandemml/tandem/gpu/cuda"
)

func (e *env) lt() cuda.Handle {
	e.t.Helper()
	h, err := e.api.Lt.Create()
	e.must(err)
	e.t.Cleanup(func() { e.must(e.api.Lt.Destroy(h)) })
	return h
}

func TestLtArguments(t *testing.T) {
	e := setup(t)
	lt := e.api.Lt
	h := e.lt()
	desc, err := lt.MatmulDescCreate(cuda.Compute32FFast16BF, cuda.R32F)
	e.must(err)
	e.wantArgs("cublasLtMatmulDescCreate", map[string]string{"computeType": "75", "scaleType": "0"})
	e.must(lt.SetInt32Attr(desc, cuda.LtDescTransA, cuda.OpT))
	e.wantArgs("cublasLtMatmulDescSetAttribute", map[string]string{"matmulDesc": hex(uintptr(desc)), "attr": "3", "*buf": "0x1", "sizeInBytes": "4"})
	bias := e.alloc(64)
	e.must(lt.SetPtrAttr(desc, cuda.LtDescBiasPointer, bias))
	e.wantArgs("cublasLtMatmulDescSetAttribute", map[string]string{"attr": "8", "*buf": hex(uint64(bias)), "sizeInBytes": "8"})
	e.must(lt.SetInt32Attr(desc, cuda.LtDescEpilogue, cuda.EpilogueBias))
	e.wantArgs("cublasLtMatmulDescSetAttribute", map[string]string{"attr": "7", "*buf": "0x4"})

	// Layouts for D(3×4) = op_T(A: 5×3)·B(5×4) + C, each ld distinct.
	la, err := lt.MatrixLayoutCreate(cuda.R32F, 5, 3, 6)
	e.must(err)
	e.wantArgs("cublasLtMatrixLayoutCreate", map[string]string{"type": "0", "rows": "5", "cols": "3", "ld": "6"})
	lb, err := lt.MatrixLayoutCreate(cuda.R32F, 5, 4, 7)
	e.must(err)
	lc, err := lt.MatrixLayoutCreate(cuda.R32F, 3, 4, 8)
	e.must(err)
	ld, err := lt.MatrixLayoutCreate(cuda.R32F, 3, 4, 9)
	e.must(err)
	A, B, C, D, ws := e.alloc(4096), e.alloc(4096), e.alloc(4096), e.alloc(4096), e.alloc(8192)
	alpha, beta := e.scalar(2), e.scalar(0.5)
	e.must(lt.Matmul(h, desc, alpha, A, la, B, lb, beta, C, lc, D, ld, nil, ws, 8192, e.s))
	e.wantArgs("cublasLtMatmul", map[string]string{
		"lightHandle": hex(uintptr(h)), "computeDesc": hex(uintptr(desc)), "alpha": hex(uintptr(alpha)), "*alpha": "2",
		"A": hex(uint64(A)), "Adesc": hex(uintptr(la)), "B": hex(uint64(B)), "Bdesc": hex(uintptr(lb)),
		"beta": hex(uintptr(beta)), "*beta": "0.5", "C": hex(uint64(C)), "Cdesc": hex(uintptr(lc)),
		"D": hex(uint64(D)), "Ddesc": hex(uintptr(ld)), "algo": "0x0", "workspace": hex(uint64(ws)),
		"workspaceSizeInBytes": "8192", "stream": hex(uintptr(e.s)),
	})

	// Mismatched shapes are refused: C's layout swapped for B's.
	err = lt.Matmul(h, desc, alpha, A, la, B, lc, beta, C, lc, D, ld, nil, ws, 8192, e.s)
	var ce *cuda.Error
	if !errors.As(err, &ce) || ce.Lib != "cublasLt" || ce.Code != cuda.StatusInvalidValue {
		t.Errorf("Matmul with a 3×4 B for k=5: %v, want cublasLt CUBLAS_STATUS_INVALID_VALUE", err)
	}
	for _, l := range []cuda.Handle{la, lb, lc, ld} {
		e.must(lt.MatrixLayoutDestroy(l))
	}
	e.must(lt.MatmulDescDestroy(desc))
	for _, p := range []cuda.Ptr{A, B, C, D, ws, bias} {
		e.must(e.d.MemFree(p))
	}
}

// refLinear is Y(rows×out, ldy) = X(rows×in, ldx)·Wᵀ(W out×in) + bias,
// then ReLU, with alpha and beta.
func refLinear(rows, in, out, ldx, ldy int, alpha, beta float32, W, X, bias, Y []float32, relu bool) {
	for r := 0; r < rows; r++ {
		for o := 0; o < out; o++ {
			var acc float32
			for i := 0; i < in; i++ {
				acc += W[o*in+i] * X[r*ldx+i]
			}
			v := alpha * acc
			if beta != 0 {
				v += beta * Y[r*ldy+o]
			}
			if bias != nil {
				v += bias[o]
			}
			if relu && !(v > 0) {
				v = 0
			}
			Y[r*ldy+o] = v
		}
	}
}

func TestLinear(t *testing.T) {
	e := setup(t)
	lt := e.api.Lt
	h := e.lt()
	r := rand.New(rand.NewPCG(5, 6))
	const rows, in, out, ldx, ldy = 5, 6, 4, 9, 7
	for _, bf16 := range []bool{false, true} {
		for _, withBias := range []bool{false, true} {
			for _, relu := range []bool{false, true} {
				for _, beta := range []float32{0, 0.5} {
					name := fmt.Sprintf("bf16=%v/bias=%v/relu=%v/beta=%v", bf16, withBias, relu, beta)
					W, X := randMat(r, out*in, bf16), randMat(r, rows*ldx, bf16)
					Y := randMat(r, rows*ldy, false)
					for i := range Y {
						if i%ldy >= out { // padding must survive untouched
							Y[i] = float32(math.NaN())
						}
					}
					var bias []float32
					var dBias cuda.Ptr
					if withBias {
						bias = randMat(r, out, false)
						dBias = e.upload(f32bytes(bias))
					}
					want := append([]float32(nil), Y...)
					refLinear(rows, in, out, ldx, ldy, 1.5, beta, W, X, bias, want, relu)

					typ := cuda.R32F
					if bf16 {
						typ = cuda.R16BF
					}
					d, err := lt.NewLinear(rows, in, out, ldx, ldy, typ, typ, cuda.Compute32F, dBias, relu)
					e.must(err)
					dW, dX, dY := e.uploadAs(W, bf16), e.uploadAs(X, bf16), e.upload(f32bytes(Y))
					ws := e.alloc(1 << 12)
					e.must(lt.RunLinear(h, d, e.scalar(1.5), e.scalar(beta), dW, dX, dY, ws, 1<<12, e.s))
					got := bytesF32(e.download(dY, 4*len(Y)))
					for i := range want {
						if math.IsNaN(float64(want[i])) {
							if !math.IsNaN(float64(got[i])) {
								t.Fatalf("%s: padding element %d written: %v", name, i, got[i])
							}
						} else if !closeTo(got[i], want[i]) {
							t.Fatalf("%s: Y element %d (row %d, col %d) = %v, want %v", name, i, i/ldy, i%ldy, got[i], want[i])
						}
					}
					e.must(lt.FreeLinear(d))
					for _, p := range []cuda.Ptr{dW, dX, dY, ws} {
						e.must(e.d.MemFree(p))
					}
					if dBias != 0 {
						e.must(e.d.MemFree(dBias))
					}
				}
			}
		}
	}
	if _, err := lt.NewLinear(2, 4, 3, 3, 3, cuda.R32F, cuda.R32F, cuda.Compute32F, 0, false); err == nil {
		t.Error("NewLinear accepted ldx 3 < in 4")
	}
}
