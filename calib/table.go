package calib

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Key names a slice of traffic.
type Key struct {
	Surface, ViewType, Task string
}

// Sample is one row for FitTable in row form; see Columnar.
type Sample struct {
	Key  Key
	Z, Y float32
}

// Columns holds the rows for FitTable by column: row i has logit Z[i],
// label Y[i] in [0, 1], weight W[i] (1 when W is nil) and belongs to the
// slice Keys[Slice[i]]. Keys may repeat; rows of equal keys are pooled.
type Columns struct {
	Keys  []Key
	Slice []int32
	Z, Y  []float32
	W     []float32
}

// Columnar returns samples as Columns, with Keys in order of first
// appearance.
func Columnar(samples []Sample) Columns {
	c := Columns{
		Slice: make([]int32, len(samples)),
		Z:     make([]float32, len(samples)),
		Y:     make([]float32, len(samples)),
	}
	index := make(map[Key]int32)
	for i, s := range samples {
		k, ok := index[s.Key]
		if !ok {
			k = int32(len(c.Keys))
			index[s.Key] = k
			c.Keys = append(c.Keys, s.Key)
		}
		c.Slice[i] = k
		c.Z[i] = s.Z
		c.Y[i] = s.Y
	}
	return c
}

// Options tune FitTable. A zero field takes its default.
type Options struct {
	// MinPositives is the positive label mass a slice needs to get a map
	// of its own: default 200. A negative value fits every slice that
	// has both positive and negative mass.
	MinPositives float64
	// Shrink is the pseudo-count of positives with which a slice map is
	// shrunk toward its surface map: default 100. A negative value
	// disables shrinkage.
	Shrink float64
	// GlobalOnly fits one map per task and uses it for every slice.
	GlobalOnly bool
}

const (
	defaultMinPositives = 200
	defaultShrink       = 100
)

// Table holds the calibration maps of FitTable. A missing entry falls
// back to the next coarser one; see Lookup.
type Table struct {
	// Slices maps a (surface, view type, task) slice to its shrunk map.
	Slices map[Key]Params
	// Surface maps (surface, task) to the map fitted over all view types.
	Surface map[[2]string]Params
	// Global maps a task to the map fitted over all surfaces.
	Global map[string]Params
	// Positives is the positive label mass of every slice in the input.
	Positives map[Key]float64
}

// Lookup returns the map for a slice: the slice's own map, else its
// surface's, else the task's global map, else Identity. A nil Table gives
// Identity.
func (t *Table) Lookup(surface, viewType, task string) Params {
	if t == nil {
		return Identity
	}
	if p, ok := t.Slices[Key{surface, viewType, task}]; ok {
		return p
	}
	return t.coarse(surface, task)
}

// coarse returns the surface map, else the global map, else Identity.
func (t *Table) coarse(surface, task string) Params {
	if p, ok := t.Surface[[2]string{surface, task}]; ok {
		return p
	}
	if p, ok := t.Global[task]; ok {
		return p
	}
	return Identity
}

// FitTable fits the calibration maps of every slice in c by the rule in
// the package documentation. Invalid input is an error; a slice, surface
// or task whose labels lack positive or negative mass is left out of the
// table, to fall back at lookup.
func FitTable(c Columns, opts Options) (*Table, error) {
	if math.IsNaN(opts.MinPositives) || math.IsNaN(opts.Shrink) {
		return nil, errors.New("calib: NaN option")
	}
	if opts.MinPositives == 0 {
		opts.MinPositives = defaultMinPositives
	}
	switch {
	case opts.Shrink == 0:
		opts.Shrink = defaultShrink
	case opts.Shrink < 0:
		opts.Shrink = 0
	}
	if len(c.Slice) != len(c.Z) {
		return nil, fmt.Errorf("calib: %d slice indices but %d logits", len(c.Slice), len(c.Z))
	}
	if err := validate(c.Z, c.Y, c.W); err != nil {
		return nil, err
	}
	g, err := group(c)
	if err != nil {
		return nil, err
	}

	t := &Table{
		Slices:    make(map[Key]Params),
		Surface:   make(map[[2]string]Params),
		Global:    make(map[string]Params),
		Positives: make(map[Key]float64, len(g.keys)),
	}
	// fitRange fits rows [lo, hi) of g, reporting false for degenerate
	// labels.
	fitRange := func(lo, hi int) (Params, bool, error) {
		r := rows{z: g.z[lo:hi], y: g.y[lo:hi]}
		if g.w != nil {
			r.w = g.w[lo:hi]
		}
		p, err := fit(r)
		if errors.Is(err, ErrDegenerate) {
			return Params{}, false, nil
		}
		return p, err == nil, err
	}
	// Keys are sorted by task, then surface, then view type, so the rows
	// of a task, and of a surface within it, are contiguous.
	for i, k := range g.keys {
		t.Positives[k] = g.pos[i]
	}
	for ti := 0; ti < len(g.keys); {
		tj := ti
		for tj < len(g.keys) && g.keys[tj].Task == g.keys[ti].Task {
			tj++
		}
		task := g.keys[ti].Task
		p, ok, err := fitRange(g.off[ti], g.off[tj])
		if err != nil {
			return nil, fmt.Errorf("calib: task %q: %w", task, err)
		}
		if ok {
			t.Global[task] = p
		}
		if opts.GlobalOnly {
			ti = tj
			continue
		}
		for si := ti; si < tj; {
			sj := si
			for sj < tj && g.keys[sj].Surface == g.keys[si].Surface {
				sj++
			}
			surface := g.keys[si].Surface
			p, ok, err := fitRange(g.off[si], g.off[sj])
			if err != nil {
				return nil, fmt.Errorf("calib: surface %q task %q: %w", surface, task, err)
			}
			if ok {
				t.Surface[[2]string{surface, task}] = p
			}
			for k := si; k < sj; k++ {
				pos := g.pos[k]
				if !(pos >= opts.MinPositives) {
					continue
				}
				p, ok, err := fitRange(g.off[k], g.off[k+1])
				if err != nil {
					return nil, fmt.Errorf("calib: slice %+v: %w", g.keys[k], err)
				}
				if ok {
					t.Slices[g.keys[k]] = Shrunk(p, t.coarse(surface, task), opts.Shrink/pos)
				}
			}
			si = sj
		}
		ti = tj
	}
	return t, nil
}

// Shrunk returns the map p shrunk toward prior with weight lambda:
// (p + lambda·prior)/(1 + lambda), parameter by parameter.
func Shrunk(p, prior Params, lambda float64) Params {
	return Params{
		A: (p.A + lambda*prior.A) / (1 + lambda),
		B: (p.B + lambda*prior.B) / (1 + lambda),
	}
}

// grouped holds the rows of Columns reordered so that each distinct key's
// rows are contiguous, keys sorted by task, surface and view type.
type grouped struct {
	keys    []Key
	off     []int     // rows of keys[k] are [off[k], off[k+1])
	pos     []float64 // positive label mass of keys[k]
	z, y, w []float32
}

// group reorders the validated rows of c by key with a counting sort.
func group(c Columns) (*grouped, error) {
	// Pool repeated keys and sort the distinct ones.
	distinct := slices.Clone(c.Keys)
	slices.SortFunc(distinct, compareKeys)
	distinct = slices.Compact(distinct)
	rank := make([]int32, len(c.Keys))
	for i, k := range c.Keys {
		r, _ := slices.BinarySearchFunc(distinct, k, compareKeys)
		rank[i] = int32(r)
	}

	g := &grouped{
		keys: distinct,
		off:  make([]int, len(distinct)+1),
		pos:  make([]float64, len(distinct)),
	}
	for i, s := range c.Slice {
		if s < 0 || int(s) >= len(c.Keys) {
			return nil, fmt.Errorf("calib: row %d has slice index %d, want [0, %d)", i, s, len(c.Keys))
		}
		g.off[rank[s]+1]++
	}
	for k := range distinct {
		g.off[k+1] += g.off[k]
	}
	next := slices.Clone(g.off[:len(distinct)])
	n := len(c.Z)
	g.z = make([]float32, n)
	g.y = make([]float32, n)
	if c.W != nil {
		g.w = make([]float32, n)
	}
	for i, s := range c.Slice {
		k := rank[s]
		j := next[k]
		next[k]++
		g.z[j] = c.Z[i]
		g.y[j] = c.Y[i]
		wi := float32(1)
		if c.W != nil {
			wi = c.W[i]
			g.w[j] = wi
		}
		g.pos[k] += float64(wi) * float64(c.Y[i])
	}
	return g, nil
}

func compareKeys(a, b Key) int {
	if c := cmp.Compare(a.Task, b.Task); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Surface, b.Surface); c != 0 {
		return c
	}
	return cmp.Compare(a.ViewType, b.ViewType)
}
