// Custom differentiable gorgonia Ops for the tower model.
//
// Safety: gorgonia's Reshape returns a value sharing its backing array with
// its input while the register allocator treats the two as independent, so a
// later in-place op on the reshaped value silently rewrites the original (a
// parameter, an input or a gradient). Every Op here allocates a fresh output
// in Do, never returns or modifies an input, and reports ReturnsPtr false and
// OverwritesInput -1, so nothing can alias it.
//
// Speed: head splitting/merging and layer normalisation would otherwise take
// several reshapes, transposes, broadcasts and reductions, each allocating an
// intermediate; here each is one fused pass, forward and backward.
//
// All Ops take float32 or float64 and hash every parameter, so gorgonia's
// hash-consing only merges genuinely identical nodes.

package tower

import (
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opFloat is the set of element types the Ops operate on.
type opFloat interface {
	~float32 | ~float64
}

// ---------------------------------------------------------------------------
// shared helpers

// opTensorFn returns the type a → b where both are tensors of the same element
// type with the given ranks.
func opTensorFn(fromDims, toDims int) hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: fromDims, Of: a}, G.TensorType{Dims: toDims, Of: a})
}

// opSameTypeFn returns the type a → a → ... → a with arity inputs.
func opSameTypeFn(arity int) hm.Type {
	a := hm.TypeVariable('a')
	ts := make([]hm.Type, arity+1)
	for i := range ts {
		ts[i] = a
	}
	return hm.NewFnType(ts...)
}

func opHash(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// opCheckNode rejects nil nodes and nodes whose values are not float tensors.
func opCheckNode(name string, x *G.Node) error {
	if x == nil {
		return fmt.Errorf("%s: nil node", name)
	}
	if x.Dims() == 0 {
		return fmt.Errorf("%s: %v is a scalar, want a tensor", name, x)
	}
	if _, ok := x.Type().(G.TensorType); !ok {
		return fmt.Errorf("%s: %v has type %v, want a tensor type", name, x, x.Type())
	}
	switch dt := x.Dtype(); dt {
	case tensor.Float32, tensor.Float64:
	default:
		return fmt.Errorf("%s: unsupported dtype %v (want float32 or float64)", name, dt)
	}
	return nil
}

// opInputShapes checks that InferShape received n concrete input shapes and
// returns them.
func opInputShapes(name string, n int, ds []G.DimSizer) ([]tensor.Shape, error) {
	if len(ds) != n {
		return nil, fmt.Errorf("%s: got %d input shapes, want %d", name, len(ds), n)
	}
	out := make([]tensor.Shape, n)
	for i, d := range ds {
		s, ok := d.(tensor.Shape)
		if !ok {
			return nil, fmt.Errorf("%s: input %d has no concrete shape (%T)", name, i, d)
		}
		out[i] = s
	}
	return out, nil
}

// opDenseInput checks that v is a float tensor of the expected shape and returns
// it in contiguous row-major layout (materialising views and transposes; the
// original value is never modified).
func opDenseInput(name string, v G.Value, want tensor.Shape) (*tensor.Dense, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("%s: expected a *tensor.Dense value, got %T", name, v)
	}
	if d.Shape().TotalSize() != want.TotalSize() || !d.Shape().Eq(want) {
		return nil, fmt.Errorf("%s: value has shape %v, want %v", name, d.Shape(), want)
	}
	switch d.Dtype() {
	case tensor.Float32, tensor.Float64:
	default:
		return nil, fmt.Errorf("%s: unsupported dtype %v (want float32 or float64)", name, d.Dtype())
	}
	if d.IsMaterializable() || d.RequiresIterator() {
		m, ok := d.Materialize().(*tensor.Dense)
		if !ok {
			return nil, fmt.Errorf("%s: cannot materialise %T", name, d)
		}
		d = m
	}
	return d, nil
}

func opCheckArity(name string, want int, vals []G.Value) error {
	if len(vals) != want {
		return fmt.Errorf("%s: got %d inputs, want %d", name, len(vals), want)
	}
	return nil
}

func opSameDtype(name string, a, b *tensor.Dense) error {
	if a.Dtype() != b.Dtype() {
		return fmt.Errorf("%s: mixed dtypes %v and %v", name, a.Dtype(), b.Dtype())
	}
	return nil
}

func opNewDense[T opFloat](shape tensor.Shape, data []T) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(data))
}

// ---------------------------------------------------------------------------
// CopyReshape

// CopyReshape returns x's elements, in row-major order, with a new shape.
// Unlike gorgonia's Reshape the result is always a fresh copy, so in-place ops
// downstream can never write through to x. Its gradient is the incoming
// gradient copy-reshaped back to x's shape.
func CopyReshape(x *G.Node, shape ...int) (*G.Node, error) {
	if err := opCheckNode("CopyReshape", x); err != nil {
		return nil, err
	}
	to := tensor.Shape(append([]int(nil), shape...))
	if len(to) == 0 {
		return nil, errors.New("CopyReshape: empty target shape")
	}
	for _, s := range to {
		if s <= 0 {
			return nil, fmt.Errorf("CopyReshape: target shape %v has a non-positive dimension", to)
		}
	}
	from := x.Shape()
	if from.TotalSize() != to.TotalSize() {
		return nil, fmt.Errorf("CopyReshape: cannot reshape %v (%d elements) to %v (%d elements)",
			from, from.TotalSize(), to, to.TotalSize())
	}
	return G.ApplyOp(copyReshapeOp{from: from, to: to}, x)
}

type copyReshapeOp struct {
	from, to tensor.Shape
}

func (op copyReshapeOp) Arity() int           { return 1 }
func (op copyReshapeOp) Type() hm.Type        { return opTensorFn(op.from.Dims(), op.to.Dims()) }
func (op copyReshapeOp) ReturnsPtr() bool     { return false }
func (op copyReshapeOp) CallsExtern() bool    { return false }
func (op copyReshapeOp) OverwritesInput() int { return -1 }
func (op copyReshapeOp) Hashcode() uint32     { return opHash(op) }
func (op copyReshapeOp) String() string       { return fmt.Sprintf("CopyReshape%v→%v", op.from, op.to) }
func (op copyReshapeOp) DiffWRT(n int) []bool { return []bool{true} }
func (op copyReshapeOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "tower.CopyReshape(%v,%v)", op.from, op.to)
}

func (op copyReshapeOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	ss, err := opInputShapes("CopyReshape", 1, ds)
	if err != nil {
		return nil, err
	}
	if !ss[0].Eq(op.from) || ss[0].TotalSize() != op.to.TotalSize() {
		return nil, fmt.Errorf("CopyReshape: input shape %v, want %v", ss[0], op.from)
	}
	return op.to.Clone(), nil
}

func (op copyReshapeOp) Do(vals ...G.Value) (G.Value, error) {
	if err := opCheckArity("CopyReshape", 1, vals); err != nil {
		return nil, err
	}
	x, err := opDenseInput("CopyReshape", vals[0], op.from)
	if err != nil {
		return nil, err
	}
	switch xs := x.Data().(type) {
	case []float64:
		return opNewDense(op.to, append([]float64(nil), xs...)), nil
	case []float32:
		return opNewDense(op.to, append([]float32(nil), xs...)), nil
	}
	return nil, fmt.Errorf("CopyReshape: unsupported data %T", x.Data())
}

func (op copyReshapeOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("CopyReshape: SymDiff got %d inputs, want 1", len(inputs))
	}
	dx, err := G.ApplyOp(copyReshapeOp{from: op.to, to: op.from}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// ---------------------------------------------------------------------------
// SplitHeads / MergeHeads

// SplitHeads rearranges x of shape (b·l, d), whose row bi·l+li holds token li
// of sequence bi, into (b·h, l, d/h) attention heads:
//
//	out[bi·h+hi, li, k] = x[bi·l+li, hi·(d/h)+k]
//
// Its gradient is MergeHeads.
func SplitHeads(x *G.Node, b, l, h int) (*G.Node, error) {
	if err := opCheckNode("SplitHeads", x); err != nil {
		return nil, err
	}
	if b <= 0 || l <= 0 || h <= 0 {
		return nil, fmt.Errorf("SplitHeads: b=%d, l=%d, h=%d must be positive", b, l, h)
	}
	s := x.Shape()
	if s.Dims() != 2 {
		return nil, fmt.Errorf("SplitHeads: input shape %v, want a matrix (b·l, d)", s)
	}
	if s[0] != b*l {
		return nil, fmt.Errorf("SplitHeads: input has %d rows, want b·l = %d·%d = %d", s[0], b, l, b*l)
	}
	if s[1]%h != 0 {
		return nil, fmt.Errorf("SplitHeads: width %d is not divisible by %d heads", s[1], h)
	}
	return G.ApplyOp(headsOp{b: b, l: l, h: h, dh: s[1] / h}, x)
}

// MergeHeads is the inverse of SplitHeads: it turns x of shape (b·h, l, dh)
// into (b·l, h·dh). Its gradient is SplitHeads.
func MergeHeads(x *G.Node, b, h int) (*G.Node, error) {
	if err := opCheckNode("MergeHeads", x); err != nil {
		return nil, err
	}
	if b <= 0 || h <= 0 {
		return nil, fmt.Errorf("MergeHeads: b=%d, h=%d must be positive", b, h)
	}
	s := x.Shape()
	if s.Dims() != 3 {
		return nil, fmt.Errorf("MergeHeads: input shape %v, want a 3-tensor (b·h, l, dh)", s)
	}
	if s[0] != b*h {
		return nil, fmt.Errorf("MergeHeads: input has %d heads×batch, want b·h = %d·%d = %d", s[0], b, h, b*h)
	}
	return G.ApplyOp(headsOp{b: b, l: s[1], h: h, dh: s[2], merge: true}, x)
}

// headsOp is SplitHeads (merge false) or MergeHeads (merge true).
type headsOp struct {
	b, l, h, dh int
	merge       bool
}

func (op headsOp) flatShape() tensor.Shape  { return tensor.Shape{op.b * op.l, op.h * op.dh} }
func (op headsOp) headsShape() tensor.Shape { return tensor.Shape{op.b * op.h, op.l, op.dh} }

func (op headsOp) inOut() (in, out tensor.Shape) {
	if op.merge {
		return op.headsShape(), op.flatShape()
	}
	return op.flatShape(), op.headsShape()
}

func (op headsOp) name() string {
	if op.merge {
		return "MergeHeads"
	}
	return "SplitHeads"
}

func (op headsOp) Arity() int { return 1 }
func (op headsOp) Type() hm.Type {
	if op.merge {
		return opTensorFn(3, 2)
	}
	return opTensorFn(2, 3)
}
func (op headsOp) ReturnsPtr() bool     { return false }
func (op headsOp) CallsExtern() bool    { return false }
func (op headsOp) OverwritesInput() int { return -1 }
func (op headsOp) Hashcode() uint32     { return opHash(op) }
func (op headsOp) DiffWRT(n int) []bool { return []bool{true} }
func (op headsOp) String() string {
	return fmt.Sprintf("%s{b=%d,l=%d,h=%d,dh=%d}", op.name(), op.b, op.l, op.h, op.dh)
}
func (op headsOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "tower.%s(b=%d,l=%d,h=%d,dh=%d)", op.name(), op.b, op.l, op.h, op.dh)
}

func (op headsOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	ss, err := opInputShapes(op.name(), 1, ds)
	if err != nil {
		return nil, err
	}
	in, out := op.inOut()
	if !ss[0].Eq(in) || ss[0].TotalSize() != in.TotalSize() {
		return nil, fmt.Errorf("%s: input shape %v, want %v", op.name(), ss[0], in)
	}
	return out, nil
}

func (op headsOp) Do(vals ...G.Value) (G.Value, error) {
	if err := opCheckArity(op.name(), 1, vals); err != nil {
		return nil, err
	}
	in, out := op.inOut()
	x, err := opDenseInput(op.name(), vals[0], in)
	if err != nil {
		return nil, err
	}
	switch xs := x.Data().(type) {
	case []float64:
		return opNewDense(out, permuteHeads(xs, op.b, op.l, op.h, op.dh, op.merge)), nil
	case []float32:
		return opNewDense(out, permuteHeads(xs, op.b, op.l, op.h, op.dh, op.merge)), nil
	}
	return nil, fmt.Errorf("%s: unsupported data %T", op.name(), x.Data())
}

func (op headsOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%s: SymDiff got %d inputs, want 1", op.name(), len(inputs))
	}
	inv := op
	inv.merge = !op.merge
	dx, err := G.ApplyOp(inv, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// permuteHeads copies between the flat (b·l, h·dh) layout and the head-major
// (b·h, l, dh) layout. Both are row-major; the contiguous unit is a run of dh
// elements.
func permuteHeads[T opFloat](src []T, b, l, h, dh int, merge bool) []T {
	dst := make([]T, len(src))
	d := h * dh
	for bi := 0; bi < b; bi++ {
		for li := 0; li < l; li++ {
			flatRow := (bi*l + li) * d
			for hi := 0; hi < h; hi++ {
				flat := flatRow + hi*dh
				head := ((bi*h+hi)*l + li) * dh
				if merge {
					copy(dst[flat:flat+dh], src[head:head+dh])
				} else {
					copy(dst[head:head+dh], src[flat:flat+dh])
				}
			}
		}
	}
	return dst
}

// ---------------------------------------------------------------------------
// LayerNorm

// LayerNorm normalises every row of the (n, d) matrix x over its last axis:
//
//	y = (x − mean(x)) / sqrt(var(x) + eps)
//
// with the biased (1/d) variance. There is no gain or bias; multiply and add
// those separately. Forward and backward are each a single fused pass.
func LayerNorm(x *G.Node, eps float64) (*G.Node, error) {
	if err := opCheckNode("LayerNorm", x); err != nil {
		return nil, err
	}
	if !(eps >= 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("LayerNorm: eps %v must be finite and non-negative", eps)
	}
	s := x.Shape()
	if s.Dims() != 2 {
		return nil, fmt.Errorf("LayerNorm: input shape %v, want a matrix (n, d)", s)
	}
	return G.ApplyOp(layerNormOp{n: s[0], d: s[1], eps: eps}, x)
}

type layerNormOp struct {
	n, d int
	eps  float64
}

func (op layerNormOp) shape() tensor.Shape { return tensor.Shape{op.n, op.d} }

func (op layerNormOp) Arity() int           { return 1 }
func (op layerNormOp) Type() hm.Type        { return opSameTypeFn(1) }
func (op layerNormOp) ReturnsPtr() bool     { return false }
func (op layerNormOp) CallsExtern() bool    { return false }
func (op layerNormOp) OverwritesInput() int { return -1 }
func (op layerNormOp) Hashcode() uint32     { return opHash(op) }
func (op layerNormOp) DiffWRT(n int) []bool { return []bool{true} }
func (op layerNormOp) String() string       { return fmt.Sprintf("LayerNorm{eps=%g}", op.eps) }
func (op layerNormOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "tower.LayerNorm(%d,%d,%v)", op.n, op.d, op.eps)
}

func (op layerNormOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	ss, err := opInputShapes("LayerNorm", 1, ds)
	if err != nil {
		return nil, err
	}
	if !ss[0].Eq(op.shape()) || ss[0].TotalSize() != op.n*op.d {
		return nil, fmt.Errorf("LayerNorm: input shape %v, want %v", ss[0], op.shape())
	}
	return op.shape(), nil
}

func (op layerNormOp) Do(vals ...G.Value) (G.Value, error) {
	if err := opCheckArity("LayerNorm", 1, vals); err != nil {
		return nil, err
	}
	x, err := opDenseInput("LayerNorm", vals[0], op.shape())
	if err != nil {
		return nil, err
	}
	switch xs := x.Data().(type) {
	case []float64:
		return opNewDense(op.shape(), layerNormForward(xs, op.n, op.d, op.eps)), nil
	case []float32:
		return opNewDense(op.shape(), layerNormForward(xs, op.n, op.d, op.eps)), nil
	}
	return nil, fmt.Errorf("LayerNorm: unsupported data %T", x.Data())
}

func (op layerNormOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("LayerNorm: SymDiff got %d inputs, want 1", len(inputs))
	}
	dx, err := G.ApplyOp(layerNormGradOp(op), inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// rowStats returns the mean and 1/sqrt(var+eps) of one row, accumulating in
// float64 (two passes, for stability).
func rowStats[T opFloat](row []T, eps float64) (mean, inv float64) {
	var s float64
	for _, v := range row {
		s += float64(v)
	}
	mean = s / float64(len(row))
	var ss float64
	for _, v := range row {
		c := float64(v) - mean
		ss += c * c
	}
	return mean, 1 / math.Sqrt(ss/float64(len(row))+eps)
}

func layerNormForward[T opFloat](x []T, n, d int, eps float64) []T {
	y := make([]T, len(x))
	for r := 0; r < n; r++ {
		row := x[r*d : (r+1)*d]
		out := y[r*d : (r+1)*d]
		mean, inv := rowStats(row, eps)
		for i, v := range row {
			out[i] = T((float64(v) - mean) * inv)
		}
	}
	return y
}

// layerNormBackward computes, per row, dx = (1/σ)(g − mean(g) − x̂·mean(g⊙x̂)).
func layerNormBackward[T opFloat](x, g []T, n, d int, eps float64) []T {
	dx := make([]T, len(x))
	for r := 0; r < n; r++ {
		row := x[r*d : (r+1)*d]
		gr := g[r*d : (r+1)*d]
		out := dx[r*d : (r+1)*d]
		mean, inv := rowStats(row, eps)
		var sg, sgx float64
		for i, v := range row {
			gv := float64(gr[i])
			sg += gv
			sgx += gv * (float64(v) - mean) * inv
		}
		mg := sg / float64(d)
		mgx := sgx / float64(d)
		for i, v := range row {
			xh := (float64(v) - mean) * inv
			out[i] = T(inv * (float64(gr[i]) - mg - xh*mgx))
		}
	}
	return dx
}

// layerNormGradOp maps (x, dy) to dx for layerNormOp. It is not itself
// differentiable.
type layerNormGradOp layerNormOp

func (op layerNormGradOp) shape() tensor.Shape { return tensor.Shape{op.n, op.d} }

func (op layerNormGradOp) Arity() int           { return 2 }
func (op layerNormGradOp) Type() hm.Type        { return opSameTypeFn(2) }
func (op layerNormGradOp) ReturnsPtr() bool     { return false }
func (op layerNormGradOp) CallsExtern() bool    { return false }
func (op layerNormGradOp) OverwritesInput() int { return -1 }
func (op layerNormGradOp) Hashcode() uint32     { return opHash(op) }
func (op layerNormGradOp) DiffWRT(n int) []bool { return make([]bool, n) }
func (op layerNormGradOp) String() string       { return fmt.Sprintf("LayerNormGrad{eps=%g}", op.eps) }
func (op layerNormGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "tower.LayerNormGrad(%d,%d,%v)", op.n, op.d, op.eps)
}

func (op layerNormGradOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return nil, errors.New("LayerNormGrad: second derivatives are not supported")
}

func (op layerNormGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	ss, err := opInputShapes("LayerNormGrad", 2, ds)
	if err != nil {
		return nil, err
	}
	for _, s := range ss {
		if !s.Eq(op.shape()) || s.TotalSize() != op.n*op.d {
			return nil, fmt.Errorf("LayerNormGrad: input shape %v, want %v", s, op.shape())
		}
	}
	return op.shape(), nil
}

func (op layerNormGradOp) Do(vals ...G.Value) (G.Value, error) {
	if err := opCheckArity("LayerNormGrad", 2, vals); err != nil {
		return nil, err
	}
	x, err := opDenseInput("LayerNormGrad", vals[0], op.shape())
	if err != nil {
		return nil, err
	}
	g, err := opDenseInput("LayerNormGrad", vals[1], op.shape())
	if err != nil {
		return nil, err
	}
	if err := opSameDtype("LayerNormGrad", x, g); err != nil {
		return nil, err
	}
	switch xs := x.Data().(type) {
	case []float64:
		return opNewDense(op.shape(), layerNormBackward(xs, g.Data().([]float64), op.n, op.d, op.eps)), nil
	case []float32:
		return opNewDense(op.shape(), layerNormBackward(xs, g.Data().([]float32), op.n, op.d, op.eps)), nil
	}
	return nil, fmt.Errorf("LayerNormGrad: unsupported data %T", x.Data())
}

// ---------------------------------------------------------------------------
// Clamp

// Clamp returns min(max(x, lo), hi) elementwise (NaN stays NaN). The gradient
// passes through where lo < x < hi and is zero elsewhere, including at the
// bounds themselves.
func Clamp(x *G.Node, lo, hi float64) (*G.Node, error) {
	if err := opCheckNode("Clamp", x); err != nil {
		return nil, err
	}
	if math.IsNaN(lo) || math.IsNaN(hi) || lo > hi {
		return nil, fmt.Errorf("Clamp: invalid bounds [%v, %v]", lo, hi)
	}
	return G.ApplyOp(clampOp{shape: x.Shape(), lo: lo, hi: hi}, x)
}

type clampOp struct {
	shape  tensor.Shape
	lo, hi float64
}

func (op clampOp) Arity() int           { return 1 }
func (op clampOp) Type() hm.Type        { return opSameTypeFn(1) }
func (op clampOp) ReturnsPtr() bool     { return false }
func (op clampOp) CallsExtern() bool    { return false }
func (op clampOp) OverwritesInput() int { return -1 }
func (op clampOp) Hashcode() uint32     { return opHash(op) }
func (op clampOp) DiffWRT(n int) []bool { return []bool{true} }
func (op clampOp) String() string       { return fmt.Sprintf("Clamp[%g,%g]", op.lo, op.hi) }
func (op clampOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "tower.Clamp(%v,%v,%v)", op.shape, op.lo, op.hi)
}

func (op clampOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	ss, err := opInputShapes("Clamp", 1, ds)
	if err != nil {
		return nil, err
	}
	if !ss[0].Eq(op.shape) || ss[0].TotalSize() != op.shape.TotalSize() {
		return nil, fmt.Errorf("Clamp: input shape %v, want %v", ss[0], op.shape)
	}
	return op.shape.Clone(), nil
}

func (op clampOp) Do(vals ...G.Value) (G.Value, error) {
	if err := opCheckArity("Clamp", 1, vals); err != nil {
		return nil, err
	}
	x, err := opDenseInput("Clamp", vals[0], op.shape)
	if err != nil {
		return nil, err
	}
	switch xs := x.Data().(type) {
	case []float64:
		return opNewDense(op.shape, clampForward(xs, op.lo, op.hi)), nil
	case []float32:
		return opNewDense(op.shape, clampForward(xs, op.lo, op.hi)), nil
	}
	return nil, fmt.Errorf("Clamp: unsupported data %T", x.Data())
}

func (op clampOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("Clamp: SymDiff got %d inputs, want 1", len(inputs))
	}
	dx, err := G.ApplyOp(clampGradOp(op), inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

func clampForward[T opFloat](x []T, lo, hi float64) []T {
	l, h := T(lo), T(hi)
	y := make([]T, len(x))
	for i, v := range x {
		switch {
		case v < l:
			v = l
		case v > h:
			v = h
		}
		y[i] = v
	}
	return y
}

func clampBackward[T opFloat](x, g []T, lo, hi float64) []T {
	l, h := T(lo), T(hi)
	dx := make([]T, len(x))
	for i, v := range x {
		if l < v && v < h {
			dx[i] = g[i]
		}
	}
	return dx
}

// clampGradOp maps (x, dy) to dy masked to where lo < x < hi. It is linear in
// dy, so it is differentiable with respect to dy (and piecewise constant in x).
type clampGradOp clampOp

func (op clampGradOp) Arity() int           { return 2 }
func (op clampGradOp) Type() hm.Type        { return opSameTypeFn(2) }
func (op clampGradOp) ReturnsPtr() bool     { return false }
func (op clampGradOp) CallsExtern() bool    { return false }
func (op clampGradOp) OverwritesInput() int { return -1 }
func (op clampGradOp) Hashcode() uint32     { return opHash(op) }
func (op clampGradOp) DiffWRT(n int) []bool { return []bool{false, true} }
func (op clampGradOp) String() string       { return fmt.Sprintf("ClampGrad[%g,%g]", op.lo, op.hi) }
func (op clampGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "tower.ClampGrad(%v,%v,%v)", op.shape, op.lo, op.hi)
}

func (op clampGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	ss, err := opInputShapes("ClampGrad", 2, ds)
	if err != nil {
		return nil, err
	}
	for _, s := range ss {
		if !s.Eq(op.shape) || s.TotalSize() != op.shape.TotalSize() {
			return nil, fmt.Errorf("ClampGrad: input shape %v, want %v", s, op.shape)
		}
	}
	return op.shape.Clone(), nil
}

func (op clampGradOp) Do(vals ...G.Value) (G.Value, error) {
	if err := opCheckArity("ClampGrad", 2, vals); err != nil {
		return nil, err
	}
	x, err := opDenseInput("ClampGrad", vals[0], op.shape)
	if err != nil {
		return nil, err
	}
	g, err := opDenseInput("ClampGrad", vals[1], op.shape)
	if err != nil {
		return nil, err
	}
	if err := opSameDtype("ClampGrad", x, g); err != nil {
		return nil, err
	}
	switch xs := x.Data().(type) {
	case []float64:
		return opNewDense(op.shape, clampBackward(xs, g.Data().([]float64), op.lo, op.hi)), nil
	case []float32:
		return opNewDense(op.shape, clampBackward(xs, g.Data().([]float32), op.lo, op.hi)), nil
	}
	return nil, fmt.Errorf("ClampGrad: unsupported data %T", x.Data())
}

func (op clampGradOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("ClampGrad: SymDiff got %d inputs, want 2", len(inputs))
	}
	dg, err := G.ApplyOp(op, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{nil, dg}, nil
}
