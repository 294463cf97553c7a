package tower

import (
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestMulTMatchesMulTranspose: MulT and its gradients equal gorgonia's
// Mul(x, Transpose(w)) in float64 and float32, at sizes below and above
// the threshold where gemm.BLAS takes float32 products from gonum.
func TestMulTMatchesMulTranspose(t *testing.T) {
	for _, sh := range [][3]int{{3, 4, 5}, {64, 48, 40}} {
		b, in, out := sh[0], sh[1], sh[2]
		r := rand.New(rand.NewPCG(uint64(b), 15))
		x0, w0, r0 := opRandData(r, b*in, nil), opRandData(r, out*in, nil), opRandData(r, b*out, nil)
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			run := func(mul func(x, w *G.Node) (*G.Node, error)) (y, dx, dw []float64) {
				g := G.NewGraph()
				x := G.NewTensor(g, dt, 2, G.WithShape(b, in), G.WithName("x"), G.WithValue(opDenseOf(x0, tensor.Shape{b, in}, dt)))
				w := G.NewTensor(g, dt, 2, G.WithShape(out, in), G.WithName("w"), G.WithValue(opDenseOf(w0, tensor.Shape{out, in}, dt)))
				rn := G.NewTensor(g, dt, 2, G.WithShape(b, out), G.WithName("R"), G.WithValue(opDenseOf(r0, tensor.Shape{b, out}, dt)))
				y0, err := mul(x, w)
				if err != nil {
					t.Fatal(err)
				}
				loss := G.Must(G.Sum(G.Must(G.HadamardProd(y0, rn))))
				grads, err := G.Grad(loss, x, w)
				if err != nil {
					t.Fatal(err)
				}
				m := G.NewTapeMachine(g)
				defer m.Close()
				if err := m.RunAll(); err != nil {
					t.Fatal(err)
				}
				return opFloats(t, y0.Value()), opFloats(t, grads[0].Value()), opFloats(t, grads[1].Value())
			}
			y, dx, dw := run(MulT)
			yr, dxr, dwr := run(func(x, w *G.Node) (*G.Node, error) { return G.Mul(x, G.Must(G.Transpose(w))) })
			tol := 1e-12
			if dt == tensor.Float32 {
				tol = 1e-5
			}
			opAssertClose(t, "y", y, yr, tol)
			opAssertClose(t, "dx", dx, dxr, tol)
			opAssertClose(t, "dw", dw, dwr, tol)
		}
	}
}

func TestMulTRejectsBadShapes(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(4, 3), G.WithName("x"))
	w := G.NewMatrix(g, tensor.Float32, G.WithShape(5, 2), G.WithName("w"))
	w64 := G.NewMatrix(g, tensor.Float64, G.WithShape(5, 3), G.WithName("w64"))
	v := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("v"))
	for _, c := range []struct {
		x, w *G.Node
		want string
	}{{x, w, "want [b, in] and [out, in]"}, {x, w64, "mixed dtypes"}, {x, v, "want [b, in]"}, {nil, w, "nil node"}} {
		if _, err := MulT(c.x, c.w); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("MulT(%v, %v): %v, want %q", c.x, c.w, err, c.want)
		}
	}
}
