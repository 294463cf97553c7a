package tower

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func tinyL1Spec(arch string) L1Spec {
	return L1Spec{
		Tasks: []string{"click", "save"}, Trains: []bool{true, true},
		UserXDim: 5, UserDenseDim: 2, AdXDim: 4, AdDenseDim: 1,
		Seq:    SeqSpec{L: 3, ShortTerm: 2, Dim: 4, Heads: 2, Layers: 1, TokenIn: 5, Projection: 3},
		User:   TrunkSpec{Arch: arch, Experts: 2, ExpertDim: 4, LowRank: 2, LowRankLayers: 1, ExpertMLP: []int{3}, GateMLP: []int{3}},
		AdArch: arch, AdMLP: []int{3}, OutDim: 3,
	}
}

// feedL1Random binds random inputs; context c has c events (capped at L).
func feedL1Random(t *testing.T, m *L1Graph, seed uint64) map[*G.Node]*tensor.Dense {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	vals := map[*G.Node]*tensor.Dense{}
	mk := func(shape []int, f func(i int) float64) *tensor.Dense {
		n := 1
		for _, d := range shape {
			n *= d
		}
		b := make([]float64, n)
		for i := range b {
			b[i] = f(i)
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(b))
	}
	set := func(node *G.Node, v *tensor.Dense) {
		vals[node] = v
		if err := G.Let(node, v); err != nil {
			t.Fatalf("let %s: %v", node.Name(), err)
		}
	}
	randn := func(node *G.Node) { set(node, mk(node.Shape(), func(int) float64 { return rng.NormFloat64() })) }
	s := m.Spec.Seq
	n, u := m.N, m.U
	seqLen := func(c int) int { return min(c, s.L) }
	randn(m.In.UserX)
	randn(m.In.UserDense)
	randn(m.In.AdX)
	randn(m.In.AdDense)
	set(m.In.Y, mk(m.In.Y.Shape(), func(int) float64 { return float64(rng.IntN(2)) }))
	set(m.In.W, mk(m.In.W.Shape(), func(int) float64 { return 1 / float64(n) }))
	in := m.In.Seq
	randn(in.Tokens)
	randn(in.Pos)
	set(in.Mask, mk(in.Mask.Shape(), func(i int) float64 {
		if i%s.L < max(1, seqLen(i/(s.Heads*s.L*s.L))) {
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
	set(in.Keep, mk(in.Keep.Shape(), func(i int) float64 { return b2f((i/s.Dim)%s.ShortTerm < seqLen(i/(s.ShortTerm*s.Dim))) }))
	set(in.Pool, mk(in.Pool.Shape(), func(i int) float64 {
		if (i/s.Dim)%s.L < seqLen(i/(s.L*s.Dim)) {
			return 0
		}
		return -1e4
	}))
	set(in.Any, mk(in.Any.Shape(), func(i int) float64 { return b2f(seqLen(i/s.Dim) > 0) }))
	ctx := make([]int, n)
	for r := range ctx {
		ctx[r] = r % u
	}
	G.Let(m.In.CtxRow, tensor.New(tensor.WithShape(n), tensor.WithBacking(ctx)))
	return vals
}

func l1Loss(t *testing.T, m *L1Graph) float64 {
	t.Helper()
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	return m.Loss.Value().Data().(float64)
}

// TestL1GradientsFiniteDifference checks the assembled two-tower model.
func TestL1GradientsFiniteDifference(t *testing.T) {
	archs := []string{"mmoe_dcn", "mlp"}
	if raceEnabled {
		archs = archs[:1]
	}
	for _, arch := range archs {
		t.Run(arch, func(t *testing.T) {
			w := NewWeights(tensor.Float64, 3)
			m, err := BuildL1(w, tinyL1Spec(arch), 6, 4, true)
			if err != nil {
				t.Fatal(err)
			}
			vals := feedL1Random(t, m, 4)
			l1Loss(t, m)
			wrt := append(G.Nodes{}, m.Params...)
			wrt = append(wrt, m.In.UserX, m.In.AdX, m.In.Seq.Tokens, m.In.Seq.Pos)
			grads := make([][]float64, len(wrt))
			for i := range wrt {
				grads[i] = gradData(t, m.Grads[i])
			}
			const eps = 1e-6
			for i, node := range wrt {
				var data []float64
				if i < len(m.Params) {
					data = w.Get(node.Name()).Data64()
				} else {
					data = vals[node].Data().([]float64)
				}
				step := max(1, len(data)/5)
				if raceEnabled {
					step = max(1, len(data)/2)
				}
				for k := 0; k < len(data); k += step {
					old := data[k]
					data[k] = old + eps
					lp := l1Loss(t, m)
					data[k] = old - eps
					lm := l1Loss(t, m)
					data[k] = old
					num := (lp - lm) / (2 * eps)
					if got := grads[i][k]; math.Abs(num-got) > 1e-5+1e-4*math.Abs(num) {
						t.Errorf("%s[%d]: autodiff %.9g, finite difference %.9g", node.Name(), k, got, num)
					}
				}
			}
		})
	}
}
