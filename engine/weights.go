package engine

import (
	"fmt"
	"sync"
)

// This file exposes a loaded model's fp32 weights in the engine's own plan
// structure (fused layers included), for another backend to mirror layer
// for layer: the GPU plans read them. The views share the model's memory
// and must not be modified.

// LinearWeights is y = x Wᵀ + B with W stored [Out, In] row-major; B is
// never nil (a layer without bias has zeros). Big marks the layers the
// bf16 mode stores in bfloat16 (Options.BF16); the others stay fp32.
type LinearWeights struct {
	In, Out int
	W, B    []float32
	Big     bool
}

// BNWeights is Resilient BatchNorm at serving (see bn.apply).
type BNWeights struct {
	Mean, SD     []float64
	Clamp        float64
	Weight, Bias []float32
}

// EncLayerWeights is one post-LN encoder layer; QKV is the fused
// [q; k; v] projection (3D outputs).
type EncLayerWeights struct {
	QKV, Out, FFN1, FFN2   *LinearWeights
	LN1G, LN1B, LN2G, LN2B []float32
}

// SeqWeights is the user-sequence side: token tables, encoder, sequence
// output and projection (SYSTEM.md §2).
type SeqWeights struct {
	L, Short, D, Heads, Content int
	ActDim, SurfDim, AgeDim     int
	// Act, Surf, Age: rows × dim tables; Pos: L × D; OOV: the content row
	// of an unknown item.
	Act, Surf, Age, Pos, OOV []float32
	Token                    *LinearWeights
	Layers                   []EncLayerWeights
	Pool, Cross, Proj        *LinearWeights
}

// ExpertWeights is one DCNv2 expert after its input Linear: the full-rank
// cross, the low-rank cross layers ([0]: ·V without bias, [1]: ·Uᵀ + b)
// and its ReLU MLP.
type ExpertWeights struct {
	Cross   *LinearWeights
	LowRank [][2]*LinearWeights
	MLP     []*LinearWeights
}

// GateWeights is one task's gate: its first layer is a column block of the
// trunk's fused first Linear (First = its column offset, −1 when the gate
// has no MLP and reads the trunk input), then MLP and the expert logits.
type GateWeights struct {
	First, Width int
	MLP          []*LinearWeights
	Out          *LinearWeights
}

// TrunkWeights is MMoE over DCNv2 experts (Arch "mmoe_dcn") or one shared
// MLP (Arch "mlp", only MLP set). First fuses every layer reading the
// trunk input: expert i's input Linear at column FirstOff[i], and the gates'
// first layers.
type TrunkWeights struct {
	Arch          string
	In, Dim, OutW int
	First         *LinearWeights
	FirstOff      []int
	Experts       []ExpertWeights
	Gates         []*GateWeights // per task; nil: no gate
	MLP           []*LinearWeights
}

// L1UserWeights is a route's user tower: the row x = [user cats | pretrained
// | surface, view_type | BN(user dense) | projection] of width UXW, the
// trunk, and a head per trained task (nil elsewhere).
type L1UserWeights struct {
	E       int
	Dims    Dims
	UserCat [][]float32 // per feature: rows × E
	CtxCat  [][]float32 // surface, view_type
	BN      *BNWeights  // nil without user dense features
	Seq     *SeqWeights
	Trunk   *TrunkWeights
	Heads   []*LinearWeights
	Beta    []float32
	UXW     int
	ProjOff int
	OutDim  int
}

// L1AdWeights is a route's ad tower: x = [ad cats | content | BN(ad
// dense)] of width XW, the cross (nil for the MLP baseline), the MLP and
// the heads.
type L1AdWeights struct {
	E      int
	Dims   Dims
	AdCat  [][]float32
	BN     *BNWeights
	Cross  *LinearWeights
	MLP    []*LinearWeights
	Heads  []*LinearWeights
	XW     int
	OutDim int
}

// Weights returns the tower's fp32 weights; the model must have been
// loaded with Options.KeepWeights.
func (m *L1User) Weights() (*L1UserWeights, error) {
	if !m.keep {
		return nil, fmt.Errorf("engine: l1 user tower %s: loaded without KeepWeights", m.Route)
	}
	s := m.seq
	big, _ := m.linears()
	defer markBig(big)()
	w := &L1UserWeights{E: m.e, Dims: m.dims, UserCat: m.userCat, CtxCat: m.ctxCat, BN: m.bn.weights(),
		Beta: m.beta, UXW: m.uxW, ProjOff: m.projOff, OutDim: m.OutDim, Heads: linearsOf(m.heads),
		Seq: &SeqWeights{L: s.l, Short: s.short, D: s.d, Heads: s.heads, Content: s.content,
			ActDim: s.actDim, SurfDim: s.surfDim, AgeDim: s.ageDim,
			Act: s.act, Surf: s.surf, Age: s.age, Pos: s.pos, OOV: s.oov,
			Token: s.token.weights(), Pool: s.pool.weights(), Cross: s.cross.weights(), Proj: s.proj.weights()},
		Trunk: m.trunk.weights()}
	for _, e := range s.layers {
		w.Seq.Layers = append(w.Seq.Layers, EncLayerWeights{QKV: e.qkv.weights(), Out: e.out.weights(),
			FFN1: e.ffn1.weights(), FFN2: e.ffn2.weights(), LN1G: e.ln1g, LN1B: e.ln1b, LN2G: e.ln2g, LN2B: e.ln2b})
	}
	return w, nil
}

// Weights returns the tower's fp32 weights; the model must have been
// loaded with Options.KeepWeights.
func (m *L1Ad) Weights() (*L1AdWeights, error) {
	if !m.keep {
		return nil, fmt.Errorf("engine: l1 ad tower %s: loaded without KeepWeights", m.Route)
	}
	big, _ := m.linears()
	defer markBig(big)()
	return &L1AdWeights{E: m.e, Dims: m.dims, AdCat: m.adCat, BN: m.bn.weights(), Cross: m.cross.weights(),
		MLP: linearsOf(m.mlp), Heads: linearsOf(m.heads), XW: m.xW, OutDim: m.OutDim}, nil
}

// bigSet is the set of big layers while Weights builds its view; markBig
// sets it and returns the reset. Weights calls are rare (a model load), so
// a package-level set under a mutex is simpler than threading it through.
var (
	bigMu  sync.Mutex
	bigSet map[*linear]bool
)

func markBig(big []*linear) func() {
	bigMu.Lock()
	bigSet = map[*linear]bool{}
	for _, l := range big {
		bigSet[l] = true
	}
	return func() {
		bigSet = nil
		bigMu.Unlock()
	}
}

func (l *linear) weights() *LinearWeights {
	if l == nil {
		return nil
	}
	b := l.b
	if b == nil {
		b = make([]float32, l.out)
	}
	return &LinearWeights{In: l.in, Out: l.out, W: l.w, B: b, Big: bigSet[l]}
}

func linearsOf(ls []*linear) []*LinearWeights {
	out := make([]*LinearWeights, len(ls))
	for i, l := range ls {
		out[i] = l.weights()
	}
	return out
}

func (b *bn) weights() *BNWeights {
	if b == nil {
		return nil
	}
	return &BNWeights{Mean: b.mean, SD: b.sd, Clamp: b.clamp, Weight: b.weight, Bias: b.bias}
}

func (t *trunk) weights() *TrunkWeights {
	w := &TrunkWeights{Arch: t.arch, In: t.in, Dim: t.dim, OutW: t.outW, First: t.first.weights(),
		FirstOff: t.firstOff, MLP: linearsOf(t.mlp), Gates: make([]*GateWeights, len(t.gates))}
	for _, e := range t.experts {
		ew := ExpertWeights{Cross: e.cross.weights(), MLP: linearsOf(e.mlp)}
		for _, lr := range e.low {
			ew.LowRank = append(ew.LowRank, [2]*LinearWeights{lr[0].weights(), lr[1].weights()})
		}
		w.Experts = append(w.Experts, ew)
	}
	for k, g := range t.gates {
		if g != nil {
			w.Gates[k] = &GateWeights{First: g.first, Width: g.width, MLP: linearsOf(g.mlp), Out: g.out.weights()}
		}
	}
	return w
}
