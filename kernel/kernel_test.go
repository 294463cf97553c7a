package kernel

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// sizes are the awkward widths every kernel is tried on.
var sizes = []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 129}

// sentinel fills the guard bands around outputs; a kernel must never write
// it.
var sentinel = math.Float32frombits(0x7fa5a5a5)

const guard = 19

// guarded returns a slice of n cells inside a larger buffer whose other
// cells hold the sentinel, and a check that they still do.
func guarded(t *testing.T, n int) ([]float32, func()) {
	t.Helper()
	buf := make([]float32, n+2*guard)
	for i := range buf {
		buf[i] = sentinel
	}
	return buf[guard : guard+n : guard+n], func() {
		t.Helper()
		for i, v := range buf {
			if (i < guard || i >= guard+n) && math.Float32bits(v) != math.Float32bits(sentinel) {
				t.Fatalf("guard cell %d of a %d-cell output was written: %g", i-guard, n, v)
			}
		}
	}
}

// modes lists the Dots paths this build can run: the pure-Go twin, and
// the assembly where the processor has it.
func modes() []bool {
	if hasAsm {
		return []bool{false, true}
	}
	return []bool{false}
}

// setAsm selects the assembly (on) or the pure-Go twin and restores the
// default when the test ends.
func setAsm(t testing.TB, on bool) {
	old := useAsm
	useAsm = on
	t.Cleanup(func() { useAsm = old })
}

func modeName(on bool) string {
	if on {
		return "asm"
	}
	return "go"
}

func TestModes(t *testing.T) {
	t.Logf("assembly available: %v; paths tested: %v", hasAsm, modes())
}

func randVec(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32((2*r.Float64() - 1) * scale)
	}
	return v
}

func same(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }

func isNaN32(v float32) bool { return v != v }

// ---- Softmax ----

func refSoftmax(x []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	out := make([]float64, len(x))
	var s float64
	for i, v := range x {
		out[i] = math.Exp(float64(v) - m)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

// closeRel reports whether got is within ulps float32 roundings of want.
func closeRel(got float32, want float64, ulps float64) bool {
	return math.Abs(float64(got)-want) <= ulps*0x1p-24*math.Abs(want)+1e-44
}

func TestSoftmax(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range sizes {
		for _, scale := range []float64{0.1, 3, 50} {
			x := randVec(r, n, scale)
			want := refSoftmax(x)
			got, check := guarded(t, n)
			copy(got, x)
			Softmax(got)
			check()
			var sum float64
			for i := range got {
				if !closeRel(got[i], want[i], 3) {
					t.Fatalf("n=%d scale=%g: x[%d]=%g want %g", n, scale, i, got[i], want[i])
				}
				sum += float64(got[i])
			}
			if math.Abs(sum-1) > 1e-6 {
				t.Fatalf("n=%d: sum %g", n, sum)
			}
		}
	}
}

func TestSoftmaxLarge(t *testing.T) {
	x := []float32{3e38, 3e38, -3e38, 1e38}
	Softmax(x)
	if want := []float32{0.5, 0.5, 0, 0}; !slices.Equal(x, want) {
		t.Fatalf("got %v want %v", x, want)
	}
	y := []float32{1e4, 1e4 - 1, 1e4 - 2, 88, 89, 90}
	want := refSoftmax(y)
	Softmax(y)
	for i := range y {
		if !closeRel(y[i], want[i], 3) {
			t.Fatalf("y[%d]=%g want %g", i, y[i], want[i])
		}
	}
}

func TestSoftmaxMasked(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range sizes {
		x := randVec(r, n, 4)
		live := make([]float32, 0, n)
		for i := range x {
			if i%3 == 1 {
				x[i] = -1e9
			} else {
				live = append(live, x[i])
			}
		}
		want := refSoftmax(live)
		Softmax(x)
		k := 0
		for i, v := range x {
			if i%3 == 1 {
				if math.Float32bits(v) != 0 {
					t.Fatalf("n=%d: masked x[%d] = %g, want exactly +0", n, i, v)
				}
				continue
			}
			if !closeRel(v, want[k], 3) {
				t.Fatalf("n=%d: x[%d]=%g want %g", n, i, v, want[k])
			}
			k++
		}
	}
	// All masked: equal entries, uniform weights.
	x := []float32{-1e9, -1e9, -1e9, -1e9}
	Softmax(x)
	if !slices.Equal(x, []float32{0.25, 0.25, 0.25, 0.25}) {
		t.Fatalf("all masked: %v", x)
	}
}

func TestSoftmaxSpecial(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, n := range []int{1, 2, 5, 33} {
		for _, at := range []int{0, n / 2, n - 1} {
			x := randVec(rand.New(rand.NewPCG(uint64(n), uint64(at))), n, 1)
			x[at] = nan
			Softmax(x)
			for i, v := range x {
				if !isNaN32(v) {
					t.Fatalf("n=%d NaN at %d: x[%d] = %g", n, at, i, v)
				}
			}
		}
	}
	Softmax(nil) // no-op
	x := []float32{1, inf, -inf, inf, 5}
	Softmax(x)
	if !slices.Equal(x, []float32{0, 0.5, 0, 0.5, 0}) {
		t.Fatalf("+Inf row: %v", x)
	}
	x = []float32{-inf, -inf, -inf}
	Softmax(x)
	w := float32(1.0 / 3)
	if !slices.Equal(x, []float32{w, w, w}) {
		t.Fatalf("all −Inf row: %v", x)
	}
	x = []float32{-inf, 2, -inf}
	Softmax(x)
	if !slices.Equal(x, []float32{0, 1, 0}) {
		t.Fatalf("−Inf entries: %v", x)
	}
}

// ---- LayerNorm ----

func refLayerNorm(x []float32, gain, bias []float32, eps float32) []float64 {
	d := len(x)
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	mean := s / float64(d)
	var ss float64
	for _, v := range x {
		ss += (float64(v) - mean) * (float64(v) - mean)
	}
	rstd := 1 / math.Sqrt(ss/float64(d)+float64(eps))
	out := make([]float64, d)
	for j, v := range x {
		g, b := 1.0, 0.0
		if gain != nil {
			g = float64(gain[j])
		}
		if bias != nil {
			b = float64(bias[j])
		}
		out[j] = (float64(v)-mean)*rstd*g + b
	}
	return out
}

func TestLayerNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, d := range sizes {
		for _, nrows := range []int{1, 2, 3} {
			x := randVec(r, d*nrows, 2)
			for i := range x {
				x[i] += 7 // a mean far from 0
			}
			g, b := randVec(r, d, 1.5), randVec(r, d, 0.5)
			for _, gb := range [][2][]float32{{g, b}, {g, nil}, {nil, b}, {nil, nil}} {
				gain, bias := gb[0], gb[1]
				got, check := guarded(t, len(x))
				LayerNorm(got, x, d, gain, bias, 1e-5)
				check()
				for row := range nrows {
					want := refLayerNorm(x[row*d:(row+1)*d], gain, bias, 1e-5)
					for j, w := range want {
						v := got[row*d+j]
						if math.Abs(float64(v)-w) > 0x1p-23*math.Abs(w)+1e-9 {
							t.Fatalf("d=%d row %d col %d gain=%v bias=%v: %g want %g",
								d, row, j, gain != nil, bias != nil, v, w)
						}
					}
				}
				// In place gives the same bits.
				in := slices.Clone(x)
				LayerNorm(in, in, d, gain, bias, 1e-5)
				for i := range in {
					if !same(in[i], got[i]) {
						t.Fatalf("d=%d in place differs at %d: %g vs %g", d, i, in[i], got[i])
					}
				}
				// Row independence: each row alone.
				for row := range nrows {
					one := make([]float32, d)
					LayerNorm(one, x[row*d:(row+1)*d], d, gain, bias, 1e-5)
					for j := range one {
						if !same(one[j], got[row*d+j]) {
							t.Fatalf("d=%d row %d alone differs", d, row)
						}
					}
				}
			}
		}
	}
}

func TestLayerNormConstant(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, d := range sizes {
		g, b := randVec(r, d, 2), randVec(r, d, 2)
		for _, c := range []float32{0, 1, -3.75, 1e30, 0.1} {
			for _, eps := range []float32{1e-5, 0} {
				x := make([]float32, 2*d)
				for i := range x {
					x[i] = c
				}
				LayerNorm(x, x, d, g, b, eps)
				for i, v := range x {
					if !same(v, b[i%d]) {
						t.Fatalf("d=%d c=%g eps=%g: y[%d]=%g want bias %g", d, c, eps, i, v, b[i%d])
					}
				}
			}
		}
	}
}

func TestLayerNormNaN(t *testing.T) {
	x := []float32{1, 2, float32(math.NaN()), 4, 5, 6, 7, 8}
	LayerNorm(x, x, 4, nil, nil, 1e-5)
	for i, v := range x {
		if isNaN32(v) != (i < 4) {
			t.Fatalf("y[%d]=%g: only the first row should be NaN", i, v)
		}
	}
	x = []float32{1, float32(math.Inf(1)), 3, 4}
	LayerNorm(x, x, 4, nil, nil, 1e-5)
	for i, v := range x {
		if !isNaN32(v) {
			t.Fatalf("Inf row: y[%d]=%g want NaN", i, v)
		}
	}
}

func TestLayerNormPanics(t *testing.T) {
	for _, c := range []struct {
		name       string
		dst, x     int
		d, gain, b int
	}{
		{"ragged", 10, 10, 4, 4, 4},
		{"dst", 8, 12, 4, 4, 4},
		{"gain", 8, 8, 4, 3, 4},
		{"bias", 8, 8, 4, 4, 5},
		{"d0", 0, 0, 0, 0, 0},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", c.name)
				}
			}()
			LayerNorm(make([]float32, c.dst), make([]float32, c.x), c.d, make([]float32, c.gain), make([]float32, c.b), 1e-5)
		}()
	}
}

// ---- Cross, Add, Scale, ReLU ----

func TestCross(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range sizes {
		x0, h, x := randVec(r, n, 3), randVec(r, n, 3), randVec(r, n, 3)
		want := make([]float32, n)
		for i := range want {
			p := float32(float64(x0[i]) * float64(h[i])) // exact product, rounded once
			want[i] = float32(float64(p) + float64(x[i]))
		}
		got, check := guarded(t, n)
		Cross(got, x0, h, x)
		check()
		if !slices.EqualFunc(got, want, same) {
			t.Fatalf("n=%d: got %v want %v", n, got, want)
		}
		// dst aliasing h, then x.
		hh := slices.Clone(h)
		Cross(hh, x0, hh, x)
		xx := slices.Clone(x)
		Cross(xx, x0, h, xx)
		if !slices.EqualFunc(hh, want, same) || !slices.EqualFunc(xx, want, same) {
			t.Fatalf("n=%d: aliased results differ", n)
		}
	}
}

func TestElementwise(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range sizes {
		a, b := randVec(r, n, 5), randVec(r, n, 5)
		a[0] = float32(math.Copysign(0, -1))
		if n > 1 {
			a[1] = float32(math.NaN())
		}

		got, check := guarded(t, n)
		copy(got, a)
		Add(got, b)
		check()
		for i := range got {
			if want := float32(float64(a[i]) + float64(b[i])); !same(got[i], want) && !(isNaN32(want) && isNaN32(got[i])) {
				t.Fatalf("Add n=%d [%d]: %g want %g", n, i, got[i], want)
			}
		}

		copy(got, a)
		Scale(got, -1.5)
		check()
		for i := range got {
			if want := float32(float64(a[i]) * -1.5); !same(got[i], want) && !(isNaN32(want) && isNaN32(got[i])) {
				t.Fatalf("Scale n=%d [%d]: %g want %g", n, i, got[i], want)
			}
		}

		copy(got, a)
		ReLU(got)
		check()
		for i, v := range a {
			want := v
			if v <= 0 {
				want = 0
			}
			if !same(got[i], want) && !(isNaN32(v) && isNaN32(got[i])) {
				t.Fatalf("ReLU n=%d [%d]: %g want %g", n, i, got[i], want)
			}
		}
	}
}

// ---- Gather ----

func TestGather(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, d := range sizes {
		const rows = 11
		table := randVec(r, rows*d, 1)
		for _, ncodes := range []int{0, 1, 5, 17} {
			for _, ldd := range []int{d, d + 3} {
				codes := make([]int32, ncodes)
				for i := range codes {
					codes[i] = int32(r.IntN(rows))
				}
				n := 0
				if ncodes > 0 {
					n = (ncodes-1)*ldd + d
				}
				dst, check := guarded(t, n)
				bad, ok := Gather(dst, ldd, table, d, codes)
				check()
				if !ok || bad != -1 {
					t.Fatalf("d=%d: Gather = (%d, %v)", d, bad, ok)
				}
				for i, c := range codes {
					if !slices.Equal(dst[i*ldd:i*ldd+d], table[int(c)*d:int(c+1)*d]) {
						t.Fatalf("d=%d ldd=%d: row %d (code %d) wrong", d, ldd, i, c)
					}
					if i+1 < ncodes {
						for j := i*ldd + d; j < (i+1)*ldd; j++ {
							if !same(dst[j], sentinel) {
								t.Fatalf("d=%d ldd=%d: padding cell %d written", d, ldd, j)
							}
						}
					}
				}
			}
		}
	}
}

func TestGatherBadCode(t *testing.T) {
	table := []float32{1, 2, 3, 4, 5, 6} // 3 rows of 2
	for _, c := range []struct {
		codes []int32
		bad   int
	}{
		{[]int32{0, 1, 3}, 2},
		{[]int32{-1, 0}, 0},
		{[]int32{2, 2, 1, math.MaxInt32, -5}, 3},
		{[]int32{math.MinInt32}, 0},
	} {
		dst := make([]float32, 2*len(c.codes))
		for i := range dst {
			dst[i] = sentinel
		}
		bad, ok := Gather(dst, 2, table, 2, c.codes)
		if ok || bad != c.bad {
			t.Fatalf("codes %v: Gather = (%d, %v), want (%d, false)", c.codes, bad, ok, c.bad)
		}
		for i, v := range dst {
			if !same(v, sentinel) {
				t.Fatalf("codes %v: dst[%d] written on failure", c.codes, i)
			}
		}
	}
	// An empty table has no valid code.
	if bad, ok := Gather(make([]float32, 4), 4, nil, 4, []int32{0}); ok || bad != 0 {
		t.Fatalf("empty table: (%d, %v)", bad, ok)
	}
}

// ---- Dots ----

func refDot(q []float32, row []float32) (dot, mag float64) {
	for j, v := range row {
		p := float64(q[j]) * float64(v)
		dot += p
		mag += math.Abs(p)
	}
	return dot, mag
}

func widenAll(rows []uint16) []float32 {
	out := make([]float32, len(rows))
	for i, b := range rows {
		out[i] = widen(b)
	}
	return out
}

func randBF16(r *rand.Rand, n int) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = uint16(math.Float32bits(float32(2*r.Float64()-1)) >> 16)
	}
	return out
}

// checkDot checks a score against the float64 dot product: each of the
// d/8+5 roundings along a lane chain and the final sum is at most 2⁻²⁴ of
// the running magnitude.
func checkDot(t *testing.T, what string, got float32, q, row []float32) {
	t.Helper()
	want, mag := refDot(q, row)
	tol := float64(len(row)/8+5)*0x1p-23*mag + 1e-30
	if math.Abs(float64(got)-want) > tol {
		t.Fatalf("%s: got %g want %g (tol %g)", what, got, want, tol)
	}
}

func TestDots(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, asm := range modes() {
		setAsm(t, asm)
		for _, d := range sizes {
			for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 13} {
				q := randVec(r, d+2, 1) // longer than d: only q[:d] counts
				rows := randVec(r, n*d, 1)
				out, check := guarded(t, n)
				Dots(out, q, rows, d)
				check()
				brows := randBF16(r, n*d)
				bout, bcheck := guarded(t, n)
				DotsBF16(bout, q, brows, d)
				bcheck()
				wrows := widenAll(brows)
				wout := make([]float32, n)
				Dots(wout, q, wrows, d)
				for i := range n {
					checkDot(t, fmt.Sprintf("%s Dots d=%d n=%d row %d", modeName(asm), d, n, i), out[i], q[:d], rows[i*d:(i+1)*d])
					checkDot(t, fmt.Sprintf("%s DotsBF16 d=%d n=%d row %d", modeName(asm), d, n, i), bout[i], q[:d], wrows[i*d:(i+1)*d])
					if !same(bout[i], wout[i]) {
						t.Fatalf("%s d=%d n=%d row %d: DotsBF16 %g != Dots on widened rows %g", modeName(asm), d, n, i, bout[i], wout[i])
					}
				}
			}
		}
	}
}

// TestDotsRowIndependent checks that a row's score has the same bits
// whatever the number of rows in the call, its position among them and
// its alignment in memory.
func TestDotsRowIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	const n = 23
	for _, asm := range modes() {
		setAsm(t, asm)
		for _, d := range sizes {
			q := randVec(r, d, 1)
			rows := randVec(r, n*d, 1)
			brows := randBF16(r, n*d)
			full := make([]float32, n)
			bfull := make([]float32, n)
			Dots(full, q, rows, d)
			DotsBF16(bfull, q, brows, d)
			for a := range n {
				for _, m := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9} {
					b := min(a+m, n)
					out := make([]float32, b-a)
					Dots(out, q, rows[a*d:b*d], d)
					bout := make([]float32, b-a)
					DotsBF16(bout, q, brows[a*d:b*d], d)
					for i := range out {
						if !same(out[i], full[a+i]) || !same(bout[i], bfull[a+i]) {
							t.Fatalf("%s d=%d: row %d in rows [%d,%d) scored %g/%g, in the full batch %g/%g",
								modeName(asm), d, a+i, a, b, out[i], bout[i], full[a+i], bfull[a+i])
						}
					}
				}
				// The row alone, at every offset within a cache line,
				// with q moved as well.
				for off := range 16 {
					buf := make([]float32, off+d)
					copy(buf[off:], rows[a*d:(a+1)*d])
					qb := make([]float32, off+d)
					copy(qb[off:], q)
					bbuf := make([]uint16, off+d)
					copy(bbuf[off:], brows[a*d:(a+1)*d])
					var one, bone [1]float32
					Dots(one[:], qb[off:], buf[off:], d)
					DotsBF16(bone[:], qb[off:], bbuf[off:], d)
					if !same(one[0], full[a]) || !same(bone[0], bfull[a]) {
						t.Fatalf("%s d=%d: row %d at offset %d scored %g/%g, in the batch %g/%g",
							modeName(asm), d, a, off, one[0], bone[0], full[a], bfull[a])
					}
				}
			}
		}
	}
}

// smallVal maps a byte to a multiple of 1/8 in [−16, 16): exact in
// bfloat16, and dot products of up to a few hundred such values are exact
// in float32 whatever the order of the sums.
func smallVal(b byte) float32 { return float32(int8(b)) / 8 }

// TestDotsExact checks both paths against the exact value on inputs whose
// sums round nowhere, so the assembly and the twin must agree bit for bit.
func TestDotsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	for _, d := range sizes {
		const n = 9
		q := make([]float32, d)
		rows := make([]float32, n*d)
		for i := range q {
			q[i] = smallVal(byte(r.Uint32()))
		}
		for i := range rows {
			rows[i] = smallVal(byte(r.Uint32()))
		}
		brows := make([]uint16, len(rows))
		for i, v := range rows {
			brows[i] = uint16(math.Float32bits(v) >> 16)
		}
		for _, asm := range modes() {
			setAsm(t, asm)
			out := make([]float32, n)
			bout := make([]float32, n)
			Dots(out, q, rows, d)
			DotsBF16(bout, q, brows, d)
			for i := range n {
				want, _ := refDot(q, rows[i*d:(i+1)*d])
				if float64(out[i]) != want || float64(bout[i]) != want {
					t.Fatalf("%s d=%d row %d: Dots %g DotsBF16 %g want exactly %g", modeName(asm), d, i, out[i], bout[i], want)
				}
			}
		}
	}
}

// TestDotsSpecial checks infinities and NaNs: an infinity in a column
// that the tail re-reads (and masks) must not turn into a NaN, and a NaN
// stays in its own row.
func TestDotsSpecial(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, asm := range modes() {
		setAsm(t, asm)
		for _, d := range sizes {
			q := make([]float32, d)
			for i := range q {
				q[i] = 1
			}
			// Row c has +Inf in column c; row d+c has a NaN there.
			n := 2 * d
			rows := make([]float32, n*d)
			brows := make([]uint16, n*d)
			for c := range d {
				rows[c*d+c] = inf
				rows[(d+c)*d+c] = float32(math.NaN())
			}
			for i, v := range rows {
				brows[i] = uint16(math.Float32bits(v) >> 16)
			}
			out := make([]float32, n+1)
			bout := make([]float32, n+1)
			Dots(out[:n], q, rows, d)
			DotsBF16(bout[:n], q, brows, d)
			for i := range n {
				if i < d && (out[i] != inf || bout[i] != inf) {
					t.Fatalf("%s d=%d: +Inf in column %d scored %g/%g, want +Inf", modeName(asm), d, i, out[i], bout[i])
				}
				if i >= d && (!isNaN32(out[i]) || !isNaN32(bout[i])) {
					t.Fatalf("%s d=%d: NaN in column %d scored %g/%g", modeName(asm), d, i-d, out[i], bout[i])
				}
			}
			if out[n] != 0 || bout[n] != 0 {
				t.Fatalf("wrote past out")
			}
		}
	}
}

func TestDotsShapes(t *testing.T) {
	out := []float32{5, 5}
	Dots(out, nil, nil, 0)
	DotsBF16(out, nil, nil, 0)
	if out[0] != 0 || out[1] != 0 {
		t.Fatalf("d=0: %v", out)
	}
	Dots(nil, make([]float32, 3), nil, 3) // no rows: nothing to do
	for _, c := range []struct {
		name         string
		out, q, rows int
		d            int
	}{
		{"short q", 2, 7, 16, 8},
		{"short rows", 3, 8, 23, 8},
		{"negative d", 1, 0, 0, -1},
	} {
		for _, bf := range []bool{false, true} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s (bf16 %v): no panic", c.name, bf)
					}
				}()
				if bf {
					DotsBF16(make([]float32, c.out), make([]float32, c.q), make([]uint16, c.rows), c.d)
				} else {
					Dots(make([]float32, c.out), make([]float32, c.q), make([]float32, c.rows), c.d)
				}
			}()
		}
	}
}

// ---- TopK ----

func refTopK(scores []float32, k int) []int32 {
	ids := []int32{}
	for i, s := range scores {
		if !isNaN32(s) {
			ids = append(ids, int32(i))
		}
	}
	slices.SortStableFunc(ids, func(a, b int32) int { return cmp.Compare(scores[b], scores[a]) })
	if k < 0 {
		k = 0
	}
	return ids[:min(k, len(ids))]
}

func TestTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	nan := float32(math.NaN())
	for _, n := range []int{0, 1, 2, 3, 5, 8, 17, 64, 100, 257, 1000, 1030, 3000} {
		for _, kind := range []string{"distinct", "ties", "nan", "inf", "sorted", "reversed"} {
			scores := make([]float32, n)
			for i := range scores {
				switch kind {
				case "ties":
					scores[i] = float32(r.IntN(4))
				case "nan":
					scores[i] = float32(r.IntN(5))
					if r.IntN(3) == 0 {
						scores[i] = nan
					}
				case "inf":
					scores[i] = []float32{float32(math.Inf(-1)), float32(math.Inf(1)), nan, 0, -1, float32(math.Copysign(0, -1))}[r.IntN(6)]
				case "sorted":
					scores[i] = float32(i)
				case "reversed":
					scores[i] = float32(-i)
				default:
					scores[i] = float32(r.NormFloat64())
				}
			}
			for _, k := range []int{-1, 0, 1, 2, 3, 10, 64, 65, 1023, 1024, 1025, n / 2, n - 1, n, n + 1, 2*n + 5} {
				want := refTopK(scores, k)
				for _, asm := range modes() {
					setAsm(t, asm)
					got := TopK(make([]int32, 3), scores, k)
					if !slices.Equal(got, want) {
						t.Fatalf("%s n=%d %s k=%d:\n got %v\nwant %v", modeName(asm), n, kind, k, got, want)
					}
				}
			}
		}
	}
}

func TestTopKAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	scores := randVec(r, 5000, 1)
	for _, k := range []int{1, 10, 100, 1000, 5000, 6000} {
		idx := make([]int32, 0, k)
		var got []int32
		if a := testing.AllocsPerRun(20, func() { got = TopK(idx, scores, k) }); a != 0 {
			t.Fatalf("k=%d: %g allocations per call", k, a)
		}
		if want := refTopK(scores, k); !slices.Equal(got, want) {
			t.Fatalf("k=%d: wrong result", k)
		}
	}
}

// TestFirstAbove checks the scan behind TopK, on both paths, at every
// length and every position of the first hit.
func TestFirstAbove(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for n := range 100 {
		for hit := 0; hit <= n; hit++ {
			x := make([]float32, n+1)
			for i := range x {
				x[i] = float32(i % 3) // at most 2
				if i%5 == 4 {
					x[i] = nan
				}
			}
			if hit < n {
				x[hit] = 2.5
			}
			x[n] = 100 // past the slice: must not be seen
			for _, asm := range modes() {
				setAsm(t, asm)
				if got := firstAbove(x[:n], 2); got != hit {
					t.Fatalf("%s n=%d: first above 2 at %d, want %d", modeName(asm), n, got, hit)
				}
				if got := firstAbove(x[:n], nan); got != n {
					t.Fatalf("%s n=%d: first above NaN at %d, want none", modeName(asm), n, got)
				}
				if got := firstAbove(x[:n], inf); got != n {
					t.Fatalf("%s n=%d: first above +Inf at %d, want none", modeName(asm), n, got)
				}
				want := n
				for i, v := range x[:n] {
					if v > -1 {
						want = i
						break
					}
				}
				if got := firstAbove(x[:n], -1); got != want {
					t.Fatalf("%s n=%d: first above -1 at %d, want %d", modeName(asm), n, got, want)
				}
			}
		}
	}
}

// topkVal maps a byte to a score with many ties, infinities and NaNs.
func topkVal(b byte) float32 {
	switch b % 16 {
	case 12:
		return float32(math.Copysign(0, -1))
	case 13:
		return float32(math.NaN())
	case 14:
		return float32(math.Inf(1))
	case 15:
		return float32(math.Inf(-1))
	}
	return float32(int(b%16)-6) + float32(b>>4)/4
}

func FuzzTopK(f *testing.F) {
	f.Add([]byte{}, 0)
	f.Add([]byte{1, 2, 3, 13, 13, 14, 15, 0, 0}, 4)
	f.Add([]byte("the quick brown fox jumps over the lazy dog"), 7)
	f.Add([]byte{200, 13, 29, 45, 61, 77, 93, 109}, 100)
	f.Fuzz(func(t *testing.T, data []byte, k int) {
		scores := make([]float32, len(data))
		for i, b := range data {
			scores[i] = topkVal(b)
		}
		k %= 2*len(data) + 3
		want := refTopK(scores, k)
		for _, asm := range modes() {
			setAsm(t, asm)
			got := TopK(nil, scores, k)
			if !slices.Equal(got, want) {
				t.Fatalf("%s scores %v k=%d:\n got %v\nwant %v", modeName(asm), scores, k, got, want)
			}
		}
	})
}

func FuzzDots(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, uint8(9), uint8(3))
	f.Add([]byte{0x80, 0x7f, 0xff, 0x01}, uint8(64), uint8(5))
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), uint8(33), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, dd, nn uint8) {
		if len(data) == 0 {
			return
		}
		d := int(dd)%130 + 1
		n := int(nn)%9 + 1
		val := func(i int) float32 { return smallVal(data[i%len(data)] + byte(i/len(data))*37) }
		q := make([]float32, d)
		for i := range q {
			q[i] = val(i)
		}
		rows := make([]float32, n*d)
		brows := make([]uint16, n*d)
		for i := range rows {
			rows[i] = val(d + i)
			brows[i] = uint16(math.Float32bits(rows[i]) >> 16)
		}
		for _, asm := range modes() {
			setAsm(t, asm)
			out := make([]float32, n)
			bout := make([]float32, n)
			Dots(out, q, rows, d)
			DotsBF16(bout, q, brows, d)
			for i := range n {
				want, _ := refDot(q, rows[i*d:(i+1)*d])
				if float64(out[i]) != want || float64(bout[i]) != want {
					t.Fatalf("%s d=%d n=%d row %d: %g/%g want %g", modeName(asm), d, n, i, out[i], bout[i], want)
				}
				var one [1]float32
				Dots(one[:], q, rows[i*d:(i+1)*d], d)
				if !same(one[0], out[i]) {
					t.Fatalf("%s d=%d: row %d alone %g, in the batch %g", modeName(asm), d, i, one[0], out[i])
				}
			}
		}
	})
}

// TestExp32: within 2.4e-7 relative of float64 math.Exp over the whole
// finite range, with the documented limits.
func TestExp32(t *testing.T) {
	worst := 0.0
	for x := float32(-87.3); x < 88.7; x += 0.000731 {
		got, want := float64(Exp32(x)), math.Exp(float64(x))
		rel := math.Abs(got-want) / want
		worst = max(worst, rel)
		if rel > 2.4e-7 {
			t.Fatalf("Exp32(%v) = %v, math.Exp %v (relative error %.3g)", x, got, want, rel)
		}
	}
	t.Logf("worst relative error %.3g", worst)
	for _, c := range []struct{ x, want float32 }{{0, 1}, {-1e9, 0}, {-104, 0}, {float32(math.Inf(-1)), 0}, {89, float32(math.Inf(1))}} {
		if got := Exp32(c.x); got != c.want {
			t.Errorf("Exp32(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if v := Exp32(float32(math.NaN())); v == v {
		t.Error("Exp32(NaN) is not NaN")
	}
}
