package cuda_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tandemml/tandem/gpu/cuda"
)

func (e *env) blas() cuda.Handle {
	e.t.Helper()
	h, err := e.api.BLAS.Create()
	e.must(err)
	e.t.Cleanup(func() { e.must(e.api.BLAS.Destroy(h)) })
	e.must(e.api.BLAS.SetStream(h, e.s))
	return h
}

func TestBLASArguments(t *testing.T) {
	e := setup(t)
	b := e.api.BLAS
	h := e.blas()
	e.wantArgs("cublasSetStream_v2", map[string]string{"handle": hex(uintptr(h)), "streamId": hex(uintptr(e.s))})
	e.must(b.SetMathMode(h, cuda.MathTF32))
	e.wantArgs("cublasSetMathMode", map[string]string{"handle": hex(uintptr(h)), "mode": "3"})
	ws := e.alloc(1 << 16)
	e.must(b.SetWorkspace(h, ws, 1<<16))
	e.wantArgs("cublasSetWorkspace_v2", map[string]string{"handle": hex(uintptr(h)), "workspace": hex(uint64(ws)), "workspaceSizeInBytes": "65536"})

	// 19 arguments, each distinct: transa=T, m=3, n=4, k=5, lda=6 ≥ k,
	// ldb=7 ≥ k, ldc=8 ≥ m, bf16 inputs.
	A, B, C := e.alloc(4096), e.alloc(4096), e.alloc(4096)
	alpha, beta := e.scalar(1.5), e.scalar(-0.25)
	e.must(b.GemmEx(h, cuda.OpT, cuda.OpN, 3, 4, 5, alpha, A, cuda.R16BF, 6, B, cuda.R16BF, 7, beta, C, cuda.R32F, 8, cuda.Compute32FFastTF32, cuda.GemmDefault))
	e.wantArgs("cublasGemmEx", map[string]string{
		"handle": hex(uintptr(h)), "transa": "1", "transb": "0", "m": "3", "n": "4", "k": "5",
		"alpha": hex(uintptr(alpha)), "*alpha": "1.5", "A": hex(uint64(A)), "Atype": "14", "lda": "6",
		"B": hex(uint64(B)), "Btype": "14", "ldb": "7", "beta": hex(uintptr(beta)), "*beta": "-0.25",
		"C": hex(uint64(C)), "Ctype": "0", "ldc": "8", "computeType": "77", "algo": "-1",
	})

	// 23 arguments: strides and the batch count too.
	e.must(b.GemmStridedBatchedEx(h, cuda.OpN, cuda.OpT, 2, 3, 4, beta, B, cuda.R32F, 5, 61, A, cuda.R32F, 6, 62,
		alpha, C, cuda.R32F, 7, 63, 2, cuda.Compute32FPedantic, 0))
	e.wantArgs("cublasGemmStridedBatchedEx", map[string]string{
		"handle": hex(uintptr(h)), "transa": "0", "transb": "1", "m": "2", "n": "3", "k": "4",
		"alpha": hex(uintptr(beta)), "*alpha": "-0.25", "A": hex(uint64(B)), "Atype": "0", "lda": "5", "strideA": "61",
		"B": hex(uint64(A)), "Btype": "0", "ldb": "6", "strideB": "62", "beta": hex(uintptr(alpha)), "*beta": "1.5",
		"C": hex(uint64(C)), "Ctype": "0", "ldc": "7", "strideC": "63", "batchCount": "2", "computeType": "69", "algo": "0",
	})

	// The stand-in validates like cuBLAS: lda < rows of the stored A.
	err := b.GemmEx(h, cuda.OpN, cuda.OpN, 3, 4, 5, alpha, A, cuda.R32F, 2, B, cuda.R32F, 7, beta, C, cuda.R32F, 8, cuda.Compute32F, cuda.GemmDefault)
	var ce *cuda.Error
	if !errors.As(err, &ce) || ce.Code != cuda.StatusInvalidValue || ce.Name != "CUBLAS_STATUS_INVALID_VALUE" || ce.Func != "cublasGemmEx" {
		t.Errorf("GemmEx with lda 2 < m 3: %v, want CUBLAS_STATUS_INVALID_VALUE", err)
	}
	for _, p := range []cuda.Ptr{A, B, C, ws} {
		e.must(e.d.MemFree(p))
	}
}

// refGemm is the row-major C = alpha·op(A)·op(B) + beta·C, in float32
// and k order like the stand-in.
func refGemm(transA, transB bool, m, n, k int, alpha float32, A []float32, lda int, B []float32, ldb int, beta float32, C []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var acc float32
			for l := 0; l < k; l++ {
				var a, b float32
				if transA {
					a = A[l*lda+i]
				} else {
					a = A[i*lda+l]
				}
				if transB {
					b = B[j*ldb+l]
				} else {
					b = B[l*ldb+j]
				}
				acc += a * b
			}
			c := &C[i*ldc+j]
			if beta == 0 {
				*c = alpha * acc
			} else {
				*c = alpha*acc + beta**c
			}
		}
	}
}

func randMat(r *rand.Rand, n int, bf16 bool) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
		if bf16 {
			v[i] = truncBF16(v[i])
		}
	}
	return v
}

func (e *env) uploadAs(v []float32, bf16 bool) cuda.Ptr {
	if bf16 {
		return e.upload(bf16bytes(v))
	}
	return e.upload(f32bytes(v))
}

func closeTo(a, b float32) bool { return within(a, b, 1e-5) }

func within(a, b float32, tol float64) bool {
	return math.Abs(float64(a-b)) <= tol*(1+math.Abs(float64(b)))
}

// compare checks got against want to within 1e-5, relative to 1 + |want|.
func compare(t *testing.T, what string, got, want []float32) {
	t.Helper()
	compareTol(t, what, got, want, 1e-5)
}

func compareTol(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	for i := range want {
		if !within(got[i], want[i], tol) {
			t.Fatalf("%s: element %d = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestRowMajorGemm(t *testing.T) {
	e := setup(t)
	h := e.blas()
	r := rand.New(rand.NewPCG(1, 2))
	const m, n, k = 3, 5, 4
	for _, bf16 := range []bool{false, true} {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			transA, transB := tr[0], tr[1]
			name := fmt.Sprintf("bf16=%v/transA=%v/transB=%v", bf16, transA, transB)
			func() {
				// Stored shapes, with leading dimensions larger than minimal.
				aRows, aCols := m, k
				if transA {
					aRows, aCols = k, m
				}
				bRows, bCols := k, n
				if transB {
					bRows, bCols = n, k
				}
				lda, ldb, ldc := aCols+2, bCols+3, n+1
				A, B := randMat(r, aRows*lda, bf16), randMat(r, bRows*ldb, bf16)
				C := randMat(r, m*ldc, false)
				want := append([]float32(nil), C...)
				refGemm(transA, transB, m, n, k, 0.75, A, lda, B, ldb, 0.5, want, ldc)

				typ := cuda.R32F
				if bf16 {
					typ = cuda.R16BF
				}
				dA, dB, dC := e.uploadAs(A, bf16), e.uploadAs(B, bf16), e.upload(f32bytes(C))
				e.must(e.api.BLAS.RowMajorGemm(h, transA, transB, m, n, k, e.scalar(0.75), dA, typ, lda, dB, typ, ldb,
					e.scalar(0.5), dC, cuda.R32F, ldc, cuda.Compute32FPedantic))
				compare(t, name, bytesF32(e.download(dC, 4*len(C))), want)
				for _, p := range []cuda.Ptr{dA, dB, dC} {
					e.must(e.d.MemFree(p))
				}
			}()
		}
	}
}

func TestRowMajorGemmRejectsShortLeadingDimension(t *testing.T) {
	e := setup(t)
	h := e.blas()
	A, B, C := e.alloc(4096), e.alloc(4096), e.alloc(4096)
	// Row-major B is 4×5: ldb 4 < n 5 must be refused.
	err := e.api.BLAS.RowMajorGemm(h, false, false, 3, 5, 4, e.scalar(1), A, cuda.R32F, 4, B, cuda.R32F, 4, e.scalar(0), C, cuda.R32F, 5, cuda.Compute32F)
	var ce *cuda.Error
	if !errors.As(err, &ce) || ce.Code != cuda.StatusInvalidValue {
		t.Errorf("RowMajorGemm with ldb < n: %v, want CUBLAS_STATUS_INVALID_VALUE", err)
	}
	for _, p := range []cuda.Ptr{A, B, C} {
		e.must(e.d.MemFree(p))
	}
}

func TestRowMajorGemmStridedBatched(t *testing.T) {
	e := setup(t)
	h := e.blas()
	r := rand.New(rand.NewPCG(3, 4))
	const m, n, k, batch = 4, 3, 5, 3
	for _, bf16 := range []bool{false, true} {
		for _, tr := range [][2]bool{{false, true}, {true, false}} {
			transA, transB := tr[0], tr[1]
			name := fmt.Sprintf("bf16=%v/transA=%v/transB=%v", bf16, transA, transB)
			func() {
				aRows, aCols := m, k
				if transA {
					aRows, aCols = k, m
				}
				bRows, bCols := k, n
				if transB {
					bRows, bCols = n, k
				}
				lda, ldb, ldc := aCols+1, bCols+2, n+3
				sA, sB, sC := aRows*lda+7, bRows*ldb+5, m*ldc+2
				A, B := randMat(r, batch*sA, bf16), randMat(r, batch*sB, bf16)
				C := randMat(r, batch*sC, false)
				want := append([]float32(nil), C...)
				for i := 0; i < batch; i++ {
					refGemm(transA, transB, m, n, k, 1.25, A[i*sA:], lda, B[i*sB:], ldb, 0, want[i*sC:], ldc)
				}
				typ := cuda.R32F
				if bf16 {
					typ = cuda.R16BF
				}
				dA, dB, dC := e.uploadAs(A, bf16), e.uploadAs(B, bf16), e.upload(f32bytes(C))
				e.must(e.api.BLAS.RowMajorGemmStridedBatched(h, transA, transB, m, n, k, e.scalar(1.25), dA, typ, lda,
					int64(sA), dB, typ, ldb, int64(sB), e.scalar(0), dC, cuda.R32F, ldc, int64(sC), batch, cuda.Compute32F))
				compare(t, name, bytesF32(e.download(dC, 4*len(C))), want)
				for _, p := range []cuda.Ptr{dA, dB, dC} {
					e.must(e.d.MemFree(p))
				}
			}()
		}
	}
}
