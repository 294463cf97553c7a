package kernel

import (
	"fmt"
	"math"
)

// Softmax replaces x by softmax(x): x[i] = exp(x[i]−m) / Σ_j exp(x[j]−m),
// where m is the row's maximum. Each difference x[i]−m is formed exactly
// and reduced to x[i]−m = n·ln 2 + r with r rounded to float32 once, so it
// keeps its accuracy however far the entry lies below the maximum; e^r
// comes from the float32 polynomial of [Exp32]; the exponentials are
// summed in float64, and each is scaled by 1/sum in float64 and rounded
// to float32. Large values cannot overflow, and an entry far below the
// maximum (−1e9 in a masked attention row, or −Inf) gets exactly +0. The
// maximum's own weight is exp(0) = 1 before normalisation. The results
// are tested to lie within 3·2⁻²⁴ of the exact softmax, relative to it
// (within 1e-44 for weights in the subnormal range).
//
// On amd64 with AVX2 and FMA the row runs eight entries at a time in
// assembly, to the same accuracy but not always to the same bits as the
// pure-Go code (see the package documentation). A row's last entries,
// those that do not fill a block of eight, go through the same
// instructions as the others, so the result depends only on the row's
// values and width, never on its address.
//
// Special rows:
//   - an empty row is left as it is;
//   - a NaN anywhere makes every entry NaN;
//   - when the maximum is infinite (some entry is +Inf, or every entry is
//     −Inf) the entries equal to it share the weight equally and the others
//     get 0, the limit of rows whose entries all grow the same way.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	softmax(x)
}

// softmaxGo is the pure-Go Softmax of a non-empty row, special rows
// included. The assembly path hands it the rows it does not take.
func softmaxGo(x []float32) {
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
		q := float32(math.NaN())
		for i := range x {
			x[i] = q
		}
		return
	}
	if math.IsInf(float64(m), 0) {
		n := 0
		for _, v := range x {
			if v == m {
				n++
			}
		}
		w := float32(1 / float64(n))
		for i, v := range x {
			if v == m {
				x[i] = w
			} else {
				x[i] = 0
			}
		}
		return
	}
	mm := float64(m)
	var sum float64
	for i, v := range x {
		e := exp32(float64(v) - mm)
		x[i] = e
		sum += float64(e)
	}
	inv := 1 / sum // sum ≥ 1: the maximum contributes exp(0)
	for i, v := range x {
		x[i] = float32(float64(v) * inv)
	}
}

// Exp32 is e^x in float32 within 2 ulp (relative error ≤ 2.4e-7 on
// [−87, 88]; tested against math.Exp), at a fraction of the cost of
// float64 math.Exp. Results below the normal range are subnormals, below
// −103.97 it returns 0 (so a −1e9 attention mask
// weighs exactly 0), above 88.72 +Inf; NaN gives NaN.
func Exp32(x float32) float32 { return exp32(float64(x)) }

// exp32 is e^x rounded to float32: x = n·ln 2 + r with |r| ≤ ln2/2 reduced
// in float64 (so an argument that is itself a difference keeps its
// accuracy), e^r from a degree-6 polynomial in float32, then scaled by 2^n.
func exp32(x float64) float32 {
	switch {
	case x != x:
		return float32(x)
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -103.972: // below half the smallest subnormal
		return 0
	}
	n := math.Floor(x*math.Log2E + 0.5)
	r := float32(x - n*math.Ln2)
	p := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	p = p*r*r + r + 1
	k := int32(n)
	switch {
	case k > 127: // near overflow: 2^k in two steps
		return p * 0x1p127 * math.Float32frombits(uint32(k-127+127)<<23)
	case k < -126: // subnormal result
		return p * math.Float32frombits(uint32(k+127+64)<<23) * 0x1p-64
	}
	return p * math.Float32frombits(uint32(k+127)<<23)
}

// LayerNorm normalises each row of x (len(x)/d rows of width d) into dst:
//
//	dst = (x − mean) / sqrt(var + eps) · gain + bias
//
// with mean and biased variance (divided by d) over the row. Everything is
// computed in float64, the mean and the variance in two passes, and each
// output is rounded to float32 once; the result is within one float32
// rounding of the exact value.
//
// gain and bias have length d; a nil gain means all ones and a nil bias
// all zeros. dst and x have the same length, a multiple of d; dst may be x
// itself (but may not overlap it otherwise). When var + eps is 0 (a
// constant row with eps = 0) the normalised row is taken as 0, so a
// constant row always gives bias. A NaN or an infinity in a row makes that
// row's outputs NaN. LayerNorm panics on inconsistent lengths or d ≤ 0.
func LayerNorm(dst, x []float32, d int, gain, bias []float32, eps float32) {
	if d <= 0 || len(x)%d != 0 || len(dst) != len(x) ||
		(gain != nil && len(gain) != d) || (bias != nil && len(bias) != d) {
		panic(fmt.Sprintf("kernel.LayerNorm: len(dst)=%d len(x)=%d d=%d len(gain)=%d len(bias)=%d",
			len(dst), len(x), d, len(gain), len(bias)))
	}
	e := float64(eps)
	fd := float64(d)
	for r := 0; r+d <= len(x); r += d {
		row := x[r : r+d : r+d]
		out := dst[r : r+d : r+d]
		out = out[:len(row)]
		var s float64
		for _, v := range row {
			s += float64(v)
		}
		mean := s / fd
		var ss float64
		for _, v := range row {
			c := float64(v) - mean
			ss += c * c
		}
		rstd := 0.0
		if v := ss/fd + e; v != 0 {
			rstd = 1 / math.Sqrt(v)
		}
		switch {
		case gain != nil && bias != nil:
			g, b := gain[:len(row)], bias[:len(row)]
			for j, v := range row {
				out[j] = float32((float64(v)-mean)*rstd*float64(g[j]) + float64(b[j]))
			}
		case gain != nil:
			g := gain[:len(row)]
			for j, v := range row {
				out[j] = float32((float64(v) - mean) * rstd * float64(g[j]))
			}
		case bias != nil:
			b := bias[:len(row)]
			for j, v := range row {
				out[j] = float32((float64(v)-mean)*rstd + float64(b[j]))
			}
		default:
			for j, v := range row {
				out[j] = float32((float64(v) - mean) * rstd)
			}
		}
	}
}

// Cross is the combine step of a DCNv2 cross layer:
//
//	dst[i] = x0[i]·h[i] + x[i]
//
// where h is the layer's projection W·x + b. The product is rounded to
// float32 before the add (never fused), as a separate multiply and add
// would. All four slices have the same length; dst may be any of the
// inputs itself. Cross panics on unequal lengths.
func Cross(dst, x0, h, x []float32) {
	n := len(dst)
	if len(x0) != n || len(h) != n || len(x) != n {
		panic(fmt.Sprintf("kernel.Cross: lengths dst=%d x0=%d h=%d x=%d", n, len(x0), len(h), len(x)))
	}
	x0, h, x = x0[:n], h[:n], x[:n]
	for i := range dst {
		dst[i] = float32(x0[i]*h[i]) + x[i]
	}
}

// Add adds x into dst: dst[i] += x[i]. The slices have the same length;
// Add panics otherwise.
func Add(dst, x []float32) {
	if len(x) != len(dst) {
		panic(fmt.Sprintf("kernel.Add: lengths dst=%d x=%d", len(dst), len(x)))
	}
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += x[i]
	}
}

// Scale multiplies x by a in place: x[i] *= a.
func Scale(x []float32, a float32) {
	for i := range x {
		x[i] *= a
	}
}

// ReLU replaces x by max(x, 0) in place: values ≤ 0 (−0 included) become
// +0, and a NaN stays NaN.
func ReLU(x []float32) {
	for i, v := range x {
		if v <= 0 {
			x[i] = 0
		}
	}
}

// Gather copies rows of table, a matrix of len(table)/d rows of width d,
// into dst: row codes[i] goes to dst[i*ldd : i*ldd+d]. The cells of dst
// between rows (columns d to ldd) are not touched.
//
// Every code is checked before anything is written. If codes[i] is outside
// [0, rows), Gather writes nothing and returns (i, false) for the first such
// i; otherwise it returns (-1, true). It panics only on inconsistent shapes:
// d ≤ 0, ldd < d, len(table) not a multiple of d, or dst too short for
// len(codes) rows.
func Gather(dst []float32, ldd int, table []float32, d int, codes []int32) (bad int, ok bool) {
	if d <= 0 || ldd < d || len(table)%d != 0 ||
		(len(codes) > 0 && len(dst) < (len(codes)-1)*ldd+d) {
		panic(fmt.Sprintf("kernel.Gather: len(dst)=%d ldd=%d len(table)=%d d=%d len(codes)=%d",
			len(dst), ldd, len(table), d, len(codes)))
	}
	rows := len(table) / d
	for i, c := range codes {
		if c < 0 || int(c) >= rows {
			return i, false
		}
	}
	for i, c := range codes {
		o, s := i*ldd, int(c)*d
		copy(dst[o:o+d:o+d], table[s:s+d:s+d])
	}
	return -1, true
}
