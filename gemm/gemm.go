package gemm

import (
	"fmt"

	"github.com/tandemml/tandem/bf16"
)

// Register blocking of the micro-kernel: it computes an mr×nr tile of C
// (6 rows of A against one panel of 16 columns of W) in 12 AVX2
// accumulators.
const (
	mr = 6
	nr = 16
)

// Cache blocking (see the package documentation for the reasoning). They
// are variables only so that tests can exercise other blockings; none of
// them changes a result.
var (
	// kcMax is the longest k block. At 384 a W micro-panel is 24 KiB in
	// fp32 (12 KiB in bf16) and a packed tile of A 9 KiB, about a 32 KiB
	// L1; a k block is long enough that reloading the C tile between
	// blocks costs nothing measurable. 256 measured the same at k = 256
	// and 5–10% slower at k = 373 and 1152.
	kcMax = 384
	// mcMax is the number of rows of A packed at a time (a multiple of
	// mr): 96 rows × 392 floats ≈ 150 KiB, which stays in a 512 KiB L2
	// while every W micro-panel of the column block passes over it.
	mcMax = 96
	// ncBytes bounds the W of one column block (its panels for one k
	// block); A is packed again for each column block. Each W micro-panel
	// is reused from L1 by the mcMax rows of a packed block, so W itself
	// streams from L2 or L3 without slowing the kernel, and a split only
	// helps very wide layers.
	ncBytes = 512 << 10
)

// Packed is W [n, k] packed into column panels for C = A·Wᵀ.
//
// Panel q holds rows 16q … 16q+15 of W (columns of C), k-major: for each
// p in [0, K) the 16 values W[16q+l, p], l = 0…15, are contiguous, so the
// micro-kernel reads one k step of a panel as two 8-float vectors. The
// last panel is padded with zero rows when N is not a multiple of 16.
// A Packed is read-only after Pack: any number of goroutines may call Mul
// on it at once, each with its own Buf.
type Packed struct {
	N, K int

	panels int       // ceil(N/16)
	w32    []float32 // fp32 panels (Pack), panels*K*16 values
	w16    []uint16  // bf16 panels (PackBF16), same layout but paired within a k step (bf16Slot)
}

// Pack copies the row-major weight matrix w [n, k] into fp32 panels. It
// panics if n or k is negative or len(w) < n*k.
func Pack(w []float32, n, k int) *Packed {
	p := newPacked(w, n, k, "Pack")
	p.w32 = make([]float32, p.panels*k*nr)
	for j := 0; j < n && k > 0; j++ {
		q, l := j/nr, j%nr
		dst := p.w32[q*k*nr+l:]
		row := w[j*k : j*k+k]
		for i, v := range row {
			dst[i*nr] = v
		}
	}
	return p
}

// PackBF16 is Pack with the panels stored in bfloat16, each weight rounded
// to nearest even by bf16.FromFloat32: half the memory, and the kernel
// widens the values to float32 (exactly) before multiplying. The result
// equals Pack applied to the bf16-rounded weights.
func PackBF16(w []float32, n, k int) *Packed {
	p := newPacked(w, n, k, "PackBF16")
	p.w16 = make([]uint16, p.panels*k*nr)
	for j := 0; j < n && k > 0; j++ {
		q, l := j/nr, j%nr
		dst := p.w16[q*k*nr+bf16Slot(l):]
		row := w[j*k : j*k+k]
		for i, v := range row {
			dst[i*nr] = bf16.FromFloat32(v)
		}
	}
	return p
}

// bf16Slot is where column l of a panel sits among the 16 bfloat16 values
// of a k step: pairs (l, l+8) share a 32-bit lane, l in the low half, so
// that the kernel widens 8 columns with one shift and 8 with one mask.
func bf16Slot(l int) int {
	if l < nr/2 {
		return 2 * l
	}
	return 2*(l-nr/2) + 1
}

func newPacked(w []float32, n, k int, fn string) *Packed {
	if n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm.%s: negative shape n=%d k=%d", fn, n, k))
	}
	if len(w) < n*k {
		panic(fmt.Sprintf("gemm.%s: len(w)=%d < n*k=%d*%d", fn, len(w), n, k))
	}
	return &Packed{N: n, K: k, panels: (n + nr - 1) / nr}
}

// Bytes returns the memory held by the packed panels.
func (p *Packed) Bytes() int {
	return 4*len(p.w32) + 2*len(p.w16)
}

// BF16 reports whether the panels are stored in bfloat16.
func (p *Packed) BF16() bool { return p.w16 != nil }

// Buf is one goroutine's scratch for Mul: the packed block of A, an edge
// tile of C and the padded bias. The zero value is ready; it grows to the
// largest call and is reused, so steady-state calls allocate nothing. A Buf
// must not be used by two calls at once.
type Buf struct {
	a     []float32 // block of A, mcMax rows of stride ldPack(kc)
	cEdge [mr * nr]float32
	bias  []float32 // bias padded with zeros to a whole number of panels
}

// kBlock returns the length of the k blocks K is cut into: ceil(K/kcMax)
// blocks of equal length rounded up to a multiple of 4 (the last one
// shorter). It depends on K only.
func kBlock(k int) int {
	if k <= kcMax {
		return max(k, 1)
	}
	nb := (k + kcMax - 1) / kcMax
	kc := (k + nb - 1) / nb
	return (kc + 3) &^ 3
}

// ncPanels returns how many 16-column panels one block of W holds for k
// blocks of length kc and elements of size elem bytes.
func ncPanels(kc, elem int) int {
	return max(1, ncBytes/(kc*nr*elem))
}

// ldPack returns the row stride, in floats, of packed A for k blocks of
// length kc: kc rounded up to whole 32-byte lines, plus one line, and
// never a multiple of 1 KiB. Rows a multiple of 1 KiB apart put the six broadcasts of a k
// step on the same L1 banks and cost the kernel about 15% (larger strides,
// as A's own lda can be, cost up to 60%); that is why A is packed.
func ldPack(kc int) int {
	ld := (kc+7)&^7 + 8
	if ld%256 == 0 {
		ld += 8
	}
	return ld
}

// Micro-kernel flags.
const (
	flagLoadC = 1 << iota // continue the accumulators from C (k block after the first)
	flagBias              // add bias after the last k block
	flagReLU              // then max(·, 0)
)

// Mul sets c[i*ldc+j] = Σ_k a[i*lda+k]·W[j,k] (+ bias[j] when bias is not
// nil), then max(·, 0) when relu, for i < m and j < N. Other elements of c
// are left untouched. c must not overlap a.
//
// Every output is one fused multiply-add chain over k in increasing order,
// starting from zero, then the bias addition, then the ReLU; the chain does
// not depend on m or on the row's position, so a row's result is
// bit-identical whatever batch it is computed in. A NaN in a row of A
// gives NaN in that row's outputs (ReLU keeps NaNs).
//
// Mul panics on programming errors only: a nil buf, m < 0, lda < K,
// ldc < N, len(a) < (m-1)*lda+K, len(c) < (m-1)*ldc+N or len(bias) < N
// (the length checks apply when m > 0).
func (p *Packed) Mul(c []float32, ldc int, a []float32, lda int, m int, bias []float32, relu bool, buf *Buf) {
	p.check(c, ldc, a, lda, m, bias, buf)
	if m == 0 || p.N == 0 {
		return
	}
	if p.K == 0 {
		mulEmpty(c, ldc, m, p.N, bias, relu)
		return
	}
	n, k := p.N, p.K
	kc := kBlock(k)
	elem := 4
	if p.w16 != nil {
		elem = 2
	}
	nc := ncPanels(kc, elem)
	ldp := ldPack(kc)

	// Scratch.
	mc := min(mcMax, (m+mr-1)/mr*mr)
	if cap(buf.a) < mc*ldp {
		buf.a = make([]float32, mcMax*ldp)
	}
	var biasPad []float32
	if bias != nil {
		np := p.panels * nr
		if cap(buf.bias) < np {
			buf.bias = make([]float32, np)
		}
		biasPad = buf.bias[:np]
		copy(biasPad, bias[:n])
		clear(biasPad[n:])
	}

	var tail int // flags of the last k block
	if bias != nil {
		tail |= flagBias
	}
	if relu {
		tail |= flagReLU
	}
	x := tiler{p: p, c: c, ldc: ldc, biasPad: biasPad, cEdge: buf.cEdge[:], asm: useAsm}
	for jc := 0; jc < p.panels; jc += nc {
		jcEnd := min(jc+nc, p.panels)
		for pc := 0; pc < k; pc += kc {
			kl := min(kc, k-pc)
			x.pc, x.kl = pc, kl
			x.flags = 0
			if pc > 0 {
				x.flags |= flagLoadC
			}
			if pc+kl == k {
				x.flags |= tail
			}
			for ic := 0; ic < m; ic += mc {
				rows := min(mc, m-ic)
				tiles := (rows + mr - 1) / mr
				// Pack the block: row r of A's k block at ap[r*ldp:],
				// rows past m zero, so that edge rows go through the
				// same kernel.
				ap := buf.a[:tiles*mr*ldp]
				for r := 0; r < tiles*mr; r++ {
					dst := ap[r*ldp : r*ldp+kl]
					if r < rows {
						copy(dst, a[(ic+r)*lda+pc:])
					} else {
						clear(dst)
					}
				}
				for q := jc; q < jcEnd; q++ {
					for t := 0; t < tiles; t++ {
						x.tile(ap[t*mr*ldp:], ldp, ic+t*mr, min(mr, rows-t*mr), q)
					}
				}
			}
		}
	}
}

// tiler runs the micro-kernel on the tiles of one k block.
type tiler struct {
	p       *Packed
	c       []float32
	ldc     int
	biasPad []float32
	cEdge   []float32
	asm     bool
	pc, kl  int // the k block
	flags   int
}

// tile computes rows [i0, i0+rows) of panel q for the current k block from
// the 6 rows of packed A at (at, alda).
func (x *tiler) tile(at []float32, alda int, i0, rows, q int) {
	p := x.p
	n, k, ldc := p.N, p.K, x.ldc
	j0 := q * nr
	cols := min(nr, n-j0)
	ct, cld := x.c[i0*ldc+j0:], ldc
	edge := rows < mr || cols < nr
	if edge {
		// Edge tile of C: the kernel works on a full 6×16 copy; only the
		// valid part goes back.
		ct, cld = x.cEdge, nr
		if x.flags&flagLoadC != 0 {
			for r := 0; r < rows; r++ {
				copy(ct[r*nr:r*nr+cols], x.c[(i0+r)*ldc+j0:])
			}
		}
	}
	var bt []float32
	if x.biasPad != nil {
		bt = x.biasPad[j0 : j0+nr]
	}
	woff := (q*k + x.pc) * nr
	switch {
	case p.w16 != nil && x.asm:
		kernBF16(x.kl, &at[0], alda, &p.w16[woff], &ct[0], cld, biasPtr(bt), x.flags)
	case p.w16 != nil:
		kernGoBF16(x.kl, at, alda, p.w16[woff:], ct, cld, bt, x.flags)
	case x.asm:
		kernF32(x.kl, &at[0], alda, &p.w32[woff], &ct[0], cld, biasPtr(bt), x.flags)
	default:
		kernGoF32(x.kl, at, alda, p.w32[woff:], ct, cld, bt, x.flags)
	}
	if edge {
		for r := 0; r < rows; r++ {
			copy(x.c[(i0+r)*ldc+j0:(i0+r)*ldc+j0+cols], ct[r*nr:])
		}
	}
}

func biasPtr(b []float32) *float32 {
	if b == nil {
		return nil
	}
	return &b[0]
}

// mulEmpty is Mul for K = 0: the empty sum is 0, then bias and ReLU as in
// the kernels.
func mulEmpty(c []float32, ldc, m, n int, bias []float32, relu bool) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			var v float32
			if bias != nil {
				v += bias[j]
			}
			if relu && 0 > v {
				v = 0
			}
			row[j] = v
		}
	}
}

func (p *Packed) check(c []float32, ldc int, a []float32, lda int, m int, bias []float32, buf *Buf) {
	switch {
	case p == nil:
		panic("gemm.Mul: nil *Packed")
	case buf == nil:
		panic("gemm.Mul: nil *Buf")
	case m < 0:
		panic(fmt.Sprintf("gemm.Mul: m=%d < 0", m))
	case lda < p.K:
		panic(fmt.Sprintf("gemm.Mul: lda=%d < K=%d", lda, p.K))
	case ldc < p.N:
		panic(fmt.Sprintf("gemm.Mul: ldc=%d < N=%d", ldc, p.N))
	case bias != nil && len(bias) < p.N:
		panic(fmt.Sprintf("gemm.Mul: len(bias)=%d < N=%d", len(bias), p.N))
	}
	if m == 0 {
		return
	}
	if need := (m-1)*lda + p.K; len(a) < need {
		panic(fmt.Sprintf("gemm.Mul: len(a)=%d < (m-1)*lda+K=%d (m=%d lda=%d K=%d)", len(a), need, m, lda, p.K))
	}
	if need := (m-1)*ldc + p.N; len(c) < need {
		panic(fmt.Sprintf("gemm.Mul: len(c)=%d < (m-1)*ldc+N=%d (m=%d ldc=%d N=%d)", len(c), need, m, ldc, p.N))
	}
}

// MulRef is the pure-Go reference twin of Mul for the row-major weights
// w [n, k]: the same result computed straightforwardly, one output at a
// time, with an exact float32 fused multiply-add. It is bit-identical to
// Mul on Pack(w, n, k), and to Mul on PackBF16(w, n, k) when w holds
// bf16-rounded values. It panics on the same programming errors as Mul.
func MulRef(c []float32, ldc int, a []float32, lda int, m int, w []float32, n, k int, bias []float32, relu bool) {
	if len(w) < n*k || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm.MulRef: len(w)=%d, n=%d, k=%d", len(w), n, k))
	}
	(&Packed{N: n, K: k}).check(c, ldc, a, lda, m, bias, &Buf{})
	for i := 0; i < m; i++ {
		ar := a[i*lda : i*lda+k]
		for j := 0; j < n; j++ {
			wr := w[j*k : j*k+k]
			var acc float32
			for p, av := range ar {
				acc = fma32(av, wr[p], acc)
			}
			if bias != nil {
				acc += bias[j]
			}
			if relu && 0 > acc {
				acc = 0
			}
			c[i*ldc+j] = acc
		}
	}
}
