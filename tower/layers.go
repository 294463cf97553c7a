package tower

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// builder assembles one graph over a Weights. Layer methods panic on a
// gorgonia error (a shape mistake is a programming error); build recovers
// the panic into an error.
type builder struct {
	g      *G.ExprGraph
	w      *Weights
	params G.Nodes
	bound  map[string]*G.Node
}

func newBuilder(w *Weights) *builder {
	return &builder{g: G.NewGraph(), w: w, bound: map[string]*G.Node{}}
}

// build runs f, turning a panic from a layer into an error.
func build(what string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tower: build %s: %v", what, r)
		}
	}()
	f()
	return nil
}

func must(n *G.Node, err error) *G.Node {
	if err != nil {
		panic(err)
	}
	return n
}

// param binds the named parameter into this graph (one node per name: a
// second use shares the node, which is what weight sharing means).
func (b *builder) param(name string, init Init, shape ...int) *G.Node {
	if n, ok := b.bound[name]; ok {
		return n
	}
	p, err := b.w.param(name, shape, init)
	if err != nil {
		panic(err)
	}
	n := G.NewTensor(b.g, b.w.Dtype, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(p.Value))
	b.bound[name] = n
	b.params = append(b.params, n)
	return n
}

// input declares a fed tensor.
func (b *builder) input(name string, shape ...int) *G.Node {
	return G.NewTensor(b.g, b.w.Dtype, len(shape), G.WithShape(shape...), G.WithName(name))
}

// intInput declares a fed id vector.
func (b *builder) intInput(name string, n int) *G.Node {
	return G.NewTensor(b.g, tensor.Int, 1, G.WithShape(n), G.WithName(name))
}

func (b *builder) scalar(v float64) *G.Node {
	if b.w.Dtype == tensor.Float32 {
		return G.NewConstant(float32(v))
	}
	return G.NewConstant(v)
}

// Linear is y = x Wᵀ + b with W stored [out, in].
func (b *builder) linear(name string, x *G.Node, out int) *G.Node {
	in := x.Shape()[1]
	w := b.param(name+".weight", InitGlorot, out, in)
	bias := b.param(name+".bias", InitZeros, out)
	y := must(MulT(x, w))
	return must(G.BroadcastAdd(y, bias, nil, []byte{0}))
}

// mlp is a stack of Linear + ReLU layers.
func (b *builder) mlp(name string, x *G.Node, widths []int) *G.Node {
	for i, w := range widths {
		x = must(G.Rectify(b.linear(fmt.Sprintf("%s.%d", name, i), x, w)))
	}
	return x
}

// crossFull is the full-rank DCNv2 cross layer x₀ ⊙ (x W ᵀ + b) + x.
func (b *builder) crossFull(name string, x0, x *G.Node) *G.Node {
	d := x.Shape()[1]
	return must(G.Add(must(G.HadamardProd(x0, b.linear(name, x, d))), x))
}

// crossLowRank is x₀ ⊙ ((x V) Uᵀ + b) + x with U, V ∈ R^{D×r}.
func (b *builder) crossLowRank(name string, x0, x *G.Node, r int) *G.Node {
	d := x.Shape()[1]
	v := b.param(name+".v", InitGlorot, d, r)
	u := b.param(name+".u", InitGlorot, d, r)
	bias := b.param(name+".bias", InitZeros, d)
	h := must(MulT(must(G.Mul(x, v)), u))
	h = must(G.BroadcastAdd(h, bias, nil, []byte{0}))
	return must(G.Add(must(G.HadamardProd(x0, h)), x))
}

// TrunkSpec shapes an expert mixture (or its plain-MLP baseline).
type TrunkSpec struct {
	Arch          string // "mmoe_dcn" or "mlp"
	Experts       int
	ExpertDim     int
	LowRank       int
	LowRankLayers int
	ExpertMLP     []int
	GateMLP       []int
}

// expert is Linear(in→D) → one full-rank cross → low-rank crosses → MLP.
func (b *builder) expert(name string, x *G.Node, s TrunkSpec) *G.Node {
	x0 := b.linear(name+".in", x, s.ExpertDim)
	h := b.crossFull(name+".cross", x0, x0)
	for l := 0; l < s.LowRankLayers; l++ {
		h = b.crossLowRank(fmt.Sprintf("%s.lowrank.%d", name, l), x0, h, s.LowRank)
	}
	return b.mlp(name+".mlp", h, s.ExpertMLP)
}

// trunk returns one output per task (nil where want[t] is false: a task
// nothing trains gets no gate, whose weights would have no gradient). For
// mmoe_dcn: h_t = Σ_i softmax(MLP_t(x))_i f_i(x). For mlp: one shared MLP of
// widths [D, ExpertMLP...] serves every task.
func (b *builder) trunk(name string, x *G.Node, s TrunkSpec, want []bool) []*G.Node {
	out := make([]*G.Node, len(want))
	if s.Arch == "mlp" {
		h := b.mlp(name+".mlp", x, append([]int{s.ExpertDim}, s.ExpertMLP...))
		for t := range out {
			if want[t] {
				out[t] = h
			}
		}
		return out
	}
	n := x.Shape()[0]
	experts := make([]*G.Node, s.Experts)
	for i := range experts {
		experts[i] = b.expert(fmt.Sprintf("%s.expert.%d", name, i), x, s)
	}
	h := experts[0].Shape()[1]
	stack := experts[0]
	if len(experts) > 1 {
		stack = must(G.Concat(1, experts...))
	}
	f := must(CopyReshape(stack, n, s.Experts, h)) // (n, E, H)
	for t := range out {
		if !want[t] {
			continue
		}
		gname := fmt.Sprintf("%s.gate.%d", name, t)
		g := b.linear(gname+".out", b.mlp(gname, x, s.GateMLP), s.Experts)
		g = must(G.SoftMax(g, 1))
		g3 := must(CopyReshape(g, n, 1, s.Experts))
		mix := must(G.BatchedMatMul(g3, f)) // (n, 1, H)
		out[t] = must(CopyReshape(mix, n, h))
	}
	return out
}

// layerNorm normalises rows then applies a learned gain and bias.
func (b *builder) layerNorm(name string, x *G.Node) *G.Node {
	d := x.Shape()[1]
	y := must(LayerNorm(x, 1e-5))
	y = must(G.BroadcastHadamardProd(y, b.param(name+".weight", InitOnes, d), nil, []byte{0}))
	return must(G.BroadcastAdd(y, b.param(name+".bias", InitZeros, d), nil, []byte{0}))
}

// SeqSpec shapes the sequence encoder.
type SeqSpec struct {
	L, ShortTerm int
	Dim, Heads   int
	Layers       int
	TokenIn      int // content ⊕ action ⊕ surface ⊕ age widths
	Projection   int
}

// SeqInputs are the fed tensors of the user side for U unique contexts.
type SeqInputs struct {
	Tokens *G.Node // (U·L, TokenIn): content ⊕ E_act ⊕ E_surf ⊕ E_age, gathered outside the graph
	Pos    *G.Node // (U·L, d): P_j gathered outside the graph
	Mask   *G.Node // (U·h, L, L): 0 for a real key, −1e9 for padding
	Newest *G.Node // (U·ShortTerm) int: row index in (U·L) of each kept position
	Keep   *G.Node // (U, ShortTerm·d): 1 where the kept position exists
	Pool   *G.Node // (U, L, d): 0 for a real position, −1e4 for padding
	Any    *G.Node // (U, d): 1 when the sequence is non-empty
}

func (b *builder) seqInputs(name string, u int, s SeqSpec) SeqInputs {
	return SeqInputs{
		Tokens: b.input(name+".tokens", u*s.L, s.TokenIn),
		Pos:    b.input(name+".pos", u*s.L, s.Dim),
		Mask:   b.input(name+".mask", u*s.Heads, s.L, s.L),
		Newest: b.intInput(name+".newest", u*s.ShortTerm),
		Keep:   b.input(name+".keep", u, s.ShortTerm*s.Dim),
		Pool:   b.input(name+".pool", u, s.L, s.Dim),
		Any:    b.input(name+".any", u, s.Dim),
	}
}

// encoder runs the token projection and the post-LN Transformer layers,
// returning T (U·L, d).
func (b *builder) encoder(name string, in SeqInputs, u int, s SeqSpec) *G.Node {
	x := must(G.Add(b.linear(name+".token", in.Tokens, s.Dim), in.Pos))
	dh := s.Dim / s.Heads
	scale := b.scalar(1 / math.Sqrt(float64(dh)))
	for l := 0; l < s.Layers; l++ {
		ln := fmt.Sprintf("%s.layer.%d", name, l)
		q := must(SplitHeads(b.linear(ln+".attn.q", x, s.Dim), u, s.L, s.Heads))
		k := must(SplitHeads(b.linear(ln+".attn.k", x, s.Dim), u, s.L, s.Heads))
		v := must(SplitHeads(b.linear(ln+".attn.v", x, s.Dim), u, s.L, s.Heads))
		sc := must(G.HadamardProd(must(G.BatchedMatMul(q, k, false, true)), scale))
		a := must(G.SoftMax(must(G.Add(sc, in.Mask)), 2))
		o := must(MergeHeads(must(G.BatchedMatMul(a, v)), u, s.Heads))
		x = b.layerNorm(ln+".ln1", must(G.Add(x, b.linear(ln+".attn.out", o, s.Dim))))
		f := b.linear(ln+".ffn.2", must(G.Rectify(b.linear(ln+".ffn.1", x, 4*s.Dim))), s.Dim)
		x = b.layerNorm(ln+".ln2", must(G.Add(x, f)))
	}
	return x
}

// seqOutput is flatten(T at the newest ShortTerm positions, missing zero) ⊕
// Linear(masked max-pool over positions, zero for an empty sequence).
func (b *builder) seqOutput(name string, t *G.Node, in SeqInputs, u int, s SeqSpec) *G.Node {
	newest := must(CopyReshape(must(G.ByIndices(t, in.Newest, 0)), u, s.ShortTerm*s.Dim))
	newest = must(G.HadamardProd(newest, in.Keep))
	t3 := must(CopyReshape(t, u, s.L, s.Dim))
	pooled := must(G.Max(must(G.Add(t3, in.Pool)), 1))
	pooled = must(G.HadamardProd(pooled, in.Any))
	return must(G.Concat(1, newest, b.linear(name+".pool", pooled, s.Dim)))
}

// projection is a full-rank cross layer then Linear to width p.
func (b *builder) projection(name string, x *G.Node, p int) *G.Node {
	return b.linear(name+".out", b.crossFull(name+".cross", x, x), p)
}

// targetAttention attends from candidate vectors c (n, dc) over the encoder
// outputs of each row's context: rows (n·L) int picks T's rows per candidate,
// mask (n, 1, L) is 0/−1e9 and any (n, d) zeroes empty sequences.
func (b *builder) targetAttention(name string, c, t, rows, mask, any *G.Node, n int, s SeqSpec) *G.Node {
	d := s.Dim
	// K and V depend on the context only: project T's U·L rows once, then
	// gather each row's L keys and values (same result as projecting the
	// gathered rows, at a fraction of the cost when contexts have several rows).
	q := must(CopyReshape(b.linear(name+".q", c, d), n, 1, d))
	k := must(CopyReshape(must(G.ByIndices(b.linear(name+".k", t, d), rows, 0)), n, s.L, d))
	v := must(CopyReshape(must(G.ByIndices(b.linear(name+".v", t, d), rows, 0)), n, s.L, d))
	sc := must(G.HadamardProd(must(G.BatchedMatMul(q, k, false, true)), b.scalar(1/math.Sqrt(float64(d)))))
	a := must(G.SoftMax(must(G.Add(sc, mask)), 2))
	o := must(CopyReshape(must(G.BatchedMatMul(a, v)), n, d))
	return must(G.HadamardProd(o, any))
}

// bce is the masked mean of softplus(z) − y·z over rows and tasks.
func (b *builder) bce(z, y, w *G.Node) *G.Node {
	l := must(G.Sub(must(G.Softplus(z)), must(G.HadamardProd(y, z))))
	return must(G.Sum(must(G.HadamardProd(l, w))))
}
