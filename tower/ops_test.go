package tower

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opCase describes one op under test: how to build it, its input shape and a
// plain-loop reference implementation in float64.
type opCase struct {
	name  string
	in    tensor.Shape
	out   tensor.Shape
	build func(x *G.Node) (*G.Node, error)
	ref   func(x []float64) []float64
	// gen draws one input element; nil means uniform in [-2, 2).
	gen func(r *rand.Rand) float64
}

const (
	opLNEps              = 1e-5
	opClampLo, opClampHi = -0.5, 0.75
)

func opCases() []opCase {
	return []opCase{
		{
			name:  "CopyReshape",
			in:    tensor.Shape{3, 4},
			out:   tensor.Shape{2, 3, 2},
			build: func(x *G.Node) (*G.Node, error) { return CopyReshape(x, 2, 3, 2) },
			ref:   func(x []float64) []float64 { return append([]float64(nil), x...) },
		},
		{
			name:  "SplitHeads",
			in:    tensor.Shape{2 * 3, 6},
			out:   tensor.Shape{2 * 2, 3, 3},
			build: func(x *G.Node) (*G.Node, error) { return SplitHeads(x, 2, 3, 2) },
			ref:   func(x []float64) []float64 { return refSplitHeads(x, 2, 3, 2, 6) },
		},
		{
			name:  "MergeHeads",
			in:    tensor.Shape{2 * 3, 2, 2},
			out:   tensor.Shape{2 * 2, 3 * 2},
			build: func(x *G.Node) (*G.Node, error) { return MergeHeads(x, 2, 3) },
			ref:   func(x []float64) []float64 { return refMergeHeads(x, 2, 3, 2, 2) },
		},
		{
			name:  "LayerNorm",
			in:    tensor.Shape{4, 5},
			out:   tensor.Shape{4, 5},
			build: func(x *G.Node) (*G.Node, error) { return LayerNorm(x, opLNEps) },
			ref:   func(x []float64) []float64 { return refLayerNorm(x, 4, 5, opLNEps) },
		},
		{
			name:  "Clamp",
			in:    tensor.Shape{3, 5},
			out:   tensor.Shape{3, 5},
			build: func(x *G.Node) (*G.Node, error) { return Clamp(x, opClampLo, opClampHi) },
			ref: func(x []float64) []float64 {
				y := make([]float64, len(x))
				for i, v := range x {
					y[i] = math.Min(math.Max(v, opClampLo), opClampHi)
				}
				return y
			},
			// Keep every element well away from the kinks so that central
			// differences are meaningful, with some on each side of each bound.
			gen: func(r *rand.Rand) float64 {
				for {
					v := 4*r.Float64() - 2
					if math.Abs(v-opClampLo) > 1e-3 && math.Abs(v-opClampHi) > 1e-3 {
						return v
					}
				}
			},
		},
	}
}

// ---------------------------------------------------------------------------
// reference implementations (plain index loops)

func refSplitHeads(x []float64, b, l, h, d int) []float64 {
	dh := d / h
	out := make([]float64, len(x))
	for bi := 0; bi < b; bi++ {
		for hi := 0; hi < h; hi++ {
			for li := 0; li < l; li++ {
				for k := 0; k < dh; k++ {
					out[((bi*h+hi)*l+li)*dh+k] = x[(bi*l+li)*d+hi*dh+k]
				}
			}
		}
	}
	return out
}

func refMergeHeads(x []float64, b, h, l, dh int) []float64 {
	d := h * dh
	out := make([]float64, len(x))
	for bi := 0; bi < b; bi++ {
		for li := 0; li < l; li++ {
			for hi := 0; hi < h; hi++ {
				for k := 0; k < dh; k++ {
					out[(bi*l+li)*d+hi*dh+k] = x[((bi*h+hi)*l+li)*dh+k]
				}
			}
		}
	}
	return out
}

func refLayerNorm(x []float64, n, d int, eps float64) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < n; r++ {
		mean := 0.0
		for c := 0; c < d; c++ {
			mean += x[r*d+c]
		}
		mean /= float64(d)
		v := 0.0
		for c := 0; c < d; c++ {
			v += (x[r*d+c] - mean) * (x[r*d+c] - mean)
		}
		v /= float64(d)
		for c := 0; c < d; c++ {
			out[r*d+c] = (x[r*d+c] - mean) / math.Sqrt(v+eps)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// helpers

func opRandData(r *rand.Rand, n int, gen func(*rand.Rand) float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		if gen != nil {
			out[i] = gen(r)
		} else {
			out[i] = 4*r.Float64() - 2
		}
	}
	return out
}

func opToDtype(x []float64, dt tensor.Dtype) any {
	if dt == tensor.Float32 {
		out := make([]float32, len(x))
		for i, v := range x {
			out[i] = float32(v)
		}
		return out
	}
	return append([]float64(nil), x...)
}

func opDenseOf(x []float64, shape tensor.Shape, dt tensor.Dtype) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(opToDtype(x, dt)))
}

// opFloats copies a value's data out as float64.
func opFloats(t *testing.T, v G.Value) []float64 {
	t.Helper()
	if v == nil {
		t.Fatal("nil value")
	}
	if d, ok := v.(*tensor.Dense); ok && (d.IsMaterializable() || d.RequiresIterator()) {
		v = d.Materialize()
	}
	switch d := v.Data().(type) {
	case []float64:
		return append([]float64(nil), d...)
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case float64:
		return []float64{d}
	case float32:
		return []float64{float64(d)}
	}
	t.Fatalf("unexpected data %T", v.Data())
	return nil
}

func opAssertClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		scale := math.Max(1, math.Max(math.Abs(got[i]), math.Abs(want[i])))
		if !(math.Abs(got[i]-want[i]) <= tol*scale) {
			t.Fatalf("%s[%d] = %.12g, want %.12g (tol %g)", what, i, got[i], want[i], tol)
		}
	}
}

// opLossGraph is x → op → Sum(op(x) ⊙ R) with the gradient of the loss w.r.t. x.
type opLossGraph struct {
	g        *G.ExprGraph
	x, y     *G.Node
	loss, dx *G.Node
	m        G.VM
}

func opBuildLoss(t *testing.T, c opCase, dt tensor.Dtype, x0, r []float64) *opLossGraph {
	t.Helper()
	g := G.NewGraph()
	x := G.NewTensor(g, dt, c.in.Dims(), G.WithShape(c.in...), G.WithName("x"),
		G.WithValue(opDenseOf(x0, c.in, dt)))
	rr := G.NewTensor(g, dt, c.out.Dims(), G.WithShape(c.out...), G.WithName("R"),
		G.WithValue(opDenseOf(r, c.out, dt)))
	y, err := c.build(x)
	if err != nil {
		t.Fatalf("%s: build: %v", c.name, err)
	}
	if !y.Shape().Eq(c.out) {
		t.Fatalf("%s: output shape %v, want %v", c.name, y.Shape(), c.out)
	}
	prod, err := G.HadamardProd(y, rr)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := G.Sum(prod)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(loss, x)
	if err != nil {
		t.Fatalf("%s: Grad: %v", c.name, err)
	}
	m := G.NewTapeMachine(g)
	t.Cleanup(func() { m.Close() })
	return &opLossGraph{g: g, x: x, y: y, loss: loss, dx: grads[0], m: m}
}

func (lg *opLossGraph) run(t *testing.T) {
	t.Helper()
	lg.m.Reset()
	if err := lg.m.RunAll(); err != nil {
		t.Fatalf("RunAll: %v", err)
	}
}

// ---------------------------------------------------------------------------
// (a) forward values

func TestOpsForward(t *testing.T) {
	for _, c := range opCases() {
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			t.Run(fmt.Sprintf("%s/%v", c.name, dt), func(t *testing.T) {
				r := rand.New(rand.NewPCG(1, 2))
				x0 := opRandData(r, c.in.TotalSize(), c.gen)
				rr := opRandData(r, c.out.TotalSize(), nil)
				lg := opBuildLoss(t, c, dt, x0, rr)
				lg.run(t)
				tol := 1e-12
				if dt == tensor.Float32 {
					tol = 1e-5
				}
				want := c.ref(x0)
				opAssertClose(t, "y", opFloats(t, lg.y.Value()), want, tol)
				if got := lg.y.Value().Dtype(); got != dt {
					t.Fatalf("output dtype %v, want %v", got, dt)
				}
				if got := lg.y.Value().Shape(); !got.Eq(c.out) {
					t.Fatalf("output value shape %v, want %v", got, c.out)
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------
// (b) gradients against central differences

func TestOpsGradFiniteDifference(t *testing.T) {
	const h = 1e-6
	for _, c := range opCases() {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			x0 := opRandData(r, c.in.TotalSize(), c.gen)
			rr := opRandData(r, c.out.TotalSize(), nil)
			lg := opBuildLoss(t, c, tensor.Float64, x0, rr)
			lg.run(t)
			analytic := opFloats(t, lg.dx.Value())

			numeric := make([]float64, len(x0))
			lossAt := func(x []float64) float64 {
				if err := G.Let(lg.x, opDenseOf(x, c.in, tensor.Float64)); err != nil {
					t.Fatal(err)
				}
				lg.run(t)
				return opFloats(t, lg.loss.Value())[0]
			}
			xp := append([]float64(nil), x0...)
			for i := range x0 {
				xp[i] = x0[i] + h
				up := lossAt(xp)
				xp[i] = x0[i] - h
				down := lossAt(xp)
				xp[i] = x0[i]
				numeric[i] = (up - down) / (2 * h)
			}
			opAssertClose(t, "dL/dx", analytic, numeric, 1e-6)

			nonzero := 0
			for _, v := range analytic {
				if v != 0 {
					nonzero++
				}
			}
			if nonzero == 0 {
				t.Fatal("gradient is identically zero")
			}
		})
	}
}

// Float32 gradients agree with the float64 ones.
func TestOpsGradFloat32(t *testing.T) {
	for _, c := range opCases() {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			x0 := opRandData(r, c.in.TotalSize(), c.gen)
			rr := opRandData(r, c.out.TotalSize(), nil)
			lg64 := opBuildLoss(t, c, tensor.Float64, x0, rr)
			lg64.run(t)
			lg32 := opBuildLoss(t, c, tensor.Float32, x0, rr)
			lg32.run(t)
			if dt := lg32.dx.Value().Dtype(); dt != tensor.Float32 {
				t.Fatalf("gradient dtype %v, want float32", dt)
			}
			opAssertClose(t, "dL/dx", opFloats(t, lg32.dx.Value()), opFloats(t, lg64.dx.Value()), 1e-4)
		})
	}
}

// ---------------------------------------------------------------------------
// (c) repeated runs are identical and never touch the input

func TestOpsRunTwiceNoAliasing(t *testing.T) {
	for _, c := range opCases() {
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			t.Run(fmt.Sprintf("%s/%v", c.name, dt), func(t *testing.T) {
				r := rand.New(rand.NewPCG(7, 8))
				x0 := opRandData(r, c.in.TotalSize(), c.gen)
				rr := opRandData(r, c.out.TotalSize(), nil)
				lg := opBuildLoss(t, c, dt, x0, rr)
				xWant := opFloats(t, lg.x.Value())

				lg.run(t)
				y1, l1, d1 := opFloats(t, lg.y.Value()), opFloats(t, lg.loss.Value()), opFloats(t, lg.dx.Value())
				opAssertClose(t, "x after run 1", opFloats(t, lg.x.Value()), xWant, 0)

				lg.run(t)
				opAssertClose(t, "y run 2", opFloats(t, lg.y.Value()), y1, 0)
				opAssertClose(t, "loss run 2", opFloats(t, lg.loss.Value()), l1, 0)
				opAssertClose(t, "dx run 2", opFloats(t, lg.dx.Value()), d1, 0)
				opAssertClose(t, "x after run 2", opFloats(t, lg.x.Value()), xWant, 0)
			})
		}
	}
}

// A graph x → CopyReshape → Add(·, 1) → Sum must leave x untouched even though
// gorgonia may run the Add in place on its input.
func TestCopyReshapeAvoidsAliasing(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		t.Run(dt.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(9, 10))
			x0 := opRandData(r, 12, nil)
			g := G.NewGraph()
			x := G.NewTensor(g, dt, 2, G.WithShape(2, 6), G.WithName("x"),
				G.WithValue(opDenseOf(x0, tensor.Shape{2, 6}, dt)))
			y, err := CopyReshape(x, 3, 4)
			if err != nil {
				t.Fatal(err)
			}
			var one *G.Node
			if dt == tensor.Float32 {
				one = G.NewConstant(float32(1))
			} else {
				one = G.NewConstant(1.0)
			}
			z, err := G.Add(y, one)
			if err != nil {
				t.Fatal(err)
			}
			s, err := G.Sum(z)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := G.Grad(s, x); err != nil {
				t.Fatal(err)
			}
			m := G.NewTapeMachine(g)
			defer m.Close()
			want := 12.0
			for _, v := range x0 {
				want += v
			}
			for run := 0; run < 3; run++ {
				m.Reset()
				if err := m.RunAll(); err != nil {
					t.Fatal(err)
				}
				tol := 0.0
				if dt == tensor.Float32 {
					tol = 1e-6
				}
				opAssertClose(t, "x", opFloats(t, x.Value()), opFloats(t, opDenseOf(x0, tensor.Shape{2, 6}, dt)), 0)
				opAssertClose(t, "sum", opFloats(t, s.Value()), []float64{want}, tol)
				grad, err := x.Grad()
				if err != nil {
					t.Fatal(err)
				}
				ones := make([]float64, 12)
				for i := range ones {
					ones[i] = 1
				}
				opAssertClose(t, "dx", opFloats(t, grad), ones, 0)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// (d) SplitHeads and MergeHeads are inverses

func TestSplitMergeHeadsIdentity(t *testing.T) {
	const b, l, h, d = 3, 4, 2, 6
	r := rand.New(rand.NewPCG(11, 12))
	x0 := opRandData(r, b*l*d, nil)
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float64, 2, G.WithShape(b*l, d), G.WithName("x"),
		G.WithValue(opDenseOf(x0, tensor.Shape{b * l, d}, tensor.Float64)))
	split, err := SplitHeads(x, b, l, h)
	if err != nil {
		t.Fatal(err)
	}
	back, err := MergeHeads(split, b, h)
	if err != nil {
		t.Fatal(err)
	}
	// and the other way round, starting from head layout
	hx0 := opRandData(r, b*l*d, nil)
	hx := G.NewTensor(g, tensor.Float64, 3, G.WithShape(b*h, l, d/h), G.WithName("hx"),
		G.WithValue(opDenseOf(hx0, tensor.Shape{b * h, l, d / h}, tensor.Float64)))
	merged, err := MergeHeads(hx, b, h)
	if err != nil {
		t.Fatal(err)
	}
	hback, err := SplitHeads(merged, b, l, h)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	if !back.Shape().Eq(x.Shape()) || !hback.Shape().Eq(hx.Shape()) {
		t.Fatalf("shapes %v, %v; want %v, %v", back.Shape(), hback.Shape(), x.Shape(), hx.Shape())
	}
	opAssertClose(t, "Merge(Split(x))", opFloats(t, back.Value()), x0, 0)
	opAssertClose(t, "Split(Merge(x))", opFloats(t, hback.Value()), hx0, 0)
}

// ---------------------------------------------------------------------------
// LayerNorm against the same normalisation composed from built-in ops

func TestLayerNormMatchesComposedOps(t *testing.T) {
	const n, d, eps = 5, 7, 1e-5
	r := rand.New(rand.NewPCG(13, 14))
	x0 := opRandData(r, n*d, nil)
	rr := opRandData(r, n*d, nil)

	run := func(build func(x *G.Node) (*G.Node, error)) (y, dx []float64) {
		g := G.NewGraph()
		x := G.NewTensor(g, tensor.Float64, 2, G.WithShape(n, d), G.WithName("x"),
			G.WithValue(opDenseOf(x0, tensor.Shape{n, d}, tensor.Float64)))
		rn := G.NewTensor(g, tensor.Float64, 2, G.WithShape(n, d), G.WithName("R"),
			G.WithValue(opDenseOf(rr, tensor.Shape{n, d}, tensor.Float64)))
		out, err := build(x)
		if err != nil {
			t.Fatal(err)
		}
		loss := G.Must(G.Sum(G.Must(G.HadamardProd(out, rn))))
		grads, err := G.Grad(loss, x)
		if err != nil {
			t.Fatal(err)
		}
		m := G.NewTapeMachine(g)
		defer m.Close()
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		return opFloats(t, out.Value()), opFloats(t, grads[0].Value())
	}

	composed := func(x *G.Node) (*G.Node, error) {
		mean, err := G.Mean(x, 1)
		if err != nil {
			return nil, err
		}
		xc, err := G.BroadcastSub(x, mean, nil, []byte{1})
		if err != nil {
			return nil, err
		}
		sq, err := G.Square(xc)
		if err != nil {
			return nil, err
		}
		v, err := G.Mean(sq, 1)
		if err != nil {
			return nil, err
		}
		ve, err := G.Add(v, G.NewConstant(float64(eps)))
		if err != nil {
			return nil, err
		}
		sd, err := G.Sqrt(ve)
		if err != nil {
			return nil, err
		}
		inv, err := G.Inverse(sd)
		if err != nil {
			return nil, err
		}
		return G.BroadcastHadamardProd(xc, inv, nil, []byte{1})
	}

	yF, dF := run(func(x *G.Node) (*G.Node, error) { return LayerNorm(x, eps) })
	yC, dC := run(composed)
	opAssertClose(t, "y", yF, yC, 1e-12)
	opAssertClose(t, "dx", dF, dC, 1e-10)
	opAssertClose(t, "y vs loop", yF, refLayerNorm(x0, n, d, eps), 1e-12)
}

// ---------------------------------------------------------------------------
// hash-consing keeps differently parameterised ops apart

func TestOpsHashDistinguishesParameters(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 6), G.WithName("x"))
	pairs := []struct {
		name string
		a, b func() (*G.Node, error)
	}{
		{"Clamp lo", func() (*G.Node, error) { return Clamp(x, 0, 1) }, func() (*G.Node, error) { return Clamp(x, -1, 1) }},
		{"Clamp hi", func() (*G.Node, error) { return Clamp(x, 0, 1) }, func() (*G.Node, error) { return Clamp(x, 0, 2) }},
		{"LayerNorm eps", func() (*G.Node, error) { return LayerNorm(x, 1e-5) }, func() (*G.Node, error) { return LayerNorm(x, 1e-6) }},
		{"CopyReshape vs Clamp", func() (*G.Node, error) { return CopyReshape(x, 4, 6) }, func() (*G.Node, error) { return Clamp(x, -9, 9) }},
		{"SplitHeads b,l", func() (*G.Node, error) { return SplitHeads(x, 1, 4, 2) }, func() (*G.Node, error) { return SplitHeads(x, 2, 2, 1) }},
	}
	for _, p := range pairs {
		a, err := p.a()
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		b, err := p.b()
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if a == b {
			t.Errorf("%s: distinct ops were merged into one node", p.name)
		}
	}
	// Identical ops on the same input may share a node.
	a, _ := Clamp(x, 0, 1)
	b, _ := Clamp(x, 0, 1)
	if a != b {
		t.Logf("identical Clamp nodes were not merged (harmless)")
	}
}

// ---------------------------------------------------------------------------
// (e) bad shapes and arguments are errors, not panics

func TestOpsShapeErrors(t *testing.T) {
	g := G.NewGraph()
	mat := G.NewMatrix(g, tensor.Float64, G.WithShape(6, 8), G.WithName("mat"))
	vec := G.NewVector(g, tensor.Float64, G.WithShape(8), G.WithName("vec"))
	t3 := G.NewTensor(g, tensor.Float64, 3, G.WithShape(4, 3, 2), G.WithName("t3"))
	sc := G.NewScalar(g, tensor.Float64, G.WithName("sc"))
	imat := G.NewMatrix(g, tensor.Int, G.WithShape(6, 8), G.WithName("imat"))

	cases := []struct {
		name string
		f    func() (*G.Node, error)
	}{
		{"CopyReshape nil", func() (*G.Node, error) { return CopyReshape(nil, 2) }},
		{"CopyReshape size", func() (*G.Node, error) { return CopyReshape(mat, 5, 10) }},
		{"CopyReshape zero dim", func() (*G.Node, error) { return CopyReshape(mat, 48, 0) }},
		{"CopyReshape negative", func() (*G.Node, error) { return CopyReshape(mat, -6, -8) }},
		{"CopyReshape empty", func() (*G.Node, error) { return CopyReshape(mat) }},
		{"CopyReshape scalar", func() (*G.Node, error) { return CopyReshape(sc, 1) }},
		{"CopyReshape int", func() (*G.Node, error) { return CopyReshape(imat, 48) }},
		{"SplitHeads d%h", func() (*G.Node, error) { return SplitHeads(mat, 2, 3, 3) }},
		{"SplitHeads rows", func() (*G.Node, error) { return SplitHeads(mat, 2, 4, 2) }},
		{"SplitHeads rank 1", func() (*G.Node, error) { return SplitHeads(vec, 1, 1, 2) }},
		{"SplitHeads rank 3", func() (*G.Node, error) { return SplitHeads(t3, 4, 1, 1) }},
		{"SplitHeads zero h", func() (*G.Node, error) { return SplitHeads(mat, 2, 3, 0) }},
		{"SplitHeads nil", func() (*G.Node, error) { return SplitHeads(nil, 2, 3, 2) }},
		{"MergeHeads b·h", func() (*G.Node, error) { return MergeHeads(t3, 3, 1) }},
		{"MergeHeads rank 2", func() (*G.Node, error) { return MergeHeads(mat, 2, 3) }},
		{"MergeHeads zero b", func() (*G.Node, error) { return MergeHeads(t3, 0, 4) }},
		{"LayerNorm rank 1", func() (*G.Node, error) { return LayerNorm(vec, 1e-5) }},
		{"LayerNorm rank 3", func() (*G.Node, error) { return LayerNorm(t3, 1e-5) }},
		{"LayerNorm negative eps", func() (*G.Node, error) { return LayerNorm(mat, -1) }},
		{"LayerNorm NaN eps", func() (*G.Node, error) { return LayerNorm(mat, math.NaN()) }},
		{"LayerNorm scalar", func() (*G.Node, error) { return LayerNorm(sc, 1e-5) }},
		{"Clamp lo>hi", func() (*G.Node, error) { return Clamp(mat, 1, 0) }},
		{"Clamp NaN", func() (*G.Node, error) { return Clamp(mat, math.NaN(), 0) }},
		{"Clamp nil", func() (*G.Node, error) { return Clamp(nil, 0, 1) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("panicked: %v", p)
				}
			}()
			n, err := c.f()
			if err == nil {
				t.Fatalf("expected an error, got node %v", n)
			}
		})
	}
}

// Do rejects values that do not match what the op was built for.
func TestOpsDoRejectsBadValues(t *testing.T) {
	m34 := tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(make([]float64, 12)))
	m43 := tensor.New(tensor.WithShape(4, 3), tensor.WithBacking(make([]float64, 12)))
	i34 := tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(make([]int, 12)))
	f34 := tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(make([]float32, 12)))
	s34 := tensor.Shape{3, 4}
	cases := []struct {
		name string
		op   interface {
			Do(...G.Value) (G.Value, error)
		}
		vals []G.Value
	}{
		{"CopyReshape shape", copyReshapeOp{from: s34, to: tensor.Shape{12}}, []G.Value{m43}},
		{"CopyReshape arity", copyReshapeOp{from: s34, to: tensor.Shape{12}}, []G.Value{m34, m34}},
		{"CopyReshape dtype", copyReshapeOp{from: s34, to: tensor.Shape{12}}, []G.Value{i34}},
		{"CopyReshape scalar", copyReshapeOp{from: s34, to: tensor.Shape{12}}, []G.Value{G.NewF64(1)}},
		{"Heads shape", headsOp{b: 1, l: 3, h: 2, dh: 2}, []G.Value{m43}},
		{"LayerNorm shape", layerNormOp{n: 3, d: 4}, []G.Value{m43}},
		{"LayerNormGrad mixed", layerNormGradOp{n: 3, d: 4}, []G.Value{m34, f34}},
		{"Clamp shape", clampOp{shape: s34, hi: 1}, []G.Value{m43}},
		{"ClampGrad arity", clampGradOp{shape: s34, hi: 1}, []G.Value{m34}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.op.Do(c.vals...); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
}

// Do reads transposed (view) inputs in their logical order and never modifies
// them.
func TestOpsDoMaterialisesViews(t *testing.T) {
	base := tensor.New(tensor.WithShape(4, 3), tensor.WithBacking([]float64{
		0, 1, 2,
		3, 4, 5,
		6, 7, 8,
		9, 10, 11,
	}))
	tr, err := tensor.T(base)
	if err != nil {
		t.Fatal(err)
	}
	out, err := copyReshapeOp{from: tensor.Shape{3, 4}, to: tensor.Shape{12}}.Do(tr)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11}
	opAssertClose(t, "CopyReshape(Tᵀ)", opFloats(t, out), want, 0)
	opAssertClose(t, "base", base.Data().([]float64), []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 0)
}
