package batch

import (
	"github.com/tandemml/tandem/engine"
)

// EngineBatch fills b with rows as the inference engine's coded inputs
// (docs/ENGINE.md). Contexts are the distinct (user, request time) pairs
// of the rows (L2's request-level broadcasting) or, with byRequest, the
// distinct requests (the L1 user tower also reads surface and view type).
// Sequences are as of each request's time, without training-time masking.
// b's slices are reused when large enough.
func (d *Data) EngineBatch(b *engine.Batch, rows []Row, byRequest bool) {
	ft, cfg := d.Feat, d.Cfg
	L, C := cfg.Sequence.Length, ft.ContentDim
	nuc, nud, nac, nad, nctx := len(ft.UserCat), len(ft.UserDense), len(ft.AdCat), len(ft.AdDense), len(ft.Context)
	b.N = len(rows)
	b.U = 0
	reset(&b.UserCats, 0)
	b.UserDense = b.UserDense[:0]
	b.Pretrained = b.Pretrained[:0]
	reset(&b.UserContext, 0)
	reset(&b.SeqLen, 0)
	b.SeqContent = b.SeqContent[:0]
	b.SeqOOV = b.SeqOOV[:0]
	reset(&b.SeqAction, 0)
	reset(&b.SeqSurface, 0)
	reset(&b.SeqAge, 0)
	reset(&b.Ctx, b.N)
	reset(&b.Context, b.N*nctx)
	b.ContextItem = resize(b.ContextItem, b.N*C)
	reset(&b.AdCats, b.N*nac)
	b.AdContent = resize(b.AdContent, b.N*C)
	b.AdDense = resize(b.AdDense, b.N*nad)
	reset(&b.View, b.N)
	ctxOf := map[[2]int64]int32{}
	ages := cfg.Model.Seq.AgeBuckets
	for r, row := range rows {
		req := &d.Requests[row.Req]
		key := ContextKey(req)
		if byRequest {
			key = [2]int64{-1, int64(row.Req)}
		}
		c, ok := ctxOf[key]
		if !ok {
			c = int32(b.U)
			ctxOf[key] = c
			b.U++
			u := int(req.UserRow)
			b.UserCats = append(b.UserCats, d.UserCats[u*nuc:(u+1)*nuc]...)
			b.UserDense = append(b.UserDense, d.UserDense[u*nud:(u+1)*nud]...)
			b.Pretrained = append(b.Pretrained, d.UserEmb[u*ft.UserEmbDim:(u+1)*ft.UserEmbDim]...)
			for _, f := range ft.Context {
				if f.Name == "surface" || f.Name == "view_type" {
					b.UserContext = append(b.UserContext, d.ContextCode(f, req, 0))
				}
			}
			seq := d.Seq.Sequence(nil, req.UserID, req.TsMs, L)
			b.SeqLen = append(b.SeqLen, int32(len(seq)))
			for j := 0; j < L; j++ {
				var content []float32
				var oov uint8
				var act, surf, age int32
				if j < len(seq) {
					e := seq[j]
					if k, ok := d.ItemRow[e.ItemID]; ok {
						content = d.ItemEmb[int(k)*C : (int(k)+1)*C]
					} else {
						oov = 1
					}
					act, surf, age = int32(e.Action), int32(e.Surface), AgeBucket(req.TsMs-e.TsMs, ages)
				}
				if content == nil {
					b.SeqContent = append(b.SeqContent, make([]float32, C)...)
				} else {
					b.SeqContent = append(b.SeqContent, content...)
				}
				b.SeqOOV = append(b.SeqOOV, oov)
				b.SeqAction = append(b.SeqAction, act)
				b.SeqSurface = append(b.SeqSurface, surf)
				b.SeqAge = append(b.SeqAge, age)
			}
		}
		b.Ctx[r] = c
		for i, f := range ft.Context {
			b.Context[r*nctx+i] = d.ContextCode(f, req, row.Position)
		}
		ci := b.ContextItem[r*C : (r+1)*C]
		clear(ci)
		if req.CtxItemRow >= 0 {
			k := int(req.CtxItemRow)
			copy(ci, d.ItemEmb[k*C:(k+1)*C])
		}
		d.fillAd(b, r, int(row.AdRow))
		b.View[r] = int32(d.SurfaceView(req))
	}
}

// EngineAdBatch fills only b's ad fields (the L1 ad tower's inputs) with
// the ads of rows; N is len(rows) and no request is read.
func (d *Data) EngineAdBatch(b *engine.Batch, rows []Row) {
	ft := d.Feat
	C, nac, nad := ft.ContentDim, len(ft.AdCat), len(ft.AdDense)
	b.N, b.U = len(rows), 0
	reset(&b.AdCats, b.N*nac)
	b.AdContent = resize(b.AdContent, b.N*C)
	b.AdDense = resize(b.AdDense, b.N*nad)
	for r, row := range rows {
		d.fillAd(b, r, int(row.AdRow))
	}
}

// fillAd writes ad row a's fields into row r of b.
func (d *Data) fillAd(b *engine.Batch, r, a int) {
	ft := d.Feat
	C, nac, nad := ft.ContentDim, len(ft.AdCat), len(ft.AdDense)
	copy(b.AdCats[r*nac:], d.AdCats[a*nac:(a+1)*nac])
	it := int(d.AdItem[a])
	copy(b.AdContent[r*C:], d.ItemEmb[it*C:(it+1)*C])
	copy(b.AdDense[r*nad:], d.AdDense[a*nad:(a+1)*nad])
}

// SurfaceView is the index of req's view type among its surface's view
// types (the order of the L2 calibration table).
func (d *Data) SurfaceView(req *Request) int {
	name := d.Cfg.ViewTypes()[req.View]
	for i, v := range d.Cfg.Surfaces[req.Surface].ViewTypes {
		if v.Name == name {
			return i
		}
	}
	return 0
}

func reset(s *[]int32, n int) {
	if cap(*s) < n {
		*s = make([]int32, n)
	}
	*s = (*s)[:n]
}

func resize(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
