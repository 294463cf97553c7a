package batch

import (
	"fmt"
	"math/rand/v2"

	"github.com/tandemml/tandem/config"
)

// Row is one scored (request, ad) pair: an impression (with labels) or a
// never-shown candidate (position 0, Weight 0 unless it carries soft labels).
type Row struct {
	Req      int32
	Imp      int32 // index into Data.Imps, −1 for a never-shown candidate
	AdRow    int32
	Position int32
	Labels   [4]float32
	Weight   float32 // 0 for padding
}

// L2Feeder fills the inputs of an L2 graph for N rows over at most U
// (user, request time) contexts. Buffers are reused between batches.
type L2Feeder struct {
	D      *Data
	S      *Sparse
	BN     *BN
	N, U   int
	NoSeq  bool
	Trains [][]bool // surface × task

	X, Ad   *Gathered
	Dense   []float32 // N × dense
	Live    []bool
	*Seq              // the U contexts' sequence inputs
	CtxRow  []int     // N
	TARows  []int     // N·L
	TAMask  []float32 // N × 1 × L
	TAAny   []float32 // N × d
	Surface [][]float32
	Y, W    []float32 // N × T

	ctxKey map[[2]int64]int
}

// NewL2Feeder allocates the buffers; noSeq skips the sequence inputs (the
// logistic baseline).
func NewL2Feeder(d *Data, s *Sparse, bn *BN, n, u int, noSeq bool) *L2Feeder {
	cfg := d.Cfg
	f := &L2Feeder{D: d, S: s, BN: bn, N: n, U: u, NoSeq: noSeq, ctxKey: map[[2]int64]int{}}
	if !noSeq {
		f.Seq = NewSeq(d, s, u)
	}
	f.Trains = TrainsMatrix(cfg)
	ft := d.Feat
	var xl, al Layout
	for i, c := range ft.UserCat {
		xl.Add(c.Name, s.UserCat[i].Dim, s.UserCat[i])
	}
	xl.Add(ft.UserEmb, ft.UserEmbDim, nil)
	for i, c := range ft.Context {
		xl.Add(c.Name, s.Ctx[i].Dim, s.Ctx[i])
	}
	xl.Add("context_item.content_emb", ft.ContentDim, nil)
	for i, c := range ft.AdCat {
		al.Add(c.Name, s.AdCat[i].Dim, s.AdCat[i])
	}
	al.Add("content_emb", ft.ContentDim, nil)
	f.X, f.Ad = NewGathered(&xl, n), NewGathered(&al, n)
	f.Dense = make([]float32, n*(len(ft.UserDense)+len(ft.AdDense)))
	f.Live = make([]bool, n)
	f.Surface = make([][]float32, len(cfg.Surfaces))
	for i := range f.Surface {
		f.Surface[i] = make([]float32, n)
	}
	nt := len(cfg.Tasks)
	f.Y, f.W = make([]float32, n*nt), make([]float32, n*nt)
	if !noSeq {
		f.CtxRow = make([]int, n)
		f.TARows = make([]int, n*f.L)
		f.TAMask = make([]float32, n*f.L)
		f.TAAny = make([]float32, n*f.Dim)
	}
	return f
}

// ContextCode is the code of context feature c for a row of req shown at
// position pos.
func (d *Data) ContextCode(c config.Feature, req *Request, pos int32) int32 {
	switch c.Name {
	case "surface":
		return CodeString(c, d.Cfg.Surfaces[req.Surface].Name)
	case "view_type":
		return CodeString(c, d.Cfg.ViewTypes()[req.View])
	case "query_topic":
		return CodeInt(c, int64(req.QueryTopic))
	case "position":
		return CodeInt(c, int64(pos))
	}
	return 0
}

// TrainsMatrix returns [surface][task]: whether the surface trains the task.
func TrainsMatrix(cfg *config.Config) [][]bool {
	out := make([][]bool, len(cfg.Surfaces))
	for i, s := range cfg.Surfaces {
		out[i] = make([]bool, len(cfg.Tasks))
		for t, task := range cfg.Tasks {
			for _, st := range s.Tasks {
				if st == task {
					out[i][t] = true
				}
			}
		}
	}
	return out
}

// Contexts returns how many distinct (user, request time) contexts rows
// span; a packer keeps it ≤ U.
func ContextKey(r *Request) [2]int64 { return [2]int64{r.UserID, r.TsMs} }

// Fill writes rows (at most N; the rest is padding) into the buffers. With
// train, dense features use batch statistics and, when rng is non-nil,
// sequences are masked as SYSTEM.md §2 says (drop [t−w, t) with
// probability p). More than N rows or U contexts is an error (pack rows
// first).
func (f *L2Feeder) Fill(rows []Row, train bool, rng *rand.Rand) error {
	if len(rows) > f.N {
		return fmt.Errorf("batch of %d rows, the graph takes %d", len(rows), f.N)
	}
	d, cfg := f.D, f.D.Cfg
	ft := d.Feat
	f.X.Reset()
	f.Ad.Reset()
	clear(f.Y)
	clear(f.W)
	for i := range f.Surface {
		clear(f.Surface[i])
	}
	nt := len(cfg.Tasks)
	nd := len(ft.UserDense) + len(ft.AdDense)
	clear(f.Dense)
	clear(f.ctxKey)
	var ctxOf []int
	if !f.NoSeq {
		ctxOf = make([]int, 0, len(rows))
	}
	for r, row := range rows {
		req := &d.Requests[row.Req]
		f.Live[r] = row.Weight > 0
		// user features
		u := int(req.UserRow)
		for i := range ft.UserCat {
			f.X.SetRow(r, i, d.UserCats[u*len(ft.UserCat)+i])
		}
		seg := len(ft.UserCat)
		f.X.SetFixed(r, seg, d.UserEmb[u*ft.UserEmbDim:(u+1)*ft.UserEmbDim])
		seg++
		for i, c := range ft.Context {
			f.X.SetRow(r, seg+i, d.ContextCode(c, req, row.Position))
		}
		seg += len(ft.Context)
		if req.CtxItemRow >= 0 {
			k := int(req.CtxItemRow)
			f.X.SetFixed(r, seg, d.ItemEmb[k*ft.ContentDim:(k+1)*ft.ContentDim])
		}
		// ad features
		a := int(row.AdRow)
		for i := range ft.AdCat {
			f.Ad.SetRow(r, i, d.AdCats[a*len(ft.AdCat)+i])
		}
		it := int(d.AdItem[a])
		f.Ad.SetFixed(r, len(ft.AdCat), d.ItemEmb[it*ft.ContentDim:(it+1)*ft.ContentDim])
		copy(f.Dense[r*nd:], d.UserDense[u*len(ft.UserDense):(u+1)*len(ft.UserDense)])
		copy(f.Dense[r*nd+len(ft.UserDense):], d.AdDense[a*len(ft.AdDense):(a+1)*len(ft.AdDense)])
		f.Surface[req.Surface][r] = 1
		for t := 0; t < nt; t++ {
			f.Y[r*nt+t] = row.Labels[t]
			if f.Trains[req.Surface][t] {
				f.W[r*nt+t] = row.Weight
			}
		}
		if !f.NoSeq {
			k := ContextKey(req)
			c, ok := f.ctxKey[k]
			if !ok {
				c = len(f.ctxKey)
				if c == f.U {
					return fmt.Errorf("batch spans more than %d (user, request time) contexts", f.U)
				}
				f.ctxKey[k] = c
				f.Seq.Fill(c, req, train, rng)
			}
			ctxOf = append(ctxOf, c)
		}
	}
	for r := len(rows); r < f.N; r++ {
		f.Live[r] = false
	}
	f.BN.Normalize(f.Dense, f.N, f.Live, train)
	if f.NoSeq {
		return nil
	}
	for c := len(f.ctxKey); c < f.U; c++ {
		f.Seq.Fill(c, nil, false, nil)
	}
	for r := 0; r < f.N; r++ {
		c := 0
		if r < len(rows) {
			c = ctxOf[r]
		}
		f.CtxRow[r] = c
		n := f.Seq.Len(c)
		for j := 0; j < f.L; j++ {
			f.TARows[r*f.L+j] = c*f.L + j
			if j < max(n, 1) { // see Seq.Fill on empty sequences
				f.TAMask[r*f.L+j] = 0
			} else {
				f.TAMask[r*f.L+j] = -1e9
			}
		}
		v := float32(0)
		if n > 0 {
			v = 1
		}
		for k := 0; k < f.Dim; k++ {
			f.TAAny[r*f.Dim+k] = v
		}
	}
	return nil
}
