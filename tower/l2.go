package tower

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// L2Spec fixes the shapes of the unified engagement model. Surfaces lists
// the surfaces this model serves (all of them for the unified model, one for
// a per-surface baseline); Trains[s][t] says whether surface s trains task t
// (only those surface × task towers exist).
type L2Spec struct {
	Surfaces []string
	Tasks    []string
	Trains   [][]bool

	XDim     int // gathered user ⊕ context embeddings and pretrained vectors
	AdDim    int // gathered ad ⊕ item embeddings (the target-attention candidate vector)
	DenseDim int // Resilient-BN dense features

	Seq      SeqSpec
	Trunk    TrunkSpec // Arch "logistic": Linear heads on the raw inputs, no sequence
	TowerMLP []int
}

// Logistic reports whether the spec is the raw-feature logistic regression.
func (s *L2Spec) Logistic() bool { return s.Trunk.Arch == "logistic" }

// L2Inputs are the fed nodes of an L2 graph for N rows over U unique
// (user, request time) contexts.
type L2Inputs struct {
	X, Ad, Dense *G.Node // (N, XDim), (N, AdDim), (N, DenseDim)
	Seq          SeqInputs
	CtxRow       *G.Node   // (N) int: the row's context in [0, U)
	TARows       *G.Node   // (N·L) int: rows of T for each row's context
	TAMask       *G.Node   // (N, 1, L): 0 or −1e9
	TAAny        *G.Node   // (N, d): 1 when the row's sequence is non-empty
	Surface      []*G.Node // per surface (N, 1): 1 on that surface's rows
	Y, W         *G.Node   // (N, T) labels and loss weights
}

// L2Graph is the unified model built for N rows and U contexts.
type L2Graph struct {
	Spec   L2Spec
	N, U   int
	In     L2Inputs
	Logits *G.Node // (N, T)
	Loss   *G.Node // Σ w·BCE, a scalar
	// Params are this graph's parameter nodes (bound to the Weights' tensors).
	Params G.Nodes
	// Grads[i] is the gradient node of Params[i]; after the params come
	// X, Ad and (unless logistic) the sequence tokens and positions.
	Grads G.Nodes
	g     *G.ExprGraph
	vm    G.VM
	train bool
}

// BuildL2 builds the graph over w, creating parameters on first use. With
// train, it also builds the gradients of Loss with respect to every
// parameter and to the gathered inputs (X, Ad, sequence tokens and
// positions), whose gradients flow back to the embedding tables.
func BuildL2(w *Weights, spec L2Spec, n, u int, train bool) (*L2Graph, error) {
	m := &L2Graph{Spec: spec, N: n, U: u, train: train}
	b := newBuilder(w)
	m.g = b.g
	err := build("l2", func() {
		s := spec.Seq
		in := &m.In
		in.X = b.input("x", n, spec.XDim)
		in.Ad = b.input("ad", n, spec.AdDim)
		in.Dense = b.input("dense", n, spec.DenseDim)
		in.Y = b.input("y", n, len(spec.Tasks))
		in.W = b.input("w", n, len(spec.Tasks))
		in.Surface = make([]*G.Node, len(spec.Surfaces))
		for i, sf := range spec.Surfaces {
			in.Surface[i] = b.input("surface."+sf, n, 1)
		}
		dense := b.affine("bn", in.Dense)
		parts := []*G.Node{in.X, in.Ad, dense}
		if !spec.Logistic() {
			in.Seq = b.seqInputs("seq", u, s)
			in.CtxRow = b.intInput("ctx_row", n)
			in.TARows = b.intInput("ta.rows", n*s.L)
			in.TAMask = b.input("ta.mask", n, 1, s.L)
			in.TAAny = b.input("ta.any", n, s.Dim)
			t := b.encoder("seq.enc", in.Seq, u, s)
			proj := b.projection("seq.proj", b.seqOutput("seq.out", t, in.Seq, u, s), s.Projection)
			ta := b.targetAttention("ta", in.Ad, t, in.TARows, in.TAMask, in.TAAny, n, s)
			parts = append(parts, ta, must(G.ByIndices(proj, in.CtxRow, 0)))
		}
		x0 := must(G.Concat(1, parts...))
		var hs []*G.Node
		if spec.Logistic() {
			hs = make([]*G.Node, len(spec.Tasks))
			for t := range hs {
				hs[t] = x0
			}
		} else {
			want := make([]bool, len(spec.Tasks))
			for _, row := range spec.Trains {
				for t, ok := range row {
					want[t] = want[t] || ok
				}
			}
			hs = b.trunk("trunk", x0, spec.Trunk, want)
		}
		zs := make([]*G.Node, len(spec.Tasks))
		for t, task := range spec.Tasks {
			var z *G.Node
			for si, sf := range spec.Surfaces {
				if !spec.Trains[si][t] {
					continue
				}
				name := fmt.Sprintf("tower.%s.%s", sf, task)
				h := hs[t]
				if !spec.Logistic() {
					h = b.mlp(name+".mlp", h, spec.TowerMLP)
				}
				zst := must(G.HadamardProd(b.linear(name+".out", h, 1), in.Surface[si]))
				if z == nil {
					z = zst
				} else {
					z = must(G.Add(z, zst))
				}
			}
			if z == nil { // no surface trains this task: a constant-zero logit
				z = must(G.HadamardProd(in.Surface[0], b.scalar(0)))
			}
			zs[t] = z
		}
		m.Logits = must(G.Concat(1, zs...))
		m.Loss = b.bce(m.Logits, in.Y, in.W)
		m.Params = b.params
		if train {
			wrt := append(G.Nodes{}, b.params...)
			wrt = append(wrt, in.X, in.Ad)
			if !spec.Logistic() {
				wrt = append(wrt, in.Seq.Tokens, in.Seq.Pos)
			}
			gs, err := G.Grad(m.Loss, wrt...)
			if err != nil {
				panic(err)
			}
			m.Grads = gs
		}
	})
	if err != nil {
		return nil, err
	}
	m.vm = G.NewTapeMachine(m.g)
	return m, nil
}

// Graph exposes the expression graph (for tests and debugging).
func (m *L2Graph) Graph() *G.ExprGraph { return m.g }

// Run executes the graph once on the values already bound with Let.
func (m *L2Graph) Run() error {
	m.vm.Reset()
	if err := m.vm.RunAll(); err != nil {
		return fmt.Errorf("tower: run l2: %w", err)
	}
	return nil
}

// Close releases the machine.
func (m *L2Graph) Close() error { return m.vm.Close() }
