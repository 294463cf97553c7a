package batch

import (
	"math/rand/v2"

	"github.com/tandemml/tandem/feature"
)

// Seq holds the sequence-encoder inputs of U contexts, gathered from the
// as-of sequence of each context's (user, request time).
type Seq struct {
	D        *Data
	S        *Sparse
	U        int
	L, SD    int
	Dim      int
	Heads    int
	Tok, Pos *Gathered
	Mask     []float32 // U·h × L × L
	Newest   []int     // U·SD
	Keep     []float32 // U × SD·d
	Pool     []float32 // U × L × d
	Any      []float32 // U × d
	seqLen   []int     // per context
	events   []feature.Event
}

// NewSeq allocates the sequence inputs of u contexts over s's tables.
func NewSeq(d *Data, s *Sparse, u int) *Seq {
	cfg := d.Cfg
	f := &Seq{D: d, S: s, U: u, L: cfg.Sequence.Length, SD: cfg.Sequence.ShortTerm, Dim: cfg.Model.Seq.Dim, Heads: cfg.Model.Seq.Heads}
	var tl, pl Layout
	tl.Add("content_emb", d.Feat.ContentDim, s.OOV)
	tl.Add("action", s.Act.Dim, s.Act)
	tl.Add("surface", s.Surf.Dim, s.Surf)
	tl.Add("age", s.Age.Dim, s.Age)
	pl.Add("position", s.Pos.Dim, s.Pos)
	f.Tok, f.Pos = NewGathered(&tl, u*f.L), NewGathered(&pl, u*f.L)
	f.Mask = make([]float32, u*f.Heads*f.L*f.L)
	f.Newest = make([]int, u*f.SD)
	f.Keep = make([]float32, u*f.SD*f.Dim)
	f.Pool = make([]float32, u*f.L*f.Dim)
	f.Any = make([]float32, u*f.Dim)
	f.seqLen = make([]int, u)
	return f
}

// Len is context c's sequence length.
func (f *Seq) Len(c int) int { return f.seqLen[c] }

// Fill writes context c's sequence inputs (req nil: an empty pad).
func (f *Seq) Fill(c int, req *Request, train bool, rng *rand.Rand) {
	d := f.D
	ft := d.Feat
	f.events = f.events[:0]
	if req != nil {
		ts := req.TsMs
		tc := d.Cfg.Train
		if train && rng != nil && rng.Float64() < tc.SeqDropProb {
			ts -= int64(rng.Float64() * tc.SeqDropMaxS * 1000)
		}
		f.events = d.Seq.Sequence(f.events, req.UserID, ts, f.L)
	}
	n := len(f.events)
	f.seqLen[c] = n
	ages := f.S.Age.Rows
	for j := 0; j < f.L; j++ {
		row := c*f.L + j
		for s := range f.Tok.L.Segs {
			f.Tok.Idx[row*len(f.Tok.L.Segs)+s] = -1
		}
		tok := f.Tok.Data[row*f.Tok.L.Width : (row+1)*f.Tok.L.Width]
		clear(tok)
		f.Pos.SetRow(row, 0, int32(j))
		if j < n {
			e := f.events[j]
			if k, ok := d.ItemRow[e.ItemID]; ok {
				f.Tok.SetFixed(row, 0, d.ItemEmb[int(k)*ft.ContentDim:(int(k)+1)*ft.ContentDim])
			} else {
				f.Tok.SetRow(row, 0, 0)
			}
			f.Tok.SetRow(row, 1, int32(e.Action))
			f.Tok.SetRow(row, 2, int32(e.Surface))
			f.Tok.SetRow(row, 3, AgeBucket(req.TsMs-e.TsMs, ages))
		}
	}
	// Padded keys get −1e9 before the softmax. gorgonia's softmax does not
	// subtract the row maximum, so a row with every key masked would be 0/0:
	// an empty sequence keeps key 0 unmasked instead, and its outputs are
	// zeroed downstream (keep, pool and any masks).
	for h := 0; h < f.Heads; h++ {
		m := f.Mask[(c*f.Heads+h)*f.L*f.L : (c*f.Heads+h+1)*f.L*f.L]
		for i := 0; i < f.L; i++ {
			for j := 0; j < f.L; j++ {
				if j < max(n, 1) {
					m[i*f.L+j] = 0
				} else {
					m[i*f.L+j] = -1e9
				}
			}
		}
	}
	for j := 0; j < f.SD; j++ {
		f.Newest[c*f.SD+j] = c*f.L + j
		v := float32(0)
		if j < n {
			v = 1
		}
		for k := 0; k < f.Dim; k++ {
			f.Keep[(c*f.SD+j)*f.Dim+k] = v
		}
	}
	for j := 0; j < f.L; j++ {
		v := float32(0)
		if j >= n {
			v = -1e4
		}
		for k := 0; k < f.Dim; k++ {
			f.Pool[(c*f.L+j)*f.Dim+k] = v
		}
	}
	v := float32(0)
	if n > 0 {
		v = 1
	}
	for k := 0; k < f.Dim; k++ {
		f.Any[c*f.Dim+k] = v
	}
}
