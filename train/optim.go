package train

import (
	"math"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
)

// Optimizer updates dense parameters with fused loops over their float32
// slices and embedding tables lazily (only rows touched this step; their
// moments decay only when touched).
type Optimizer struct {
	Kind         string
	LR, EmbedLR  float64
	Beta1, Beta2 float64
	Eps          float64
	Step         int
	// State per dense slice / table, by name: Adam's m and v, or Adagrad's
	// sum of squares in m.
	M, V map[string][]float32
}

// NewOptimizer returns Adam or Adagrad per the train config.
func NewOptimizer(t config.Train) *Optimizer {
	return &Optimizer{Kind: t.Optimizer, LR: t.LR, EmbedLR: t.EmbedLR, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		M: map[string][]float32{}, V: map[string][]float32{}}
}

func (o *Optimizer) state(name string, n int) ([]float32, []float32) {
	m, ok := o.M[name]
	if !ok {
		m = make([]float32, n)
		o.M[name] = m
		if o.Kind == config.OptAdam {
			o.V[name] = make([]float32, n)
		}
	}
	return m, o.V[name]
}

// Dense applies one step to w with gradient g at rate scale·LR.
func (o *Optimizer) Dense(name string, w, g []float32, scale float64) {
	m, v := o.state(name, len(w))
	lr := o.LR * scale
	o.update(w, g, m, v, lr)
}

func (o *Optimizer) update(w, g, m, v []float32, lr float64) {
	if o.Kind == config.OptAdagrad {
		for i, gi := range g {
			m[i] += gi * gi
			w[i] -= float32(lr * float64(gi) / (math.Sqrt(float64(m[i])) + 1e-8))
		}
		return
	}
	t := float64(o.Step)
	c1 := 1 - math.Pow(o.Beta1, t)
	c2 := 1 - math.Pow(o.Beta2, t)
	a := float32(lr * math.Sqrt(c2) / c1)
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	eps := float32(o.Eps * math.Sqrt(c2))
	for i, gi := range g {
		m[i] = b1*m[i] + (1-b1)*gi
		v[i] = b2*v[i] + (1-b2)*gi*gi
		w[i] -= a * m[i] / (sqrt32(v[i]) + eps)
	}
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// Table applies one lazy step to the touched rows of t and clears its
// gradient.
func (o *Optimizer) Table(t *batch.Table, scale float64) {
	m, v := o.state(t.Name, len(t.W))
	lr := o.EmbedLR * scale
	t.Touched(func(row int32, w, g []float32) {
		lo, hi := int(row)*t.Dim, int(row+1)*t.Dim
		var vv []float32
		if v != nil {
			vv = v[lo:hi]
		}
		o.update(w, g, m[lo:hi], vv, lr)
	})
	t.ZeroGrad()
}
