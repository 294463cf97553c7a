package engine

import (
	"fmt"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/kernel"
)

// trunk is MMoE over DCNv2 experts with MLP gates, or one shared MLP.
type trunk struct {
	arch    string
	in      int
	experts []expert
	gates   []*gate // per task; nil where the export has no gate
	// first fuses every layer that reads the trunk input: the experts'
	// input Linears and the gates' first layers.
	first     *linear
	firstOff  []int // column offset of each expert's input Linear in first's output
	dim, outW int   // expert input width D, expert output width
	mlp       []*linear
}

type expert struct {
	cross *linear
	low   [][2]*linear // (x V, · Uᵀ + b) per low-rank layer
	mlp   []*linear
}

type gate struct {
	first int       // column offset of its first layer in the fused output, −1 when it has no MLP
	width int       // that layer's width
	mlp   []*linear // the layers after the first
	out   *linear
}

// readTrunk reads name.* for input width in. Gates are read for the tasks
// whose tensors exist (training builds gates only for tasks some served
// surface trains); need[t] says which tasks the plan must be able to run.
func readTrunk(s *source, name string, in int, sp config.Trunk, tasks int, need []bool) *trunk {
	t := &trunk{arch: sp.Arch, in: in, gates: make([]*gate, tasks)}
	if sp.Arch == "mlp" {
		t.mlp = s.mlp(name+".mlp", in, append([]int{sp.ExpertDim}, sp.ExpertMLP...))
		if s.err == nil {
			t.outW = t.mlp[len(t.mlp)-1].out
		}
		return t
	}
	var first []*linear
	t.dim = sp.ExpertDim
	for i := range sp.Experts {
		p := fmt.Sprintf("%s.expert.%d", name, i)
		first = append(first, s.linear(p+".in", sp.ExpertDim, in))
		e := expert{cross: s.linear(p+".cross", sp.ExpertDim, sp.ExpertDim)}
		for l := range sp.LowRankLayers {
			lp := fmt.Sprintf("%s.lowrank.%d", p, l)
			v := s.get(lp+".v", sp.ExpertDim, sp.LowRank)
			u := s.get(lp+".u", sp.ExpertDim, sp.LowRank)
			b := s.get(lp+".bias", sp.ExpertDim)
			if s.err != nil {
				break
			}
			e.low = append(e.low, [2]*linear{newLinear(transpose(v, sp.ExpertDim, sp.LowRank), nil, sp.LowRank, sp.ExpertDim), newLinear(u, b, sp.ExpertDim, sp.LowRank)})
		}
		e.mlp = s.mlp(p+".mlp", sp.ExpertDim, sp.ExpertMLP)
		t.experts = append(t.experts, e)
	}
	t.outW = sp.ExpertDim
	if len(sp.ExpertMLP) > 0 {
		t.outW = sp.ExpertMLP[len(sp.ExpertMLP)-1]
	}
	for k := range tasks {
		p := fmt.Sprintf("%s.gate.%d", name, k)
		if !s.has(p + ".out.weight") {
			if need[k] && s.err == nil {
				s.err = fmt.Errorf("%s: no gate for task %d (%s%s.out.weight)", s.f.Path, k, s.prefix, p)
			}
			continue
		}
		g := &gate{first: -1}
		ls := s.mlp(p, in, sp.GateMLP)
		width := in
		if len(ls) > 0 && s.err == nil {
			g.first = len(first) // an index for now, a column offset below
			g.width = ls[0].out
			first = append(first, ls[0])
			g.mlp = ls[1:]
			width = sp.GateMLP[len(sp.GateMLP)-1]
		}
		g.out = s.linear(p+".out", sp.Experts, width)
		t.gates[k] = g
	}
	if s.err != nil {
		return t
	}
	t.first = fuse(first...)
	offs := make([]int, len(first))
	o := 0
	for i, l := range first {
		offs[i] = o
		o += l.out
	}
	for i := range t.experts {
		t.firstOff = append(t.firstOff, offs[i])
	}
	for _, g := range t.gates {
		if g != nil && g.first >= 0 {
			g.first = offs[g.first]
		}
	}
	return t
}

// linears lists the layers: experts and the shared MLP (big), gates
// (small, their softmax stays fp32). The fused first layer holds expert
// and gate inputs and counts as big.
func (t *trunk) linears() (big, small []*linear) {
	big = append(big, t.mlp...)
	if t.first != nil {
		big = append(big, t.first)
	}
	for _, e := range t.experts {
		big = append(big, e.cross)
		for _, lr := range e.low {
			big = append(big, lr[0], lr[1])
		}
		big = append(big, e.mlp...)
	}
	for _, g := range t.gates {
		if g != nil {
			small = append(small, g.mlp...)
			small = append(small, g.out)
		}
	}
	return big, small
}

func transpose(v []float32, rows, cols int) []float32 {
	out := make([]float32, len(v))
	for i := range rows {
		for j := range cols {
			out[j*rows+i] = v[i*cols+j]
		}
	}
	return out
}

// run computes the trunk over m rows of x (width t.in) and returns h_t
// (m × outW) for every task with want[t] (nil elsewhere).
func (t *trunk) run(w *Worker, x []float32, ldx, m int, want []bool) [][]float32 {
	hs := w.a.ptrs(len(want))
	if t.arch == "mlp" {
		h, _ := mlpNamed(w, "trunk.mlp", t.mlp, x, ldx, m)
		for k, ok := range want {
			if ok {
				hs[k] = h
			}
		}
		return hs
	}
	fw := t.first.out
	f0 := w.a.floats(m * fw)
	t.first.apply(w, f0, fw, x, ldx, m, false)
	w.emit("trunk.first", m, fw, fw, f0)
	d := t.dim
	outs := w.a.ptrs(len(t.experts))
	for i := range t.experts {
		e := &t.experts[i]
		x0 := f0[t.firstOff[i]:]
		h := w.a.floats(m * d)
		name := ""
		if w.trace != nil {
			name = fmt.Sprintf("trunk.expert.%d", i)
		}
		e.cross.apply(w, h, d, x0, fw, m, false)
		w.emit(name+".cross", m, d, d, h)
		crossCombine(h, d, x0, fw, x0, fw, m, d)
		w.emit(name+".cross.combine", m, d, d, h)
		for j, lr := range e.low {
			r := lr[0].out
			tmp := w.a.floats(m * r)
			lr[0].apply(w, tmp, r, h, d, m, false)
			h2 := w.a.floats(m * d)
			lr[1].apply(w, h2, d, tmp, r, m, false)
			if w.trace != nil {
				w.emit(fmt.Sprintf("%s.lowrank.%d.v", name, j), m, r, r, tmp)
				w.emit(fmt.Sprintf("%s.lowrank.%d.u", name, j), m, d, d, h2)
			}
			crossCombine(h2, d, x0, fw, h, d, m, d)
			if w.trace != nil {
				w.emit(fmt.Sprintf("%s.lowrank.%d.combine", name, j), m, d, d, h2)
			}
			h = h2
		}
		if len(e.mlp) > 0 {
			outs[i], _ = mlpNamed(w, name+".mlp", e.mlp, h, d, m)
		} else {
			outs[i] = h
		}
	}
	ne := len(t.experts)
	for k, g := range t.gates {
		if g == nil || !want[k] {
			continue
		}
		gx, ldg := x, ldx
		if g.first >= 0 {
			// The gate's first layer came out of the fused GEMM without its ReLU.
			width := g.width
			gx = w.a.floats(m * width)
			for r := 0; r < m; r++ {
				src := f0[r*fw+g.first:][:width]
				dst := gx[r*width:][:width]
				for c, v := range src {
					dst[c] = max(v, 0)
				}
			}
			ldg = width
		}
		name := ""
		if w.trace != nil {
			name = fmt.Sprintf("trunk.gate.%d", k)
			if g.first >= 0 {
				w.emit(name+".first", m, ldg, ldg, gx)
			}
		}
		gh, ldh := mlpNamed(w, name+".mlp", g.mlp, gx, ldg, m)
		logits := w.a.floats(m * ne)
		g.out.apply(w, logits, ne, gh, ldh, m, false)
		w.emit(name+".out", m, ne, ne, logits)
		h := w.a.zeros(m * t.outW)
		for r := 0; r < m; r++ {
			gr := logits[r*ne : (r+1)*ne]
			kernel.Softmax(gr)
			hr := h[r*t.outW : (r+1)*t.outW]
			for i, a := range gr {
				fr := outs[i][r*t.outW : (r+1)*t.outW]
				for c := range hr {
					hr[c] += a * fr[c]
				}
			}
		}
		w.emit(name+".combine", m, t.outW, t.outW, h)
		hs[k] = h
	}
	return hs
}
