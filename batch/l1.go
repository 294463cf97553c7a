package batch

import (
	"fmt"
	"math/rand/v2"
)

// L1Feeder fills the inputs of a two-tower graph: the user side once per
// request (U contexts), the ad side per row (N).
type L1Feeder struct {
	D        *Data
	User, Ad *Sparse
	UBN, ABN *BN
	N, U     int
	// CtxTables are the user-side context tables (surface, view type) and
	// CtxNames their feature names.
	CtxTables []*Table
	CtxNames  []string

	UX     *Gathered // U × (user cats ⊕ pretrained ⊕ surface ⊕ view)
	UDense []float32
	ULive  []bool
	*Seq
	AX     *Gathered // N × (ad cats ⊕ content)
	ADense []float32
	ALive  []bool
	CtxRow []int
	Y, W   []float32

	trains [][]bool
	ctx    map[int32]int
}

// NewL1Feeder allocates the buffers. user holds the user tables (and the
// sequence tables), ad the ad tables.
func NewL1Feeder(d *Data, user, ad *Sparse, ubn, abn *BN, n, u int) *L1Feeder {
	ft := d.Feat
	f := &L1Feeder{D: d, User: user, Ad: ad, UBN: ubn, ABN: abn, N: n, U: u, trains: TrainsMatrix(d.Cfg), ctx: map[int32]int{}}
	var ul, al Layout
	for i, c := range ft.UserCat {
		ul.Add(c.Name, user.UserCat[i].Dim, user.UserCat[i])
	}
	ul.Add(ft.UserEmb, ft.UserEmbDim, nil)
	for i, c := range ft.Context {
		if c.Name == "surface" || c.Name == "view_type" {
			ul.Add(c.Name, user.Ctx[i].Dim, user.Ctx[i])
			f.CtxTables = append(f.CtxTables, user.Ctx[i])
			f.CtxNames = append(f.CtxNames, c.Name)
		}
	}
	for i, c := range ft.AdCat {
		al.Add(c.Name, ad.AdCat[i].Dim, ad.AdCat[i])
	}
	al.Add("content_emb", ft.ContentDim, nil)
	f.UX, f.AX = NewGathered(&ul, u), NewGathered(&al, n)
	f.UDense, f.ULive = make([]float32, u*len(ft.UserDense)), make([]bool, u)
	f.ADense, f.ALive = make([]float32, n*len(ft.AdDense)), make([]bool, n)
	f.Seq = NewSeq(d, user, u)
	f.CtxRow = make([]int, n)
	nt := len(d.Cfg.Tasks)
	f.Y, f.W = make([]float32, n*nt), make([]float32, n*nt)
	return f
}

// Fill writes rows (≤ N over ≤ U distinct requests; more is an error).
// Rows of one request share its user-side context.
func (f *L1Feeder) Fill(rows []Row, train bool, rng *rand.Rand) error {
	if len(rows) > f.N {
		return fmt.Errorf("batch of %d rows, the graph takes %d", len(rows), f.N)
	}
	d, cfg := f.D, f.D.Cfg
	ft := d.Feat
	f.UX.Reset()
	f.AX.Reset()
	clear(f.UDense)
	clear(f.ADense)
	clear(f.Y)
	clear(f.W)
	clear(f.ULive)
	clear(f.ALive)
	clear(f.ctx)
	nt := len(cfg.Tasks)
	nud, nad := len(ft.UserDense), len(ft.AdDense)
	for r, row := range rows {
		req := &d.Requests[row.Req]
		c, ok := f.ctx[row.Req]
		if !ok {
			c = len(f.ctx)
			if c == f.U {
				return fmt.Errorf("batch spans more than %d requests", f.U)
			}
			f.ctx[row.Req] = c
			u := int(req.UserRow)
			for i := range ft.UserCat {
				f.UX.SetRow(c, i, d.UserCats[u*len(ft.UserCat)+i])
			}
			seg := len(ft.UserCat)
			f.UX.SetFixed(c, seg, d.UserEmb[u*ft.UserEmbDim:(u+1)*ft.UserEmbDim])
			for i, name := range f.CtxNames {
				var code int32
				fc := ft.Context[contextIndex(ft, name)]
				if name == "surface" {
					code = CodeString(fc, cfg.Surfaces[req.Surface].Name)
				} else {
					code = CodeString(fc, cfg.ViewTypes()[req.View])
				}
				f.UX.SetRow(c, seg+1+i, code)
			}
			copy(f.UDense[c*nud:], d.UserDense[u*nud:(u+1)*nud])
			f.ULive[c] = true
			f.Seq.Fill(c, req, train, rng)
		}
		f.CtxRow[r] = c
		a := int(row.AdRow)
		for i := range ft.AdCat {
			f.AX.SetRow(r, i, d.AdCats[a*len(ft.AdCat)+i])
		}
		it := int(d.AdItem[a])
		f.AX.SetFixed(r, len(ft.AdCat), d.ItemEmb[it*ft.ContentDim:(it+1)*ft.ContentDim])
		copy(f.ADense[r*nad:], d.AdDense[a*nad:(a+1)*nad])
		f.ALive[r] = row.Weight > 0 || !train
		for t := 0; t < nt; t++ {
			f.Y[r*nt+t] = row.Labels[t]
			if f.trains[req.Surface][t] {
				f.W[r*nt+t] = row.Weight
			}
		}
	}
	for c := len(f.ctx); c < f.U; c++ {
		f.Seq.Fill(c, nil, false, nil)
	}
	for r := len(rows); r < f.N; r++ {
		f.CtxRow[r] = 0
	}
	f.UBN.Normalize(f.UDense, f.U, f.ULive, train)
	f.ABN.Normalize(f.ADense, f.N, f.ALive, train)
	return nil
}

func contextIndex(ft *Features, name string) int {
	for i, c := range ft.Context {
		if c.Name == name {
			return i
		}
	}
	return -1
}
