package gpu

import (
	"fmt"
	"math"
	"strings"

	"github.com/tandemml/tandem/engine"
)

// LayerDiff compares one activation of the user tower between the device
// and the CPU engine, over the real rows both compute (padded contexts and
// padded sequence positions are left out).
type LayerDiff struct {
	Name   string  `json:"name"`
	Rows   int     `json:"rows"`
	Cols   int     `json:"cols"`
	MaxAbs float64 `json:"max_abs"` // max |device − CPU|
	MaxRef float64 `json:"max_ref"` // max |CPU|
	// Rel is MaxAbs / max(1, MaxRef): the error on the activation's scale.
	Rel float64 `json:"rel"`
}

// CompareLayers runs b's first contexts (up to the largest bucket) step by
// step on the device and through ref's trace (ref is the CPU engine of the
// same tower, in the precision to judge against), and compares every
// activation both backends name, in the device's order.
func (t *UserTower) CompareLayers(ref *engine.L1User, b *engine.Batch) ([]LayerDiff, error) {
	dev := map[string]traced{}
	var order []string
	if err := t.Trace(b, func(name string, rows, cols int, v []float32) {
		dev[name] = traced{rows, cols, v}
		order = append(order, name)
	}); err != nil {
		return nil, err
	}
	cpu := map[string]traced{}
	d := ref.Dims()
	out := make([]float32, b.U*len(ref.Tasks)*ref.OutDim)
	if err := ref.Trace(engine.NewWorker(), b, out, func(name string, rows, cols int, v []float32) {
		cpu[name] = traced{rows, cols, v}
	}); err != nil {
		return nil, err
	}
	n := min(b.U, t.d.maxBucket())
	return diffLayers(order, dev, cpu, b.SeqLen[:n], d.L)
}

// traced is one activation: rows × cols, row-major.
type traced struct {
	rows, cols int
	v          []float32
}

// diffLayers compares the activations named in order. The device holds a
// padded bucket (contexts × L rows for the sequence encoder, contexts
// rows otherwise); the CPU holds one row per real event or per context.
// Only the first len(lens) contexts are compared.
func diffLayers(order []string, dev, cpu map[string]traced, lens []int32, L int) ([]LayerDiff, error) {
	n := len(lens)
	events := 0
	for _, l := range lens {
		events += int(l)
	}
	var out []LayerDiff
	for _, name := range order {
		g, ok := cpu[name]
		if !ok {
			continue
		}
		dv := dev[name]
		if dv.cols != g.cols {
			return nil, fmt.Errorf("gpu: layer %s: %d columns on the device, %d on the CPU", name, dv.cols, g.cols)
		}
		ld := LayerDiff{Name: name, Cols: g.cols}
		cmp := func(drow, crow int) {
			a := dv.v[drow*dv.cols : (drow+1)*dv.cols]
			c := g.v[crow*g.cols : (crow+1)*g.cols]
			for k := range c {
				ld.MaxAbs = max(ld.MaxAbs, math.Abs(float64(a[k])-float64(c[k])))
				ld.MaxRef = max(ld.MaxRef, math.Abs(float64(c[k])))
				if math.IsNaN(float64(a[k])) != math.IsNaN(float64(c[k])) {
					ld.MaxAbs = math.Inf(1)
				}
			}
			ld.Rows++
		}
		if seqLayer(name) {
			if dv.rows < n*L || g.rows < events {
				return nil, fmt.Errorf("gpu: layer %s: %d device rows, %d CPU rows for %d contexts of %d events", name, dv.rows, g.rows, n, events)
			}
			off := 0
			for c, l := range lens {
				for j := range int(l) {
					cmp(c*L+j, off+j)
				}
				off += int(l)
			}
		} else {
			if dv.rows < n || g.rows < n {
				return nil, fmt.Errorf("gpu: layer %s: %d device rows, %d CPU rows for %d contexts", name, dv.rows, g.rows, n)
			}
			for c := range n {
				cmp(c, c)
			}
		}
		ld.Rel = ld.MaxAbs / max(1, ld.MaxRef)
		out = append(out, ld)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("gpu: no layer traced by both the device and the CPU engine")
	}
	return out, nil
}

// seqLayer reports whether the activation has one row per sequence
// position (the encoder's), see engine.TraceFunc.
func seqLayer(name string) bool {
	return name == "seq.tokens" || name == "seq.token" || name == "seq.position" || strings.HasPrefix(name, "seq.layer.")
}
