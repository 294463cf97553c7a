package tower

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gorgonia.org/tensor"
)

// Param is one named dense parameter. Its Value is shared by every graph
// built over the same Weights (one graph per batch size), so an optimiser
// step on Value is seen by all of them.
type Param struct {
	Name  string
	Shape []int
	Value *tensor.Dense
}

// Data returns the parameter's float32 backing slice (nil for float64).
func (p *Param) Data() []float32 {
	d, _ := p.Value.Data().([]float32)
	return d
}

// Data64 returns the parameter's float64 backing slice (nil for float32).
func (p *Param) Data64() []float64 {
	d, _ := p.Value.Data().([]float64)
	return d
}

// Init fills a new parameter.
type Init int

// Initialisers, each drawn from the Weights' own seeded generator (never the
// clock) so that training is deterministic.
const (
	InitZeros  Init = iota
	InitOnes        // layer-norm and batch-norm gains
	InitGlorot      // uniform ±√(6/(fan_in+fan_out)) over the last two axes
	InitNormal      // N(0, 0.05²), for embeddings and positions
)

// Weights is an ordered set of named parameters of one dtype.
type Weights struct {
	Dtype  tensor.Dtype
	list   []*Param
	byName map[string]*Param
	rng    *rand.Rand
}

// NewWeights returns an empty set whose initialisers draw from seed.
func NewWeights(dt tensor.Dtype, seed uint64) *Weights {
	return &Weights{Dtype: dt, byName: map[string]*Param{}, rng: rand.New(rand.NewPCG(seed, 0x746f776572))}
}

// Params returns the parameters in creation order.
func (w *Weights) Params() []*Param { return w.list }

// Get returns the named parameter or nil.
func (w *Weights) Get(name string) *Param { return w.byName[name] }

// Count is the number of scalar weights.
func (w *Weights) Count() int {
	n := 0
	for _, p := range w.list {
		n += p.Value.Shape().TotalSize()
	}
	return n
}

// param returns the named parameter, creating and initialising it the first
// time. A later request with another shape is an error (it would mean two
// layers claim one name).
func (w *Weights) param(name string, shape []int, init Init) (*Param, error) {
	if p, ok := w.byName[name]; ok {
		if !slices.Equal(p.Shape, shape) {
			return nil, fmt.Errorf("tower: parameter %s has shape %v, asked for %v", name, p.Shape, shape)
		}
		return p, nil
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	vals := make([]float64, n)
	switch init {
	case InitOnes:
		for i := range vals {
			vals[i] = 1
		}
	case InitGlorot:
		fanOut, fanIn := shape[0], 1
		if len(shape) >= 2 {
			fanIn = shape[len(shape)-1]
			fanOut = n / fanIn
		}
		lim := math.Sqrt(6 / float64(fanIn+fanOut))
		for i := range vals {
			vals[i] = (2*w.rng.Float64() - 1) * lim
		}
	case InitNormal:
		for i := range vals {
			vals[i] = 0.05 * w.rng.NormFloat64()
		}
	}
	var back any
	switch w.Dtype {
	case tensor.Float32:
		b := make([]float32, n)
		for i, v := range vals {
			b[i] = float32(v)
		}
		back = b
	case tensor.Float64:
		back = vals
	default:
		return nil, fmt.Errorf("tower: unsupported dtype %v", w.Dtype)
	}
	p := &Param{Name: name, Shape: slices.Clone(shape), Value: tensor.New(tensor.WithShape(shape...), tensor.WithBacking(back))}
	w.list = append(w.list, p)
	w.byName[name] = p
	return p, nil
}

// Convert returns a deep copy of w in another dtype (float32 ↔ float64),
// used by the precision check.
func (w *Weights) Convert(dt tensor.Dtype) *Weights {
	out := NewWeights(dt, 0)
	for _, p := range w.list {
		n := p.Value.Shape().TotalSize()
		var back any
		switch dt {
		case tensor.Float32:
			b := make([]float32, n)
			for i := range b {
				b[i] = float32(p.at(i))
			}
			back = b
		default:
			b := make([]float64, n)
			for i := range b {
				b[i] = p.at(i)
			}
			back = b
		}
		q := &Param{Name: p.Name, Shape: slices.Clone(p.Shape), Value: tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(back))}
		out.list = append(out.list, q)
		out.byName[q.Name] = q
	}
	return out
}

func (p *Param) at(i int) float64 {
	if d := p.Data(); d != nil {
		return float64(d[i])
	}
	return p.Data64()[i]
}

// Clone returns a deep copy (same dtype).
func (w *Weights) Clone() *Weights { return w.Convert(w.Dtype) }
