package tower

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MulT returns x·Wᵀ for x [b, in] and w [out, in] (a Linear layer's
// weight, stored [out, in]). gorgonia's Mul(x, Transpose(w)) copies W
// into its transpose on every forward pass and the gradient back on
// every backward pass; MulT hands the transposition to the BLAS (a
// transpose flag), so neither copy exists. Its gradient is dx = dy·W
// (gorgonia's Mul) and dW = dyᵀ·x (another transpose flag).
func MulT(x, w *G.Node) (*G.Node, error) {
	for _, n := range []*G.Node{x, w} {
		if err := opCheckNode("MulT", n); err != nil {
			return nil, err
		}
	}
	if x.Dims() != 2 || w.Dims() != 2 || x.Shape()[1] != w.Shape()[1] {
		return nil, fmt.Errorf("MulT: x %v and w %v: want [b, in] and [out, in]", x.Shape(), w.Shape())
	}
	if x.Dtype() != w.Dtype() {
		return nil, fmt.Errorf("MulT: mixed dtypes %v and %v", x.Dtype(), w.Dtype())
	}
	return G.ApplyOp(mulTOp{b: x.Shape()[0], in: x.Shape()[1], out: w.Shape()[0]}, x, w)
}

// mulTOp is y [b, out] = x [b, in] · w [out, in]ᵀ; with grad set it is
// the weight gradient dW [out, in] = dy [b, out]ᵀ · x [b, in].
type mulTOp struct {
	b, in, out int
	grad       bool
}

func (op mulTOp) name() string {
	if op.grad {
		return "MulTGradW"
	}
	return "MulT"
}

func (op mulTOp) shapes() (a, b, y tensor.Shape) {
	if op.grad {
		return tensor.Shape{op.b, op.out}, tensor.Shape{op.b, op.in}, tensor.Shape{op.out, op.in}
	}
	return tensor.Shape{op.b, op.in}, tensor.Shape{op.out, op.in}, tensor.Shape{op.b, op.out}
}

func (op mulTOp) Arity() int           { return 2 }
func (op mulTOp) Type() hm.Type        { return opSameTypeFn(2) }
func (op mulTOp) ReturnsPtr() bool     { return false }
func (op mulTOp) CallsExtern() bool    { return false }
func (op mulTOp) OverwritesInput() int { return -1 }
func (op mulTOp) Hashcode() uint32     { return opHash(op) }
func (op mulTOp) String() string       { return fmt.Sprintf("%s(%d,%d,%d)", op.name(), op.b, op.in, op.out) }
func (op mulTOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s %d %d %d", op.name(), op.b, op.in, op.out)
}

func (op mulTOp) DiffWRT(n int) []bool { return []bool{!op.grad, !op.grad} }

func (op mulTOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	ss, err := opInputShapes(op.name(), 2, ds)
	if err != nil {
		return nil, err
	}
	a, b, y := op.shapes()
	if !ss[0].Eq(a) || !ss[1].Eq(b) {
		return nil, fmt.Errorf("%s: input shapes %v and %v, want %v and %v", op.name(), ss[0], ss[1], a, b)
	}
	return y, nil
}

func (op mulTOp) Do(vals ...G.Value) (G.Value, error) {
	if err := opCheckArity(op.name(), 2, vals); err != nil {
		return nil, err
	}
	as, bs, ys := op.shapes()
	a, err := opDenseInput(op.name(), vals[0], as)
	if err != nil {
		return nil, err
	}
	b, err := opDenseInput(op.name(), vals[1], bs)
	if err != nil {
		return nil, err
	}
	if err := opSameDtype(op.name(), a, b); err != nil {
		return nil, err
	}
	// Forward: y = a·bᵀ, a [b, in], b [out, in]. Weight gradient:
	// y = aᵀ·b, a [b, out], b [b, in].
	tA, tB, m, n, k := blas.NoTrans, blas.Trans, op.b, op.out, op.in
	lda, ldb := op.in, op.in
	if op.grad {
		tA, tB, m, n, k = blas.Trans, blas.NoTrans, op.out, op.in, op.b
		lda, ldb = op.out, op.in
	}
	impl := G.WhichBLAS()
	switch av := a.Data().(type) {
	case []float32:
		y := make([]float32, m*n)
		impl.Sgemm(tA, tB, m, n, k, 1, av, lda, b.Data().([]float32), ldb, 0, y, n)
		return opNewDense(ys, y), nil
	case []float64:
		y := make([]float64, m*n)
		impl.Dgemm(tA, tB, m, n, k, 1, av, lda, b.Data().([]float64), ldb, 0, y, n)
		return opNewDense(ys, y), nil
	}
	return nil, fmt.Errorf("%s: unsupported data %T", op.name(), a.Data())
}

func (op mulTOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if op.grad {
		return nil, fmt.Errorf("%s: no second derivative", op.name())
	}
	if len(inputs) != 2 {
		return nil, fmt.Errorf("MulT: SymDiff got %d inputs, want 2", len(inputs))
	}
	x, w := inputs[0], inputs[1]
	dx, err := G.Mul(grad, w)
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(mulTOp{b: op.b, in: op.in, out: op.out, grad: true}, grad, x)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw}, nil
}
