package kernels

import (
	"cmp"
	"math"
	"slices"

	"github.com/tandemml/tandem/bf16"
)

// The Go references of the kernels, over Go slices with the same strides
// and conventions as the parameter structs.

// RefEmbedGather is the reference of EmbedGather.
func RefEmbedGather(dst []float32, codes []int32, table []float32, base []int32, rows, fields, e, ldd, ldc int) {
	for r := range rows {
		for f := range fields {
			row := int(base[f]) + int(codes[r*ldc+f])
			copy(dst[r*ldd+f*e:r*ldd+f*e+e], table[row*e:row*e+e])
		}
	}
}

// RefCopyCols is the reference of CopyCols.
func RefCopyCols(dst, src []float32, rows, cols, ldd, lds int, relu bool) {
	for r := range rows {
		for c := range cols {
			v := src[r*lds+c]
			if relu && v < 0 || relu && v == 0 {
				v = 0
			}
			dst[r*ldd+c] = v
		}
	}
}

// RefBNApply is the reference of BNApply: per element in float64,
// v = min(max(x, mu−c·sd), mu+c·sd), z = min(max((v−mu)/sd, −c), c), a NaN
// z gives 0, and Dst = float32(z)·Weight[j] + Bias[j].
func RefBNApply(dst, raw []float32, mean, sd []float64, weight, bias []float32, rows, n, ldd, ldr int, clamp float64) {
	for r := range rows {
		for j := range n {
			x := float64(raw[r*ldr+j])
			mu, s := mean[j], sd[j]
			// Written as the engine's bn.apply, with the products
			// converted so that no compiler fuses them.
			v := min(max(x, mu-float64(clamp*s)), mu+float64(clamp*s))
			z := min(max((v-mu)/s, -clamp), clamp)
			if math.IsNaN(z) {
				z = 0
			}
			dst[r*ldd+j] = float32(float32(z)*weight[j]) + bias[j]
		}
	}
}

// RefSeqTokens is the reference of SeqTokens: dst has rows of width
// contentDim+actDim+surfDim+ageDim.
func RefSeqTokens(dst, content []float32, oov, action, surface, age []int32, oovRow, actT, surfT, ageT []float32,
	rows, contentDim, actDim, surfDim, ageDim int) {
	w := contentDim + actDim + surfDim + ageDim
	for r := range rows {
		d := dst[r*w : r*w+w]
		if oov[r] != 0 {
			copy(d[:contentDim], oovRow[:contentDim])
		} else {
			copy(d[:contentDim], content[r*contentDim:r*contentDim+contentDim])
		}
		d = d[contentDim:]
		copy(d[:actDim], actT[int(action[r])*actDim:])
		d = d[actDim:]
		copy(d[:surfDim], surfT[int(surface[r])*surfDim:])
		d = d[surfDim:]
		copy(d[:ageDim], ageT[int(age[r])*ageDim:])
	}
}

// RefAddPos is the reference of AddPos.
func RefAddPos(x, pos []float32, rows, l, d int) {
	for r := range rows {
		for k := range d {
			x[r*d+k] += pos[(r%l)*d+k]
		}
	}
}

// softmax is the kernels' row softmax, the pure-Go math of kernel.Softmax:
// a NaN makes the row NaN, an infinite maximum is shared among its copies,
// otherwise exp32(x − max) summed in float64 and scaled by 1/sum.
func softmax(x []float32) {
	m := x[0]
	nan := false
	for _, v := range x {
		if v > m {
			m = v
		} else if v != v {
			nan = true
		}
	}
	if nan {
		for i := range x {
			x[i] = float32(math.NaN())
		}
		return
	}
	if math.IsInf(float64(m), 0) {
		c := 0
		for _, v := range x {
			if v == m {
				c++
			}
		}
		w := float32(1 / float64(c))
		for i, v := range x {
			if v == m {
				x[i] = w
			} else {
				x[i] = 0
			}
		}
		return
	}
	var sum float64
	for i, v := range x {
		e := exp32(float64(v) - float64(m))
		x[i] = e
		sum += float64(e)
	}
	inv := 1 / sum
	for i, v := range x {
		x[i] = float32(float64(v) * inv)
	}
}

// exp32 is kernel.Exp32 for a float64 argument (the kernels' tdm_exp32):
// x = n·ln 2 + r reduced in float64, e^r from a float32 polynomial, scaled
// by 2^n. The conversions keep every product rounded on its own.
func exp32(x float64) float32 {
	switch {
	case x != x:
		return float32(x)
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -103.972:
		return 0
	}
	n := math.Floor(float64(x*math.Log2E) + 0.5)
	r := float32(x - float64(n*math.Ln2))
	p := float32(1.9875691500e-4*r) + 1.3981999507e-3
	p = float32(p*r) + 8.3334519073e-3
	p = float32(p*r) + 4.1665795894e-2
	p = float32(p*r) + 1.6666665459e-1
	p = float32(p*r) + 5.0000001201e-1
	p = float32(float32(p*r)*r) + r + 1
	k := int32(n)
	switch {
	case k > 127:
		return float32(p*0x1p127) * math.Float32frombits(uint32(k)<<23)
	case k < -126:
		return float32(p*math.Float32frombits(uint32(k+127+64)<<23)) * 0x1p-64
	}
	return p * math.Float32frombits(uint32(k+127)<<23)
}

// RefMaskedSoftmax is the reference of MaskedSoftmax: row r of length l
// belongs to batch item (r/l)%b with n = lens[b] valid columns; rows r%l ≥ n
// are zeros, others the softmax of their first n columns then zeros.
func RefMaskedSoftmax(s []float32, lens []int32, rows, l, b int) {
	for r := range rows {
		n := min(int(lens[(r/l)%b]), l)
		if r%l >= n {
			n = 0
		}
		row := s[r*l : r*l+l]
		if n > 0 {
			softmax(row[:n])
		}
		clear(row[max(n, 0):])
	}
}

// RefAddLayerNorm is the reference of AddLayerNorm.
func RefAddLayerNorm(y, x, g, bias []float32, rows, d int, eps float32) {
	for r := range rows {
		row := y[r*d : r*d+d]
		var s float64
		for j := range row {
			row[j] += x[r*d+j]
			s += float64(row[j])
		}
		fd := float64(d)
		mean := s / fd
		var ss float64
		for _, v := range row {
			c := float64(v) - mean
			ss += float64(c * c)
		}
		rstd := 0.0
		if v := ss/fd + float64(eps); v != 0 {
			rstd = 1 / math.Sqrt(v)
		}
		for j, v := range row {
			t := float64(float64((float64(v)-mean)*rstd) * float64(g[j]))
			row[j] = float32(t + float64(bias[j]))
		}
	}
}

// RefSeqSummary is the reference of SeqSummary.
func RefSeqSummary(s, pooled, x []float32, lens []int32, b, l, d, short, lds int) {
	for bi := range b {
		n := max(min(int(lens[bi]), l), 0)
		for k := range d {
			for j := range short {
				v := float32(0)
				if j < n {
					v = x[(bi*l+j)*d+k]
				}
				s[bi*lds+j*d+k] = v
			}
			m := float32(0)
			if n > 0 {
				m = x[bi*l*d+k]
			}
			for j := 1; j < n; j++ {
				m = max(m, x[(bi*l+j)*d+k])
			}
			pooled[bi*d+k] = m
		}
	}
}

// RefCrossCombine is the reference of CrossCombine.
func RefCrossCombine(h, x0, x []float32, rows, d, ldh, ld0, ldx int) {
	for r := range rows {
		for k := range d {
			p := float32(x0[r*ld0+k] * h[r*ldh+k])
			h[r*ldh+k] = p + x[r*ldx+k]
		}
	}
}

// RefMMoECombine is the reference of MMoECombine.
func RefMMoECombine(h, logits, experts []float32, rows, ne, w, ldh, lde, es int) {
	a := make([]float32, ne)
	for r := range rows {
		copy(a, logits[r*ne:r*ne+ne])
		softmax(a)
		for c := range w {
			var s float32
			for i := range ne {
				p := float32(a[i] * experts[i*es+r*lde+c])
				s += p
			}
			h[r*ldh+c] = s
		}
	}
}

// RefToBF16 is the reference of ToBF16.
func RefToBF16(dst []uint16, src []float32, rows, cols, ldd, lds int) {
	for r := range rows {
		for c := range cols {
			dst[r*ldd+c] = bf16.FromFloat32(src[r*lds+c])
		}
	}
}

// RefRowDot is the reference of RowDot.
func RefRowDot(out, u, ads []float32, ids, ctx []int32, n, d, ldu, lda int, beta float32) {
	for i := range n {
		uu := u[int(ctx[i])*ldu:]
		aa := ads[int(ids[i])*lda:]
		var s float32
		for k := range d {
			p := float32(uu[k] * aa[k])
			s += p
		}
		out[i] = s + beta
	}
}

// RefEligible is the reference of Eligible.
func RefEligible(mask []uint32, active, surfaces, product []uint8, bid []float32, surfaceBit []uint32, products []uint64,
	minBid []float32, queries, n, ldm int) {
	for q := range queries {
		for w := range ldm {
			var m uint32
			for j := range 32 {
				id := w*32 + j
				if id >= n {
					break
				}
				if active[id] != 0 && uint32(surfaces[id])&surfaceBit[q] != 0 &&
					products[q]>>product[id]&1 != 0 && bid[id] >= minBid[q] {
					m |= 1 << j
				}
			}
			mask[q*ldm+w] = m
		}
	}
}

// RefTopK is the reference of one TopK launch: for each query and chunk, the
// best k candidates by value descending then id ascending (ids from idx, or
// positions when idx is nil), skipping negative ids, NaN values and ids
// whose bit in mask (when not nil) is 0, into outVal/outIdx[q·ldo+c·k+j],
// unfilled slots (−Inf, −1).
func RefTopK(outVal []float32, outIdx []int32, val []float32, idx []int32, mask []uint32,
	queries, n, ldv, ldm, chunk, k, ldo int) {
	type cand struct {
		v  float32
		id int32
	}
	nc := chunks(n, chunk)
	for q := range queries {
		for c := range nc {
			var cs []cand
			for p := c * chunk; p < min(n, (c+1)*chunk); p++ {
				v := val[q*ldv+p]
				id := int32(p)
				if idx != nil {
					id = idx[q*ldv+p]
				}
				if id < 0 || v != v {
					continue
				}
				if mask != nil && mask[q*ldm+int(id>>5)]>>(id&31)&1 == 0 {
					continue
				}
				cs = append(cs, cand{v, id})
			}
			slices.SortFunc(cs, func(a, b cand) int {
				if a.v != b.v {
					return -cmp.Compare(a.v, b.v)
				}
				return cmp.Compare(a.id, b.id)
			})
			for j := range k {
				o := q*ldo + c*k + j
				if j < len(cs) {
					outVal[o], outIdx[o] = cs[j].v, cs[j].id
				} else {
					outVal[o], outIdx[o] = float32(math.Inf(-1)), -1
				}
			}
		}
	}
}
