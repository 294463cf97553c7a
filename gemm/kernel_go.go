package gemm

import (
	"math"

	"github.com/tandemml/tandem/bf16"
)

// fma32 returns a·b + c rounded once to float32, as the hardware's
// single-precision fused multiply-add (VFMADD231PS) does.
//
// The product of two float32 values is exact in float64 (24+24 bits < 53),
// so s = p + c has a single rounding, to float64. Rounding s once more to
// float32 is wrong only when s landed exactly on a float32 rounding
// boundary (a midpoint between two float32 values) while the exact sum was
// not on it: the exact sum is then on one side of the boundary and the
// tie-breaking rule may pick the other. Boundaries of normal and subnormal
// float32 values and the overflow threshold all have their low 28 float64
// mantissa bits zero, so only then is the exact error e = (p + c) − s
// computed (TwoSum). When e ≠ 0, s is moved one float64 step towards the
// exact value, which makes it odd and off every float32 boundary while
// keeping it on the exact sum's side (rounding to odd, which is exact for a
// second rounding to at most 51 bits). No float32 operation here may be
// fused: the only product is computed in float64 and is exact.
func fma32(a, b, c float32) float32 {
	// Written out again in the Go kernels' inner loops.
	s := float64(a)*float64(b) + float64(c)
	if math.Float64bits(s)&boundary == 0 {
		s = roundOdd(a, b, c, s)
	}
	return float32(s)
}

// boundary masks the float64 mantissa bits that are zero in every float32
// rounding boundary.
const boundary = 1<<28 - 1

// roundOdd returns s = fl64(a·b + c) rounded to odd instead of to nearest.
// Rounding that to float32 is then exact whatever s was; fma32 calls it
// only when s is on a float32 boundary. It is kept out of line: the
// kernels' loops are faster without it.
//
//go:noinline
func roundOdd(a, b, c float32, s float64) float64 {
	u := math.Float64bits(s)
	if u&0x7ff0_0000_0000_0000 == 0x7ff0_0000_0000_0000 {
		return s // infinity or NaN: nothing to fix
	}
	p, cc := float64(a)*float64(b), float64(c) // p is exact
	bb := s - p
	e := (p - (s - bb)) + (cc - bb)
	if e == 0 {
		return s
	}
	if (e > 0) == (s > 0) {
		u++ // away from zero
	} else {
		u--
	}
	return math.Float64frombits(u)
}

// kernGoF32 is the pure-Go micro-kernel, the twin of kernF32: the 6×16
// tile c[r*ldc+l] gets, for each r < 6 and l < 16, the FMA chain
// acc = fma(a[r*lda+p], w[p*16+l], acc) over p < k in increasing order,
// starting from c's value when flags has flagLoadC and from 0 otherwise,
// then + bias[l] (flagBias) and max(·, 0) (flagReLU).
func kernGoF32(k int, a []float32, lda int, w []float32, c []float32, ldc int, bias []float32, flags int) {
	w = w[:k*nr]
	for r := 0; r < mr; r++ {
		ar := a[r*lda : r*lda+k]
		cr := c[r*ldc : r*ldc+nr]
		for l := 0; l < nr; l += 4 {
			var c0, c1, c2, c3 float32
			if flags&flagLoadC != 0 {
				c0, c1, c2, c3 = cr[l], cr[l+1], cr[l+2], cr[l+3]
			}
			for p, av := range ar {
				wp := w[p*nr+l : p*nr+l+4]
				w0, w1, w2, w3 := wp[0], wp[1], wp[2], wp[3]
				// fma32 by hand (a call each would be 3× slower): the
				// float64 sum is exact but for one rounding, which
				// roundOdd repairs in the rare case it matters.
				a64 := float64(av)
				s0 := a64*float64(w0) + float64(c0)
				s1 := a64*float64(w1) + float64(c1)
				s2 := a64*float64(w2) + float64(c2)
				s3 := a64*float64(w3) + float64(c3)
				if math.Float64bits(s0)&boundary == 0 || math.Float64bits(s1)&boundary == 0 ||
					math.Float64bits(s2)&boundary == 0 || math.Float64bits(s3)&boundary == 0 {
					s0 = roundOdd(av, w0, c0, s0)
					s1 = roundOdd(av, w1, c1, s1)
					s2 = roundOdd(av, w2, c2, s2)
					s3 = roundOdd(av, w3, c3, s3)
				}
				c0, c1, c2, c3 = float32(s0), float32(s1), float32(s2), float32(s3)
			}
			cr[l], cr[l+1], cr[l+2], cr[l+3] = c0, c1, c2, c3
		}
		epilogue(cr, bias, flags)
	}
}

// kernGoBF16 is kernGoF32 with bfloat16 panels, the twin of kernBF16.
func kernGoBF16(k int, a []float32, lda int, w []uint16, c []float32, ldc int, bias []float32, flags int) {
	w = w[:k*nr]
	for r := 0; r < mr; r++ {
		ar := a[r*lda : r*lda+k]
		cr := c[r*ldc : r*ldc+nr]
		for l := 0; l < nr; l += 4 {
			var c0, c1, c2, c3 float32
			if flags&flagLoadC != 0 {
				c0, c1, c2, c3 = cr[l], cr[l+1], cr[l+2], cr[l+3]
			}
			i0, i1, i2, i3 := bf16Slot(l), bf16Slot(l+1), bf16Slot(l+2), bf16Slot(l+3)
			for p, av := range ar {
				wp := w[p*nr : p*nr+nr]
				w0, w1, w2, w3 := bf16.ToFloat32(wp[i0]), bf16.ToFloat32(wp[i1]), bf16.ToFloat32(wp[i2]), bf16.ToFloat32(wp[i3])
				a64 := float64(av) // fma32 by hand, as in kernGoF32
				s0 := a64*float64(w0) + float64(c0)
				s1 := a64*float64(w1) + float64(c1)
				s2 := a64*float64(w2) + float64(c2)
				s3 := a64*float64(w3) + float64(c3)
				if math.Float64bits(s0)&boundary == 0 || math.Float64bits(s1)&boundary == 0 ||
					math.Float64bits(s2)&boundary == 0 || math.Float64bits(s3)&boundary == 0 {
					s0 = roundOdd(av, w0, c0, s0)
					s1 = roundOdd(av, w1, c1, s1)
					s2 = roundOdd(av, w2, c2, s2)
					s3 = roundOdd(av, w3, c3, s3)
				}
				c0, c1, c2, c3 = float32(s0), float32(s1), float32(s2), float32(s3)
			}
			cr[l], cr[l+1], cr[l+2], cr[l+3] = c0, c1, c2, c3
		}
		epilogue(cr, bias, flags)
	}
}

// epilogue applies the bias and the ReLU to one row of a tile, as the
// assembly does: acc + bias (one rounding), then 0 when 0 > acc, so that a
// NaN and a −0 pass through.
func epilogue(cr []float32, bias []float32, flags int) {
	if flags&flagBias != 0 {
		bias = bias[:nr]
		for l := range cr {
			cr[l] += bias[l]
		}
	}
	if flags&flagReLU != 0 {
		for l, v := range cr {
			if 0 > v {
				cr[l] = 0
			}
		}
	}
}
