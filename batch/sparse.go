package batch

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/feature"
)

// Sparse holds one model's learned embedding tables.
type Sparse struct {
	UserCat []*Table // per Features.UserCat
	AdCat   []*Table // per Features.AdCat
	Ctx     []*Table // per Features.Context
	Act     *Table   // sequence tokens: action
	Surf    *Table   // sequence tokens: surface
	Age     *Table   // sequence tokens: log-age bucket
	Pos     *Table   // P_j, j = 0 the newest
	OOV     *Table   // content_emb of items missing from the item table (1 row)
}

// Tables lists every table in a fixed order.
func (s *Sparse) Tables() []*Table {
	var out []*Table
	out = append(out, s.UserCat...)
	out = append(out, s.AdCat...)
	for _, t := range s.Ctx {
		if t != nil {
			out = append(out, t)
		}
	}
	for _, t := range []*Table{s.Act, s.Surf, s.Age, s.Pos, s.OOV} {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// NewSparse creates the tables of a model named prefix ("l2", "l1.user",
// "l1.ad"), initialised from seed. ctx and seq say whether the model has
// context features and a sequence encoder; ctxOnly, when given, limits the
// context tables to those features (the others stay nil).
func NewSparse(prefix string, cfg *config.Config, f *Features, seed uint64, user, ad, ctx, seq bool, ctxOnly ...string) *Sparse {
	rng := rand.New(rand.NewPCG(seed, 0x656d62))
	init := func() float32 { return float32(0.05 * rng.NormFloat64()) }
	s := &Sparse{}
	e := cfg.Model.EmbedDim
	if user {
		for _, ft := range f.UserCat {
			s.UserCat = append(s.UserCat, NewTable(prefix+".emb."+ft.Name, CatRows(ft), e, init))
		}
	}
	if ad {
		for _, ft := range f.AdCat {
			s.AdCat = append(s.AdCat, NewTable(prefix+".emb."+ft.Name, CatRows(ft), e, init))
		}
	}
	if ctx {
		for _, ft := range f.Context {
			if len(ctxOnly) > 0 && !slices.Contains(ctxOnly, ft.Name) {
				s.Ctx = append(s.Ctx, nil)
				continue
			}
			s.Ctx = append(s.Ctx, NewTable(prefix+".emb."+ft.Name, CatRows(ft), e, init))
		}
	}
	if seq {
		m := cfg.Model.Seq
		s.Act = NewTable(prefix+".seq.emb.action", int(feature.NumActions), m.ActionDim, init)
		s.Surf = NewTable(prefix+".seq.emb.surface", len(cfg.Surfaces), m.SurfaceDim, init)
		s.Age = NewTable(prefix+".seq.emb.age", m.AgeBuckets, m.AgeDim, init)
		s.Pos = NewTable(prefix+".seq.emb.position", cfg.Sequence.Length, m.Dim, init)
		s.OOV = NewTable(prefix+".seq.emb.oov_content", 1, f.ContentDim, init)
	}
	return s
}

// AgeBucket is min(⌊log2(1 + Δt/60 s)⌋, buckets−1) for an event Δt ms
// before the request.
func AgeBucket(dtMs int64, buckets int) int32 {
	if dtMs < 0 {
		dtMs = 0
	}
	b := int(math.Log2(1 + float64(dtMs)/60000))
	return int32(min(b, buckets-1))
}

// BN is a Resilient BatchNorm's running statistics over dense features.
type BN struct {
	Mean, Var []float64
	Seen      bool // false until the first finite batch
	Clamp     float64
	VarMin    float64
	Momentum  float64
}

// NewBN returns statistics for n features.
func NewBN(n int, m config.Model) *BN {
	v := make([]float64, n)
	for i := range v {
		v[i] = 1
	}
	return &BN{Mean: make([]float64, n), Var: v, Clamp: m.BNClamp, VarMin: m.BNVarMin, Momentum: m.BNMomentum}
}

// Normalize writes x̂ for rows × n values x in place. In training it uses
// the batch statistics over rows with live[r] and updates the running EMA
// when they are finite; otherwise it clamps x to μ ± c·√max(σ², v_min) with
// the running statistics first (the serving rule). Either way x̂ is clamped
// to ±c.
func (b *BN) Normalize(x []float32, rows int, live []bool, train bool) {
	n := len(b.Mean)
	mean, vr := b.Mean, b.Var
	if train {
		mean, vr = make([]float64, n), make([]float64, n)
		cnt := 0
		for r := 0; r < rows; r++ {
			if !live[r] {
				continue
			}
			cnt++
			for j := 0; j < n; j++ {
				mean[j] += float64(x[r*n+j])
			}
		}
		if cnt > 0 {
			for j := range mean {
				mean[j] /= float64(cnt)
			}
			for r := 0; r < rows; r++ {
				if !live[r] {
					continue
				}
				for j := 0; j < n; j++ {
					d := float64(x[r*n+j]) - mean[j]
					vr[j] += d * d
				}
			}
			finite := true
			for j := range vr {
				vr[j] /= float64(cnt)
				if math.IsNaN(vr[j]+mean[j]) || math.IsInf(vr[j]+mean[j], 0) {
					finite = false
				}
			}
			if finite {
				if !b.Seen {
					copy(b.Mean, mean)
					copy(b.Var, vr)
					b.Seen = true
				} else {
					for j := range mean {
						b.Mean[j] += b.Momentum * (mean[j] - b.Mean[j])
						b.Var[j] += b.Momentum * (vr[j] - b.Var[j])
					}
				}
			}
		}
	}
	for r := 0; r < rows; r++ {
		for j := 0; j < n; j++ {
			sd := math.Sqrt(max(vr[j], b.VarMin))
			v := float64(x[r*n+j])
			if !train {
				v = min(max(v, mean[j]-b.Clamp*sd), mean[j]+b.Clamp*sd)
			}
			z := (v - mean[j]) / sd
			z = min(max(z, -b.Clamp), b.Clamp)
			if math.IsNaN(z) {
				z = 0
			}
			x[r*n+j] = float32(z)
		}
	}
}

// String is for debugging.
func (b *BN) String() string { return fmt.Sprintf("bn(mean=%v var=%v)", b.Mean, b.Var) }
