package bf16

import "math"

const (
	signMask  = 0x8000_0000
	expMask   = 0x7f80_0000
	quietMask = 0x0040 // top mantissa bit of a bfloat16
)

// FromFloat32 returns the bfloat16 nearest to f, ties to even. See the
// package documentation for infinities, overflow and NaNs.
func FromFloat32(f float32) uint16 {
	u := math.Float32bits(f)
	if u&^signMask > expMask { // NaN
		return uint16(u>>16) | quietMask
	}
	// Adding 0x7fff rounds up exactly when the low half is above 0x8000;
	// adding the kept half's last bit as well makes a tie of 0x8000 round
	// up only when that bit is 1, that is to even. A carry out of the
	// mantissa increments the exponent, which is correct rounding, and
	// from the largest finite value gives the infinity bit pattern. The
	// sum cannot wrap: the largest non-NaN pattern is 0xff800000.
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// ToFloat32 returns the float32 value of the bfloat16 b. It is exact, and
// a NaN keeps its sign and payload.
func ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// Encode converts src to bfloat16 into dst with [FromFloat32]. It
// converts min(len(dst), len(src)) values, like copy.
func Encode(dst []uint16, src []float32) {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, f := range src {
		dst[i] = FromFloat32(f)
	}
}

// Decode converts the bfloat16 values of src into dst with [ToFloat32].
// It converts min(len(dst), len(src)) values, like copy.
func Decode(dst []float32, src []uint16) {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, b := range src {
		dst[i] = ToFloat32(b)
	}
}
