package tower

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func tinyL2Spec(arch string) L2Spec {
	return L2Spec{
		Surfaces: []string{"a", "b"},
		Tasks:    []string{"click", "save"},
		Trains:   [][]bool{{true, true}, {true, false}},
		XDim:     5, AdDim: 4, DenseDim: 2,
		Seq:      SeqSpec{L: 3, ShortTerm: 2, Dim: 4, Heads: 2, Layers: 1, TokenIn: 5, Projection: 3},
		Trunk:    TrunkSpec{Arch: arch, Experts: 2, ExpertDim: 4, LowRank: 2, LowRankLayers: 1, ExpertMLP: []int{3}, GateMLP: []int{3}},
		TowerMLP: []int{3},
	}
}

// feedRandom binds deterministic random inputs to every input of an L2
// graph with n rows over u contexts (context c has c+1 events, capped at L,
// so empty, partial and full sequences all occur when u ≥ 1).
func feedRandom(t *testing.T, m *L2Graph, seed uint64) map[*G.Node]*tensor.Dense {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	dt := m.In.X.Dtype()
	vals := map[*G.Node]*tensor.Dense{}
	mk := func(shape []int, f func(i int) float64) *tensor.Dense {
		n := 1
		for _, d := range shape {
			n *= d
		}
		if dt == tensor.Float32 {
			b := make([]float32, n)
			for i := range b {
				b[i] = float32(f(i))
			}
			return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(b))
		}
		b := make([]float64, n)
		for i := range b {
			b[i] = f(i)
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(b))
	}
	set := func(node *G.Node, v *tensor.Dense) {
		if node == nil {
			return
		}
		vals[node] = v
		if err := G.Let(node, v); err != nil {
			t.Fatalf("let %s: %v", node.Name(), err)
		}
	}
	randn := func(node *G.Node) {
		if node != nil {
			set(node, mk(node.Shape(), func(int) float64 { return rng.NormFloat64() }))
		}
	}
	s := m.Spec.Seq
	n, u := m.N, m.U
	seqLen := func(c int) int { return min(c, s.L) } // context 0 is empty
	randn(m.In.X)
	randn(m.In.Ad)
	randn(m.In.Dense)
	set(m.In.Y, mk(m.In.Y.Shape(), func(int) float64 { return float64(rng.IntN(2)) }))
	set(m.In.W, mk(m.In.W.Shape(), func(int) float64 { return 1 / float64(n) }))
	for si, node := range m.In.Surface {
		set(node, mk(node.Shape(), func(r int) float64 {
			if r%len(m.In.Surface) == si {
				return 1
			}
			return 0
		}))
	}
	if m.Spec.Logistic() {
		return vals
	}
	in := m.In.Seq
	randn(in.Tokens)
	randn(in.Pos)
	set(in.Mask, mk(in.Mask.Shape(), func(i int) float64 {
		c, j := i/(s.Heads*s.L*s.L), i%s.L
		if j < max(1, seqLen(c)) {
			return 0
		}
		return -1e9
	}))
	newest := make([]int, u*s.ShortTerm)
	for c := 0; c < u; c++ {
		for j := 0; j < s.ShortTerm; j++ {
			newest[c*s.ShortTerm+j] = c*s.L + j
		}
	}
	G.Let(in.Newest, tensor.New(tensor.WithShape(len(newest)), tensor.WithBacking(newest)))
	set(in.Keep, mk(in.Keep.Shape(), func(i int) float64 {
		c, j := i/(s.ShortTerm*s.Dim), (i/s.Dim)%s.ShortTerm
		return b2f(j < seqLen(c))
	}))
	set(in.Pool, mk(in.Pool.Shape(), func(i int) float64 {
		c, j := i/(s.L*s.Dim), (i/s.Dim)%s.L
		if j < seqLen(c) {
			return 0
		}
		return -1e4
	}))
	set(in.Any, mk(in.Any.Shape(), func(i int) float64 { return b2f(seqLen(i/s.Dim) > 0) }))
	ctx := make([]int, n)
	rows := make([]int, n*s.L)
	for r := range ctx {
		ctx[r] = r % u
		for j := 0; j < s.L; j++ {
			rows[r*s.L+j] = ctx[r]*s.L + j
		}
	}
	G.Let(m.In.CtxRow, tensor.New(tensor.WithShape(n), tensor.WithBacking(ctx)))
	G.Let(m.In.TARows, tensor.New(tensor.WithShape(n*s.L), tensor.WithBacking(rows)))
	set(m.In.TAMask, mk(m.In.TAMask.Shape(), func(i int) float64 {
		if i%s.L < max(1, seqLen(ctx[i/s.L])) {
			return 0
		}
		return -1e9
	}))
	set(m.In.TAAny, mk(m.In.TAAny.Shape(), func(i int) float64 { return b2f(seqLen(ctx[i/s.Dim]) > 0) }))
	return vals
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func lossOf(t *testing.T, m *L2Graph) float64 {
	t.Helper()
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	switch v := m.Loss.Value().Data().(type) {
	case float32:
		return float64(v)
	case float64:
		return v
	}
	t.Fatalf("loss value %T", m.Loss.Value().Data())
	return 0
}

func gradData(t *testing.T, n *G.Node) []float64 {
	t.Helper()
	switch d := n.Value().Data().(type) {
	case []float64:
		return append([]float64(nil), d...)
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out
	}
	t.Fatalf("grad of %s has %T", n.Name(), n.Value().Data())
	return nil
}

// TestL2GradientsFiniteDifference checks every parameter's and every
// gathered input's gradient of the assembled model against central
// differences in float64.
func TestL2GradientsFiniteDifference(t *testing.T) {
	archs := []string{"mmoe_dcn", "mlp", "logistic"}
	if raceEnabled {
		archs = archs[:1] // the baselines reuse the same layers
	}
	for _, arch := range archs {
		t.Run(arch, func(t *testing.T) {
			w := NewWeights(tensor.Float64, 7)
			m, err := BuildL2(w, tinyL2Spec(arch), 6, 4, true)
			if err != nil {
				t.Fatal(err)
			}
			vals := feedRandom(t, m, 3)
			lossOf(t, m)
			wrt := append(G.Nodes{}, m.Params...)
			wrt = append(wrt, m.In.X, m.In.Ad)
			if !m.Spec.Logistic() {
				wrt = append(wrt, m.In.Seq.Tokens, m.In.Seq.Pos)
			}
			grads := make([][]float64, len(wrt))
			for i := range wrt {
				grads[i] = gradData(t, m.Grads[i])
			}
			const eps = 1e-6
			checked := 0
			for i, node := range wrt {
				var data []float64
				if i < len(m.Params) {
					data = w.Get(node.Name()).Data64()
				} else {
					data = vals[node].Data().([]float64)
				}
				// A spread sample of each tensor (fewer under -race, where a
				// forward pass is ~20× slower).
				step := max(1, len(data)/7)
				if raceEnabled {
					step = max(1, len(data)/2)
				}
				for k := 0; k < len(data); k += step {
					old := data[k]
					data[k] = old + eps
					lp := lossOf(t, m)
					data[k] = old - eps
					lm := lossOf(t, m)
					data[k] = old
					num := (lp - lm) / (2 * eps)
					got := grads[i][k]
					if math.Abs(num-got) > 1e-5+1e-4*math.Abs(num) {
						t.Errorf("%s[%d]: autodiff %.9g, finite difference %.9g", node.Name(), k, got, num)
					}
					checked++
				}
			}
			if checked < 30 {
				t.Fatalf("only %d values checked", checked)
			}
		})
	}
}

// TestL2Float32MatchesFloat64 runs the same weights and inputs in both
// precisions.
func TestL2Float32MatchesFloat64(t *testing.T) {
	w64 := NewWeights(tensor.Float64, 11)
	m64, err := BuildL2(w64, tinyL2Spec("mmoe_dcn"), 6, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	feedRandom(t, m64, 5)
	l64 := lossOf(t, m64)
	w32 := w64.Convert(tensor.Float32)
	m32, err := BuildL2(w32, tinyL2Spec("mmoe_dcn"), 6, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	feedRandom(t, m32, 5)
	l32 := lossOf(t, m32)
	if math.Abs(l32-l64) > 1e-5*math.Abs(l64)+1e-6 {
		t.Fatalf("loss float32 %.9g vs float64 %.9g", l32, l64)
	}
	for i := range m64.Params {
		g64, g32 := gradData(t, m64.Grads[i]), gradData(t, m32.Grads[i])
		for k := range g64 {
			if math.Abs(g64[k]-g32[k]) > 1e-4*math.Abs(g64[k])+1e-5 {
				t.Fatalf("%s[%d]: float32 grad %.9g vs float64 %.9g", m64.Params[i].Name(), k, g32[k], g64[k])
			}
		}
	}
}

// TestL2RunTwiceIsStable catches aliasing: two runs give the same loss and
// leave parameters and inputs untouched.
func TestL2RunTwiceIsStable(t *testing.T) {
	w := NewWeights(tensor.Float32, 1)
	m, err := BuildL2(w, tinyL2Spec("mmoe_dcn"), 6, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	vals := feedRandom(t, m, 9)
	before := w.Clone()
	inBefore := map[*G.Node][]float32{}
	for n, v := range vals {
		inBefore[n] = append([]float32(nil), v.Data().([]float32)...)
	}
	l1 := lossOf(t, m)
	l2 := lossOf(t, m)
	if l1 != l2 {
		t.Fatalf("loss changed between runs: %v then %v", l1, l2)
	}
	for _, p := range w.Params() {
		q := before.Get(p.Name)
		for k, v := range p.Data() {
			if v != q.Data()[k] {
				t.Fatalf("parameter %s[%d] changed by a forward/backward run", p.Name, k)
			}
		}
	}
	for n, v := range vals {
		for k, x := range v.Data().([]float32) {
			if x != inBefore[n][k] {
				t.Fatalf("input %s[%d] changed by a run", n.Name(), k)
			}
		}
	}
}

// TestL2ForwardGraphMatchesTraining: a forward-only graph at another batch
// size over the same weights gives the same logits for the same rows.
func TestL2NamesAreUnique(t *testing.T) {
	w := NewWeights(tensor.Float32, 1)
	m, err := BuildL2(w, tinyL2Spec("mmoe_dcn"), 6, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Params) != len(w.Params()) {
		t.Fatalf("graph binds %d parameters, weights hold %d (hash-consing merged some)", len(m.Params), len(w.Params()))
	}
}

// TestBuildWithUntrainedTask: a task no served surface trains (a
// per-surface model of search, which has no hide) gets no gate or head and
// the graph still builds its gradients.
func TestBuildWithUntrainedTask(t *testing.T) {
	spec := tinyL2Spec("mmoe_dcn")
	spec.Trains = [][]bool{{true, false}, {false, false}}
	if _, err := BuildL2(NewWeights(tensor.Float32, 1), spec, 6, 4, true); err != nil {
		t.Fatal(err)
	}
	l1 := tinyL1Spec("mmoe_dcn")
	l1.Trains = []bool{true, false}
	if _, err := BuildL1(NewWeights(tensor.Float32, 1), l1, 6, 4, true); err != nil {
		t.Fatal(err)
	}
}
