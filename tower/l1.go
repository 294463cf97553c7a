package tower

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// L1Spec fixes the shapes of the two-tower retrieval model.
type L1Spec struct {
	Tasks  []string
	Trains []bool // per task: trained by this route's data

	UserXDim     int // gathered user ⊕ surface ⊕ view embeddings and pretrained vector
	UserDenseDim int
	AdXDim       int // gathered ad embeddings ⊕ content_emb
	AdDenseDim   int

	Seq    SeqSpec
	User   TrunkSpec // "mmoe_dcn" or "mlp"
	AdArch string    // "mmoe_dcn": a cross layer then AdMLP; "mlp": AdMLP alone
	AdMLP  []int
	OutDim int // d of u_t and a_t
}

// L1Inputs are the fed nodes of an L1 graph: the user side has U rows (one
// per request context), the ad side N rows; CtxRow maps rows to contexts.
type L1Inputs struct {
	UserX, UserDense *G.Node // (U, UserXDim), (U, UserDenseDim)
	Seq              SeqInputs
	AdX, AdDense     *G.Node // (N, AdXDim), (N, AdDenseDim)
	CtxRow           *G.Node // (N) int
	Y, W             *G.Node // (N, T)
}

// L1Graph is the two-tower model built for N rows over U contexts.
type L1Graph struct {
	Spec   L1Spec
	N, U   int
	In     L1Inputs
	User   []*G.Node // per task u_t (U, d)
	Ad     []*G.Node // per task a_t (N, d)
	Logits *G.Node   // (N, T): ⟨u_t, a_t⟩ + β_t
	Loss   *G.Node
	Params G.Nodes
	// Grads: one per Params, then UserX, AdX, sequence tokens, positions.
	Grads G.Nodes
	g     *G.ExprGraph
	vm    G.VM
}

// BuildL1 builds the two-tower graph over w. Parameters of the user tower
// are named "user.*" and of the ad tower "ad.*", so each tower can be
// exported on its own.
func BuildL1(w *Weights, spec L1Spec, n, u int, train bool) (*L1Graph, error) {
	m := &L1Graph{Spec: spec, N: n, U: u}
	b := newBuilder(w)
	m.g = b.g
	err := build("l1", func() {
		in := &m.In
		s := spec.Seq
		in.UserX = b.input("user.x", u, spec.UserXDim)
		if spec.UserDenseDim > 0 { // MovieLens has no user features
			in.UserDense = b.input("user.dense", u, spec.UserDenseDim)
		}
		in.Seq = b.seqInputs("user.seq", u, s)
		in.AdX = b.input("ad.x", n, spec.AdXDim)
		in.AdDense = b.input("ad.dense", n, spec.AdDenseDim)
		in.CtxRow = b.intInput("ctx_row", n)
		in.Y = b.input("y", n, len(spec.Tasks))
		in.W = b.input("w", n, len(spec.Tasks))

		// User tower, once per context.
		t := b.encoder("user.seq.enc", in.Seq, u, s)
		proj := b.projection("user.seq.proj", b.seqOutput("user.seq.out", t, in.Seq, u, s), s.Projection)
		uparts := []*G.Node{in.UserX}
		if in.UserDense != nil {
			uparts = append(uparts, b.affine("user.bn", in.UserDense))
		}
		ux := must(G.Concat(1, append(uparts, proj)...))
		hs := b.trunk("user.trunk", ux, spec.User, spec.Trains)
		// Ad tower, per row.
		ad := must(G.Concat(1, in.AdX, b.affine("ad.bn", in.AdDense)))
		ah := ad
		if spec.AdArch == "mmoe_dcn" {
			ah = b.crossFull("ad.cross", ad, ad)
		}
		ah = b.mlp("ad.mlp", ah, spec.AdMLP)
		zs := make([]*G.Node, len(spec.Tasks))
		m.User = make([]*G.Node, len(spec.Tasks))
		m.Ad = make([]*G.Node, len(spec.Tasks))
		for k, task := range spec.Tasks {
			if !spec.Trains[k] { // no route row trains it: no heads, a zero logit
				zs[k] = must(G.HadamardProd(must(G.Sum(in.AdDense, 1)), b.scalar(0)))
				zs[k] = must(CopyReshape(zs[k], n, 1))
				continue
			}
			ut := b.linear("user.head."+task, hs[k], spec.OutDim)
			at := b.linear("ad.head."+task, ah, spec.OutDim)
			m.User[k], m.Ad[k] = ut, at
			dot := must(G.Sum(must(G.HadamardProd(must(G.ByIndices(ut, in.CtxRow, 0)), at)), 1))
			z := must(CopyReshape(dot, n, 1))
			zs[k] = must(G.BroadcastAdd(z, b.param(fmt.Sprintf("user.beta.%s", task), InitZeros, 1), nil, []byte{0}))
		}
		m.Logits = must(G.Concat(1, zs...))
		m.Loss = b.bce(m.Logits, in.Y, in.W)
		m.Params = b.params
		if train {
			wrt := append(G.Nodes{}, b.params...)
			wrt = append(wrt, in.UserX, in.AdX, in.Seq.Tokens, in.Seq.Pos)
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

// affine is the learned γ ⊙ x̂ + β after Resilient BN (x̂ is computed
// outside the graph from batch or running statistics).
func (b *builder) affine(name string, x *G.Node) *G.Node {
	d := x.Shape()[1]
	y := must(G.BroadcastHadamardProd(x, b.param(name+".weight", InitOnes, d), nil, []byte{0}))
	return must(G.BroadcastAdd(y, b.param(name+".bias", InitZeros, d), nil, []byte{0}))
}

// Run executes the graph once on the values bound with Let.
func (m *L1Graph) Run() error {
	m.vm.Reset()
	if err := m.vm.RunAll(); err != nil {
		return fmt.Errorf("tower: run l1: %w", err)
	}
	return nil
}

// Close releases the machine.
func (m *L1Graph) Close() error { return m.vm.Close() }
