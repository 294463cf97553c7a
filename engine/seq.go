package engine

import (
	"fmt"
	"math"

	"github.com/tandemml/tandem/feature"
	"github.com/tandemml/tandem/kernel"
)

// seqModel is the user-sequence side: token tables, the post-LN encoder,
// the sequence output and the projection (SYSTEM.md §2).
type seqModel struct {
	l, short, d, heads, content int
	actDim, surfDim, ageDim     int
	act, surf, age, pos, oov    []float32
	ages, surfaces              int
	token                       *linear
	layers                      []encLayer
	pool, cross, proj           *linear
}

type encLayer struct {
	qkv, out, ffn1, ffn2 *linear
	ln1g, ln1b           []float32
	ln2g, ln2b           []float32
}

// seqSpec is what readSeq needs from the config.
type seqSpec struct {
	L, Short, Dim, Heads, Layers int
	ActionDim, SurfaceDim        int
	AgeDim, AgeBuckets           int
	Content, Surfaces, Proj      int
}

func readSeq(s *source, name string, sp seqSpec) *seqModel {
	d := sp.Dim
	m := &seqModel{l: sp.L, short: sp.Short, d: d, heads: sp.Heads, content: sp.Content,
		actDim: sp.ActionDim, surfDim: sp.SurfaceDim, ageDim: sp.AgeDim, ages: sp.AgeBuckets, surfaces: sp.Surfaces}
	m.act = s.table(name+".emb.action", int(feature.NumActions), sp.ActionDim)
	m.surf = s.table(name+".emb.surface", sp.Surfaces, sp.SurfaceDim)
	m.age = s.table(name+".emb.age", sp.AgeBuckets, sp.AgeDim)
	m.pos = s.table(name+".emb.position", sp.L, d)
	m.oov = s.table(name+".emb.oov_content", 1, sp.Content)
	tokIn := sp.Content + sp.ActionDim + sp.SurfaceDim + sp.AgeDim
	m.token = s.linear(name+".enc.token", d, tokIn)
	for l := range sp.Layers {
		p := fmt.Sprintf("%s.enc.layer.%d", name, l)
		q := s.linear(p+".attn.q", d, d)
		k := s.linear(p+".attn.k", d, d)
		v := s.linear(p+".attn.v", d, d)
		e := encLayer{
			out:  s.linear(p+".attn.out", d, d),
			ffn1: s.linear(p+".ffn.1", 4*d, d),
			ffn2: s.linear(p+".ffn.2", d, 4*d),
			ln1g: s.get(p+".ln1.weight", d), ln1b: s.get(p+".ln1.bias", d),
			ln2g: s.get(p+".ln2.weight", d), ln2b: s.get(p+".ln2.bias", d),
		}
		if s.err == nil {
			e.qkv = fuse(q, k, v)
		}
		m.layers = append(m.layers, e)
	}
	m.pool = s.linear(name+".out.pool", d, d)
	w := (sp.Short + 1) * d
	m.cross = s.linear(name+".proj.cross", w, w)
	m.proj = s.linear(name+".proj.out", sp.Proj, w)
	return m
}

// linears lists the layers: the encoder and projection (big) and the rest.
func (m *seqModel) linears() (big, small []*linear) {
	for _, e := range m.layers {
		big = append(big, e.qkv, e.out, e.ffn1, e.ffn2)
	}
	big = append(big, m.cross, m.proj)
	return big, []*linear{m.token, m.pool}
}

// seqOut is the sequence side of one batch: the encoder outputs of every
// real event stacked (context c's events are rows off[c]..off[c+1]) and the
// projected user vector of each context.
type seqOut struct {
	t    []float32 // off[U] × d
	off  []int32   // U+1
	proj []float32 // U × p
}

// run encodes the U contexts of b. Only real events are encoded: padded
// keys get −1e9 in training, which is an exact zero weight in float32,
// and padded positions never reach an output (see docs/ENGINE.md).
func (m *seqModel) run(w *Worker, b *Batch) seqOut {
	u, d, l := b.U, m.d, m.l
	off := w.a.ints(u + 1)
	off[0] = 0
	for c := 0; c < u; c++ {
		off[c+1] = off[c] + b.SeqLen[c]
	}
	tot := int(off[u])
	tokIn := m.token.in
	tok := w.a.floats(tot * tokIn)
	for c := 0; c < u; c++ {
		for j := 0; j < int(b.SeqLen[c]); j++ {
			src := c*l + j
			dst := tok[(int(off[c])+j)*tokIn:][:tokIn]
			if b.SeqOOV[src] != 0 {
				copy(dst, m.oov)
			} else {
				copy(dst, b.SeqContent[src*m.content:(src+1)*m.content])
			}
			o := m.content
			copy(dst[o:o+m.actDim], m.act[int(b.SeqAction[src])*m.actDim:])
			o += m.actDim
			copy(dst[o:o+m.surfDim], m.surf[int(b.SeqSurface[src])*m.surfDim:])
			o += m.surfDim
			copy(dst[o:o+m.ageDim], m.age[int(b.SeqAge[src])*m.ageDim:])
		}
	}
	w.emit("seq.tokens", tot, tokIn, tokIn, tok)
	x := w.a.floats(tot * d)
	m.token.apply(w, x, d, tok, tokIn, tot, false)
	w.emit("seq.token", tot, d, d, x)
	for c := 0; c < u; c++ {
		for j := 0; j < int(b.SeqLen[c]); j++ {
			row := x[(int(off[c])+j)*d:][:d]
			p := m.pos[j*d : (j+1)*d]
			for k := range row {
				row[k] += p[k]
			}
		}
	}
	w.emit("seq.position", tot, d, d, x)
	for i := range m.layers {
		name := ""
		if w.trace != nil {
			name = fmt.Sprintf("seq.layer.%d", i)
		}
		x = m.layers[i].run(w, name, x, off, u, d, m.heads, l)
	}
	// Sequence output: the newest `short` positions (missing ones zero) ⊕
	// Linear(masked max-pool), zero pool for an empty sequence.
	sw := (m.short + 1) * d
	s := w.a.zeros(u * sw)
	pooled := w.a.zeros(u * d)
	for c := 0; c < u; c++ {
		n := int(b.SeqLen[c])
		t := x[int(off[c])*d : int(off[c+1])*d]
		copy(s[c*sw:c*sw+min(n, m.short)*d], t)
		if n == 0 {
			continue
		}
		pr := pooled[c*d : (c+1)*d]
		copy(pr, t[:d])
		for j := 1; j < n; j++ {
			for k, v := range t[j*d : (j+1)*d] {
				pr[k] = max(pr[k], v)
			}
		}
	}
	w.emit("seq.summary", u, d, d, pooled)
	m.pool.apply(w, s[m.short*d:], sw, pooled, d, u, false)
	w.emit("seq.pool", u, m.pool.out, sw, s[m.short*d:])
	// Projection: a full-rank cross on s, then Linear to p.
	h := w.a.floats(u * sw)
	m.cross.apply(w, h, sw, s, sw, u, false)
	w.emit("seq.cross", u, sw, sw, h)
	crossCombine(h, sw, s, sw, s, sw, u, sw)
	w.emit("seq.cross.combine", u, sw, sw, h)
	proj := w.a.floats(u * m.proj.out)
	m.proj.apply(w, proj, m.proj.out, h, sw, u, false)
	w.emit("seq.proj", u, m.proj.out, m.proj.out, proj)
	return seqOut{t: x, off: off, proj: proj}
}

// run is one post-LN layer over the stacked events: x = LN(x + attn(x));
// x = LN(x + FFN(x)).
func (e *encLayer) run(w *Worker, name string, x []float32, off []int32, u, d, heads, l int) []float32 {
	tot := int(off[u])
	qkv := w.a.floats(tot * 3 * d)
	e.qkv.apply(w, qkv, 3*d, x, d, tot, false)
	w.emit(name+".qkv", tot, 3*d, 3*d, qkv)
	o := w.a.floats(tot * d)
	dh := d / heads
	scale := float32(1 / math.Sqrt(float64(dh)))
	sc := w.a.floats(l)
	kh := w.a.floats(l * dh) // one head's keys, row per event
	vt := w.a.floats(dh * l) // one head's values, transposed
	for c := 0; c < u; c++ {
		lo, n := int(off[c]), int(off[c+1]-off[c])
		for h := 0; h < heads; h++ {
			for j := 0; j < n; j++ {
				row := qkv[(lo+j)*3*d:]
				copy(kh[j*dh:(j+1)*dh], row[d+h*dh:])
				for t, v := range row[2*d+h*dh : 2*d+(h+1)*dh] {
					vt[t*n+j] = v
				}
			}
			for i := 0; i < n; i++ {
				s := sc[:n]
				kernel.Dots(s, qkv[(lo+i)*3*d+h*dh:][:dh], kh[:n*dh], dh)
				for j := range s {
					s[j] *= scale
				}
				kernel.Softmax(s)
				kernel.Dots(o[(lo+i)*d+h*dh:][:dh], s, vt[:dh*n], n)
			}
		}
	}
	y := w.a.floats(tot * d)
	e.out.apply(w, y, d, o, d, tot, false)
	w.emit(name+".out", tot, d, d, y)
	kernel.Add(y, x)
	kernel.LayerNorm(y, y, d, e.ln1g, e.ln1b, 1e-5)
	w.emit(name+".ln1", tot, d, d, y)
	f1 := w.a.floats(tot * 4 * d)
	e.ffn1.apply(w, f1, 4*d, y, d, tot, true)
	w.emit(name+".ffn1", tot, 4*d, 4*d, f1)
	f2 := w.a.floats(tot * d)
	e.ffn2.apply(w, f2, d, f1, 4*d, tot, false)
	w.emit(name+".ffn2", tot, d, d, f2)
	kernel.Add(f2, y)
	kernel.LayerNorm(f2, f2, d, e.ln2g, e.ln2b, 1e-5)
	w.emit(name+".ln2", tot, d, d, f2)
	return f2
}
