package bf16

import (
	"math"
	"math/rand/v2"
	"testing"
)

func isNaN16(b uint16) bool { return b&0x7fff > 0x7f80 }

// TestRoundTripAll checks every bfloat16 bit pattern: decoding and
// encoding again gives the same bits, except that NaNs come back as quiet
// NaNs of the same sign and payload.
func TestRoundTripAll(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		b := uint16(i)
		f := ToFloat32(b)
		got := FromFloat32(f)
		if isNaN16(b) {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("ToFloat32(%#04x) = %g, want NaN", b, f)
			}
			if want := b | 0x0040; got != want {
				t.Fatalf("FromFloat32(ToFloat32(%#04x)) = %#04x, want %#04x", b, got, want)
			}
			continue
		}
		if got != b {
			t.Fatalf("FromFloat32(ToFloat32(%#04x)) = %#04x (value %g)", b, got, f)
		}
		if math.Float32bits(f)&0xffff != 0 {
			t.Fatalf("ToFloat32(%#04x) has nonzero low bits", b)
		}
	}
}

func TestFromFloat32Cases(t *testing.T) {
	tests := []struct {
		name string
		in   uint32 // float32 bits
		want uint16
	}{
		{"zero", 0x0000_0000, 0x0000},
		{"negative zero", 0x8000_0000, 0x8000},
		{"one", 0x3f80_0000, 0x3f80},
		{"minus two", 0xc000_0000, 0xc000},
		{"below tie rounds down", 0x3f80_7fff, 0x3f80},
		{"tie to even stays down", 0x3f80_8000, 0x3f80},
		{"above tie rounds up", 0x3f80_8001, 0x3f81},
		{"tie to even goes up", 0x3f81_8000, 0x3f82},
		{"negative tie to even stays", 0xbf80_8000, 0xbf80},
		{"negative tie to even goes up", 0xbf81_8000, 0xbf82},
		{"carry into exponent", 0x3fff_8000, 0x4000},
		{"smallest subnormal rounds to zero", 0x0000_0001, 0x0000},
		{"subnormal tie to even", 0x0001_8000, 0x0002},
		{"subnormal tie stays", 0x0000_8000, 0x0000},
		{"largest subnormal becomes smallest normal", 0x007f_ffff, 0x0080},
		{"largest finite rounds to inf", 0x7f7f_ffff, 0x7f80},
		{"negative largest finite rounds to -inf", 0xff7f_ffff, 0xff80},
		{"tie above max bf16 goes to inf", 0x7f7f_8000, 0x7f80},
		{"just below that tie stays finite", 0x7f7f_7fff, 0x7f7f},
		{"inf", 0x7f80_0000, 0x7f80},
		{"-inf", 0xff80_0000, 0xff80},
		{"quiet NaN", 0x7fc0_0000, 0x7fc0},
		{"negative quiet NaN", 0xffc0_0000, 0xffc0},
		{"signaling NaN with low payload only", 0x7f80_0001, 0x7fc0},
		{"negative signaling NaN with low payload only", 0xff80_0001, 0xffc0},
		{"NaN keeps high payload", 0x7f81_ffff, 0x7fc1},
		{"NaN all ones", 0xffff_ffff, 0xffff},
	}
	for _, tc := range tests {
		if got := FromFloat32(math.Float32frombits(tc.in)); got != tc.want {
			t.Errorf("%s: FromFloat32(bits %#08x) = %#04x, want %#04x", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestNaN(t *testing.T) {
	for _, u := range []uint32{0x7f80_0001, 0x7f80_ffff, 0x7fa0_0000, 0x7fc0_0000, 0x7fff_ffff} {
		for _, sign := range []uint32{0, 0x8000_0000} {
			in := u | sign
			got := FromFloat32(math.Float32frombits(in))
			if !isNaN16(got) {
				t.Errorf("FromFloat32(bits %#08x) = %#04x, not a NaN", in, got)
			}
			if got&0x0040 == 0 {
				t.Errorf("FromFloat32(bits %#08x) = %#04x, not quiet", in, got)
			}
			if uint32(got&0x8000)<<16 != sign {
				t.Errorf("FromFloat32(bits %#08x) = %#04x, sign lost", in, got)
			}
			if f := ToFloat32(got); !math.IsNaN(float64(f)) || math.Signbit(float64(f)) != (sign != 0) {
				t.Errorf("ToFloat32(%#04x) = %g (sign %v)", got, f, math.Signbit(float64(f)))
			}
		}
	}
}

func TestMaxFinite(t *testing.T) {
	maxBF := ToFloat32(0x7f7f)
	if got := FromFloat32(maxBF); got != 0x7f7f {
		t.Errorf("FromFloat32(max bf16) = %#04x", got)
	}
	if got := FromFloat32(math.MaxFloat32); got != 0x7f80 {
		t.Errorf("FromFloat32(MaxFloat32) = %#04x, want +Inf", got)
	}
	if got := FromFloat32(-math.MaxFloat32); got != 0xff80 {
		t.Errorf("FromFloat32(-MaxFloat32) = %#04x, want -Inf", got)
	}
	if f := ToFloat32(FromFloat32(math.MaxFloat32)); !math.IsInf(float64(f), 1) {
		t.Errorf("MaxFloat32 round trip = %g, want +Inf", f)
	}
}

// reference rounds f to bfloat16 with float64 arithmetic only: it scales
// |f| by the bfloat16 unit in the last place at its binade, rounds to an
// integer with ties to even, and scales back. It does not handle NaNs.
func reference(f float32) uint16 {
	x := float64(f)
	neg := math.Signbit(x)
	a := math.Abs(x)
	var v float64
	switch {
	case math.IsInf(a, 0):
		v = a
	case a == 0:
		v = 0
	default:
		// bfloat16 has 8 significant bits; below 2^-126 the spacing stays
		// that of the smallest binade, 2^-133.
		exp := -126
		if a >= 0x1p-126 {
			_, e := math.Frexp(a) // a = m * 2^e, m in [0.5, 1)
			exp = e - 1
		}
		ulp := math.Ldexp(1, exp-7)
		v = math.RoundToEven(a/ulp) * ulp
		if v >= 0x1p128 {
			v = math.Inf(1)
		}
	}
	u := math.Float32bits(float32(v))
	if float64(float32(v)) != v || u&0xffff != 0 {
		panic("reference: result is not a bfloat16")
	}
	b := uint16(u >> 16)
	if neg {
		b |= 0x8000
	}
	return b
}

func TestAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(u uint32) {
		f := math.Float32frombits(u)
		if math.IsNaN(float64(f)) {
			return
		}
		if got, want := FromFloat32(f), reference(f); got != want {
			t.Fatalf("FromFloat32(bits %#08x = %g) = %#04x, reference %#04x", u, f, got, want)
		}
	}
	for i := 0; i < 200_000; i++ {
		u := r.Uint32()
		check(u)
		// Near and at ties, where rounding is decided.
		hi := u &^ 0xffff
		for _, lo := range []uint32{0x7fff, 0x8000, 0x8001, 0xffff, 0} {
			check(hi | lo)
		}
		if i%16 == 0 {
			check(u & 0x807f_ffff) // subnormals
			check(u | 0x7f00_0000) // near overflow
		}
	}
	for i := 0; i < 10_000; i++ {
		f := float32(r.NormFloat64())
		check(math.Float32bits(f))
	}
}

func TestEncodeDecode(t *testing.T) {
	src := []float32{0, 1, -2.5, 3.14159, float32(math.Inf(-1)), 1e-40}
	enc := make([]uint16, len(src))
	Encode(enc, src)
	dec := make([]float32, len(src))
	Decode(dec, enc)
	for i, f := range src {
		if enc[i] != FromFloat32(f) {
			t.Errorf("Encode[%d] = %#04x, want %#04x", i, enc[i], FromFloat32(f))
		}
		if math.Float32bits(dec[i]) != math.Float32bits(ToFloat32(enc[i])) {
			t.Errorf("Decode[%d] = %g, want %g", i, dec[i], ToFloat32(enc[i]))
		}
	}
	if dec[3] != 3.140625 {
		t.Errorf("3.14159 through bf16 = %g, want 3.140625", dec[3])
	}

	// Mismatched lengths convert the common prefix and never panic.
	short := make([]uint16, 2)
	Encode(short, src)
	if short[0] != 0 || short[1] != 0x3f80 {
		t.Errorf("Encode into short dst = %#04x", short)
	}
	long := []uint16{7, 7, 7}
	Encode(long, src[1:2])
	if long[0] != 0x3f80 || long[1] != 7 {
		t.Errorf("Encode from short src = %#04x", long)
	}
	fs := []float32{9, 9}
	Decode(fs, []uint16{0x4000})
	if fs[0] != 2 || fs[1] != 9 {
		t.Errorf("Decode from short src = %v", fs)
	}
	Decode(nil, enc)
	Encode(nil, src)
}

func BenchmarkEncode(b *testing.B) {
	src := make([]float32, 1<<16)
	for i := range src {
		src[i] = float32(i) * 0.001
	}
	dst := make([]uint16, len(src))
	b.SetBytes(int64(4 * len(src)))
	for b.Loop() {
		Encode(dst, src)
	}
}
