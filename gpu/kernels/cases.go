package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// The cases Check runs. Every output buffer starts with random contents
// (the same for the kernel and the reference), so a kernel that writes a
// cell it should not, or misses one, is caught.

var (
	nan  = float32(math.NaN())
	inf  = float32(math.Inf(1))
	ninf = float32(math.Inf(-1))
)

func rngFor(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x7d3)) }

func randFloats(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func randInts(r *rand.Rand, n, below int) []int32 {
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(r.IntN(below))
	}
	return v
}

func checkCases() []checkCase {
	var cs []checkCase
	add := func(kernel, name string, tol float64, run func(s *session)) {
		cs = append(cs, checkCase{kernel, name, tol, run})
	}
	for _, sz := range [][3]int{{7, 3, 4}, {1, 1, 1}, {0, 2, 3}, {300, 2, 8}} {
		add("tdm_embed_gather", fmt.Sprintf("%dx%dx%d", sz[0], sz[1], sz[2]), TolExact, func(s *session) { embedGatherCase(s, sz[0], sz[1], sz[2]) })
	}
	for _, relu := range []bool{false, true} {
		name := "copy"
		if relu {
			name = "relu"
		}
		add("tdm_copy_cols", name, TolExact, func(s *session) { copyColsCase(s, 9, 13, relu) })
	}
	add("tdm_bn_apply", "nan-inf-clamp", TolRounded, func(s *session) { bnCase(s, 11, 6) })
	add("tdm_seq_tokens", "oov", TolExact, func(s *session) { seqTokensCase(s, 4*5) })
	add("tdm_add_pos", "4x5", TolExact, func(s *session) { addPosCase(s, 4, 5, 8) })
	add("tdm_masked_softmax", "lens 0,L,3,1", TolRounded, func(s *session) { maskedSoftmaxCase(s, []int32{0, 6, 3, 1}, 6, 2, false) })
	add("tdm_masked_softmax", "nan-inf", TolRounded, func(s *session) { maskedSoftmaxCase(s, []int32{5, 2, 6}, 6, 1, true) })
	add("tdm_masked_softmax", "L=40", TolRounded, func(s *session) { maskedSoftmaxCase(s, []int32{40, 17, 0}, 40, 2, false) })
	add("tdm_add_layer_norm", "d=16", TolRounded, func(s *session) { layerNormCase(s, 9, 16, 1e-5, false) })
	add("tdm_add_layer_norm", "constant-nan eps=0", TolRounded, func(s *session) { layerNormCase(s, 4, 8, 0, true) })
	add("tdm_seq_summary", "lens 0,L,2,short+1", TolExact, func(s *session) { seqSummaryCase(s, []int32{0, 6, 2, 4}, 6, 5, 3) })
	add("tdm_cross_combine", "strides", TolExact, func(s *session) { crossCase(s, 10, 7) })
	add("tdm_mmoe_combine", "ne=4", TolRounded, func(s *session) { mmoeCase(s, 8, 4, 6) })
	add("tdm_to_bf16", "ties-nan-inf", TolExact, func(s *session) { bf16Case(s) })
	add("tdm_row_dot", "d=24", TolRounded, func(s *session) { rowDotCase(s, 50, 24) })
	add("tdm_eligible", "n=77", TolExact, func(s *session) { eligibleCase(s, 3, 77, 4) })
	add("tdm_topk", "one launch, ties, mask, k>candidates", TolExact, func(s *session) { topKCase(s, 3, 200, 64, 40) })
	add("tdm_topk", "stages n=5000 k=20", TolExact, func(s *session) { topKStagesCase(s, 2, 5000, 20, 64) })
	add("tdm_topk", "stages n=3 k=8", TolExact, func(s *session) { topKStagesCase(s, 2, 3, 8, 1024) })
	return cs
}

func embedGatherCase(s *session, rows, fields, e int) {
	r := rngFor(1)
	tableRows := []int{5, 1, 9}
	base := make([]int32, fields)
	tot := 0
	for f := range fields {
		base[f] = int32(tot)
		tot += tableRows[f%len(tableRows)]
	}
	table := randFloats(r, tot*e)
	ldc, ldd := fields+1, fields*e+3
	codes := make([]int32, rows*ldc)
	for i := range codes {
		codes[i] = int32(r.IntN(tableRows[(i%ldc)%fields%len(tableRows)]))
	}
	dst := randFloats(r, rows*ldd)
	want := slices.Clone(dst)
	RefEmbedGather(want, codes, table, base, rows, fields, e, ldd, ldc)
	pd := put(s, dst)
	s.launch(&EmbedGather{Dst: pd, Codes: put(s, codes), Table: put(s, table), Base: put(s, base),
		Rows: int32(rows), Fields: int32(fields), E: int32(e), Ldd: int32(ldd), Ldc: int32(ldc)})
	s.f32("dst", get[float32](s, pd, len(want)), want)
}

func copyColsCase(s *session, rows, cols int, relu bool) {
	r := rngFor(2)
	lds, ldd := cols+2, cols+5
	src := randFloats(r, rows*lds)
	src[0], src[1], src[2], src[3] = float32(math.Copysign(0, -1)), nan, ninf, inf
	dst := randFloats(r, rows*ldd)
	want := slices.Clone(dst)
	RefCopyCols(want, src, rows, cols, ldd, lds, relu)
	pd := put(s, dst)
	var rl int32
	if relu {
		rl = 1
	}
	s.launch(&CopyCols{Dst: pd, Src: put(s, src), Rows: int32(rows), Cols: int32(cols), Ldd: int32(ldd), Lds: int32(lds), Relu: rl})
	s.f32("dst", get[float32](s, pd, len(want)), want)
}

func bnCase(s *session, rows, n int) {
	r := rngFor(3)
	ldr, ldd := n+1, n+2
	raw := randFloats(r, rows*ldr)
	for i := range raw {
		raw[i] *= 4
	}
	raw[0], raw[1], raw[2], raw[3], raw[ldr] = nan, inf, ninf, float32(math.Copysign(0, -1)), 1e30
	mean, sd := make([]float64, n), make([]float64, n)
	for j := range n {
		mean[j] = r.NormFloat64()
		sd[j] = math.Sqrt(max(r.Float64()*3, 1e-4))
	}
	mean[3] = 0
	weight, bias := randFloats(r, n), randFloats(r, n)
	dst := randFloats(r, rows*ldd)
	want := slices.Clone(dst)
	RefBNApply(want, raw, mean, sd, weight, bias, rows, n, ldd, ldr, 3)
	pd := put(s, dst)
	s.launch(&BNApply{Dst: pd, Raw: put(s, raw), Mean: put(s, mean), SD: put(s, sd), Weight: put(s, weight), Bias: put(s, bias),
		Rows: int32(rows), N: int32(n), Ldd: int32(ldd), Ldr: int32(ldr), Clamp: 3})
	s.f32("dst", get[float32](s, pd, len(want)), want)
}

func seqTokensCase(s *session, rows int) {
	r := rngFor(4)
	const content, act, surf, age = 5, 3, 2, 4
	const acts, surfs, ages = 6, 3, 7
	cont := randFloats(r, rows*content)
	oov := make([]int32, rows)
	for i := range oov {
		if r.IntN(3) == 0 {
			oov[i] = 1
		}
	}
	oov[0], oov[rows-1] = 1, 0
	action, surface, agev := randInts(r, rows, acts), randInts(r, rows, surfs), randInts(r, rows, ages)
	oovRow, actT, surfT, ageT := randFloats(r, content), randFloats(r, acts*act), randFloats(r, surfs*surf), randFloats(r, ages*age)
	w := content + act + surf + age
	dst := randFloats(r, rows*w)
	want := slices.Clone(dst)
	RefSeqTokens(want, cont, oov, action, surface, agev, oovRow, actT, surfT, ageT, rows, content, act, surf, age)
	pd := put(s, dst)
	s.launch(&SeqTokens{Dst: pd, Content: put(s, cont), OOV: put(s, oov), Action: put(s, action), Surface: put(s, surface),
		Age: put(s, agev), OOVRow: put(s, oovRow), ActT: put(s, actT), SurfT: put(s, surfT), AgeT: put(s, ageT),
		Rows: int32(rows), ContentDim: content, ActDim: act, SurfDim: surf, AgeDim: age})
	s.f32("dst", get[float32](s, pd, len(want)), want)
}

func addPosCase(s *session, contexts, l, d int) {
	r := rngFor(5)
	rows := contexts * l
	x, pos := randFloats(r, rows*d), randFloats(r, l*d)
	want := slices.Clone(x)
	RefAddPos(want, pos, rows, l, d)
	px := put(s, x)
	s.launch(&AddPos{X: px, Pos: put(s, pos), Rows: int32(rows), L: int32(l), D: int32(d)})
	s.f32("x", get[float32](s, px, len(want)), want)
}

func maskedSoftmaxCase(s *session, lens []int32, l, heads int, special bool) {
	r := rngFor(6)
	b := len(lens)
	rows := heads * b * l
	sc := randFloats(r, rows*l)
	for i := range sc {
		sc[i] *= 8
	}
	if special {
		sc[0*l+2] = nan                           // context 0, query 0: NaN row
		sc[1*l+0] = inf                           // query 1: +Inf shared by its copies
		sc[1*l+3] = inf                           //
		sc[2*l+1] = ninf                          // query 2: a −Inf key weighs 0
		sc[(l+0)*l+0] = -1e9                      // context 1, query 0: masked-style key
		sc[(l+1)*l+0], sc[(l+1)*l+1] = ninf, ninf // every real key −Inf
	}
	want := slices.Clone(sc)
	RefMaskedSoftmax(want, lens, rows, l, b)
	ps := put(s, sc)
	s.launch(&MaskedSoftmax{S: ps, Lens: put(s, lens), Rows: int32(rows), L: int32(l), B: int32(b)})
	s.f32("s", get[float32](s, ps, len(want)), want)
}

func layerNormCase(s *session, rows, d int, eps float32, special bool) {
	r := rngFor(7)
	y, x := randFloats(r, rows*d), randFloats(r, rows*d)
	g, bias := randFloats(r, d), randFloats(r, d)
	if special {
		for j := range d {
			y[j], x[j] = 2, 0.5 // a constant row: var + eps = 0, so bias
		}
		y[d+1] = nan
		x[2*d+3] = inf
	}
	want := slices.Clone(y)
	RefAddLayerNorm(want, x, g, bias, rows, d, eps)
	py := put(s, y)
	s.launch(&AddLayerNorm{Y: py, X: put(s, x), G: put(s, g), Bias: put(s, bias), Rows: int32(rows), D: int32(d), Eps: eps})
	s.f32("y", get[float32](s, py, len(want)), want)
}

func seqSummaryCase(s *session, lens []int32, l, d, short int) {
	r := rngFor(8)
	b := len(lens)
	x := randFloats(r, b*l*d)
	x[(2*l+1)*d+2] = nan // context 2's second event: a NaN pools to NaN
	lds := (short+1)*d + 3
	sv, pooled := randFloats(r, b*lds), randFloats(r, b*d)
	ws, wp := slices.Clone(sv), slices.Clone(pooled)
	RefSeqSummary(ws, wp, x, lens, b, l, d, short, lds)
	ps, pp := put(s, sv), put(s, pooled)
	s.launch(&SeqSummary{S: ps, Pooled: pp, X: put(s, x), Lens: put(s, lens), B: int32(b), L: int32(l), D: int32(d), Short: int32(short), Lds: int32(lds)})
	s.f32("s", get[float32](s, ps, len(ws)), ws)
	s.f32("pooled", get[float32](s, pp, len(wp)), wp)
}

func crossCase(s *session, rows, d int) {
	r := rngFor(9)
	ldh, ld0, ldx := d+1, 2*d, d+3
	h, x0, x := randFloats(r, rows*ldh), randFloats(r, rows*ld0), randFloats(r, rows*ldx)
	want := slices.Clone(h)
	RefCrossCombine(want, x0, x, rows, d, ldh, ld0, ldx)
	ph := put(s, h)
	s.launch(&CrossCombine{H: ph, X0: put(s, x0), X: put(s, x), Rows: int32(rows), D: int32(d), Ldh: int32(ldh), Ld0: int32(ld0), Ldx: int32(ldx)})
	s.f32("h", get[float32](s, ph, len(want)), want)
}

func mmoeCase(s *session, rows, ne, w int) {
	r := rngFor(10)
	ldh, lde := w+2, w+1
	es := rows*lde + 5
	logits, experts := randFloats(r, rows*ne), randFloats(r, ne*es)
	logits[ne+1] = nan                      // row 1: NaN weights
	logits[2*ne], logits[2*ne+2] = inf, inf // row 2: shared between the two +Inf
	logits[3*ne+1] = ninf                   // row 3: an expert at weight 0
	h := randFloats(r, rows*ldh)
	want := slices.Clone(h)
	RefMMoECombine(want, logits, experts, rows, ne, w, ldh, lde, es)
	ph := put(s, h)
	s.launch(&MMoECombine{H: ph, Logits: put(s, logits), Experts: put(s, experts), Rows: int32(rows), NE: int32(ne), W: int32(w),
		Ldh: int32(ldh), Lde: int32(lde), ES: int32(es)})
	s.f32("h", get[float32](s, ph, len(want)), want)
}

func bf16Case(s *session) {
	r := rngFor(11)
	bits := []uint32{0, 0x80000000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3fff8000, 0x7f7fffff, 0xff7fffff,
		0x7f7f8000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xff800001, 0x7f81ffff, 0x00018000, 0x007fffff}
	const cols = 24
	rows := (len(bits)+cols-1)/cols + 3
	lds, ldd := cols+1, cols+2
	src := randFloats(r, rows*lds)
	for i, b := range bits {
		src[(i/cols)*lds+i%cols] = math.Float32frombits(b)
	}
	dst := make([]uint16, rows*ldd)
	for i := range dst {
		dst[i] = uint16(r.Uint32())
	}
	want := slices.Clone(dst)
	RefToBF16(want, src, rows, cols, ldd, lds)
	pd := put(s, dst)
	s.launch(&ToBF16{Dst: pd, Src: put(s, src), Rows: int32(rows), Cols: cols, Ldd: int32(ldd), Lds: int32(lds)})
	exact(s, "dst", get[uint16](s, pd, len(want)), want)
}

func rowDotCase(s *session, n, d int) {
	r := rngFor(12)
	const users, ads = 4, 30
	ldu, lda := d+3, d+1
	u, a := randFloats(r, users*ldu), randFloats(r, ads*lda)
	ids, ctx := randInts(r, n, ads), randInts(r, n, users)
	out := randFloats(r, n+2)
	want := slices.Clone(out)
	RefRowDot(want, u, a, ids, ctx, n, d, ldu, lda, -0.75)
	po := put(s, out)
	s.launch(&RowDot{Out: po, U: put(s, u), Ads: put(s, a), IDs: put(s, ids), Ctx: put(s, ctx), N: int32(n), D: int32(d),
		Ldu: int32(ldu), Lda: int32(lda), Beta: -0.75})
	s.f32("out", get[float32](s, po, len(want)), want)
}

func eligibleCase(s *session, queries, n, ldm int) {
	r := rngFor(13)
	active, surfaces, product := make([]uint8, n), make([]uint8, n), make([]uint8, n)
	bid := randFloats(r, n)
	for i := range n {
		if r.IntN(5) != 0 {
			active[i] = 1
		}
		surfaces[i] = uint8(r.IntN(8))
		product[i] = uint8(r.IntN(70)) // some at 64 or more: never admitted
	}
	bid[3] = nan
	surfaceBit, products, minBid := make([]uint32, queries), make([]uint64, queries), randFloats(r, queries)
	for q := range queries {
		surfaceBit[q] = 1 << r.IntN(3)
		products[q] = r.Uint64()
		minBid[q] -= 1
	}
	products[0] = ^uint64(0)
	minBid[queries-1] = nan // admits nothing
	mask := make([]uint32, queries*ldm)
	for i := range mask {
		mask[i] = r.Uint32()
	}
	want := slices.Clone(mask)
	RefEligible(want, active, surfaces, product, bid, surfaceBit, products, minBid, queries, n, ldm)
	pm := put(s, mask)
	s.launch(&Eligible{Mask: pm, Active: put(s, active), Surfaces: put(s, surfaces), Product: put(s, product), Bid: put(s, bid),
		SurfaceBit: put(s, surfaceBit), Products: put(s, products), MinBid: put(s, minBid), Queries: int32(queries), N: int32(n), Ldm: int32(ldm)})
	exact(s, "mask", get[uint32](s, pm, len(want)), want)
}

// topKInputs are scores with ties, NaNs and infinities, explicit ids with
// some negative, and a mask that clears query 1's first 32 ids.
func topKInputs(r *rand.Rand, queries, n int) (val []float32, idx []int32, mask []uint32, ldm int) {
	val = randFloats(r, queries*n)
	idx = make([]int32, queries*n)
	for i := range val {
		switch i % 17 {
		case 3:
			val[i] = 1.25 // ties
		case 5:
			val[i] = nan
		case 7:
			val[i] = ninf
		}
		idx[i] = int32(i % n)
	}
	val[n-1] = inf
	idx[4] = -1
	ldm = (n + 31) / 32
	mask = make([]uint32, queries*ldm)
	for i := range mask {
		mask[i] = r.Uint32() | r.Uint32()
	}
	if queries > 1 {
		mask[ldm] = 0
	}
	return val, idx, mask, ldm
}

func topKCase(s *session, queries, n, chunk, k int) {
	r := rngFor(14)
	val, idx, mask, ldm := topKInputs(r, queries, n)
	ldo := chunks(n, chunk) * k
	ov, oi := randFloats(r, queries*ldo), randInts(r, queries*ldo, 1000)
	wv, wi := slices.Clone(ov), slices.Clone(oi)
	RefTopK(wv, wi, val, idx, mask, queries, n, n, ldm, chunk, k, ldo)
	pv, pi := put(s, ov), put(s, oi)
	s.launch(&TopK{OutVal: pv, OutIdx: pi, Val: put(s, val), Idx: put(s, idx), Mask: put(s, mask), Queries: int32(queries), N: int32(n),
		Ldv: int32(n), Ldm: int32(ldm), Chunk: int32(chunk), K: int32(k), Ldo: int32(ldo)})
	s.f32("outVal", get[float32](s, pv, len(wv)), wv)
	exact(s, "outIdx", get[int32](s, pi, len(wi)), wi)
}

// topKStagesCase chains the TopKStages launches as the exact-retrieval
// plan does (positions as ids, the mask in the first stage only) and
// compares the final list with a single chunk over all n scores.
func topKStagesCase(s *session, queries, n, k, chunk int) {
	r := rngFor(15)
	val, _, mask, ldm := topKInputs(r, queries, n)
	stages := TopKStages(n, k, chunk)
	w := stages[0].Chunks * k
	var pv, pi [2]uint64
	for i := range 2 {
		pv[i], pi[i] = put(s, make([]float32, queries*w)), put(s, make([]int32, queries*w))
	}
	src, srcIdx, ldv, m := put(s, val), uint64(0), n, put(s, mask)
	for i, st := range stages {
		o := i % 2
		s.launch(&TopK{OutVal: pv[o], OutIdx: pi[o], Val: src, Idx: srcIdx, Mask: m, Queries: int32(queries), N: int32(st.N),
			Ldv: int32(ldv), Ldm: int32(ldm), Chunk: int32(chunk), K: int32(k), Ldo: int32(st.Chunks * k)})
		src, srcIdx, ldv, m = pv[o], pi[o], st.Chunks*k, 0
	}
	wv, wi := make([]float32, queries*k), make([]int32, queries*k)
	RefTopK(wv, wi, val, nil, mask, queries, n, n, ldm, max(n, 1), k, k)
	s.f32("values", get[float32](s, src, len(wv)), wv)
	exact(s, "ids", get[int32](s, srcIdx, len(wi)), wi)
}
