package gemm

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tandemml/tandem/bf16"
)

// sentinel is the NaN bit pattern written around the outputs: any cell of
// c that Mul must not touch has to keep exactly these bits.
const sentinel = 0x7fc0_dead

// paths runs f once for each kernel this machine has: the assembly one
// when the CPU supports it, and the pure-Go one (useAsm forced off).
func paths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := useAsm
	defer func() { useAsm = saved }()
	if saved {
		t.Run("asm", f)
	}
	useAsm = false
	t.Run("go", f)
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.Float64()*2 - 1)
	}
	return s
}

func roundBF16(w []float32) []float32 {
	r := make([]float32, len(w))
	for i, v := range w {
		r[i] = bf16.ToFloat32(bf16.FromFloat32(v))
	}
	return r
}

// problem is one test case: A [m, k] with row stride lda (the gap holds
// NaNs, which must never be read), W [n, k], an optional bias.
type problem struct {
	m, n, k, lda, ldc int
	a, w, bias        []float32
	relu              bool
}

func newProblem(rng *rand.Rand, m, n, k int, withBias, relu bool) *problem {
	p := &problem{m: m, n: n, k: k, lda: k + 3, ldc: n + 5, relu: relu}
	p.a = make([]float32, max(0, (m-1)*p.lda+k))
	for i := range p.a {
		if i%p.lda < k {
			p.a[i] = float32(rng.Float64()*2 - 1)
		} else {
			p.a[i] = float32(math.NaN())
		}
	}
	p.w = randSlice(rng, n*k)
	if withBias {
		p.bias = randSlice(rng, n)
	}
	return p
}

// guarded returns c for the problem, m rows of stride ldc plus a tail,
// filled with the sentinel.
func (p *problem) guarded() []float32 {
	c := make([]float32, p.m*p.ldc+7)
	for i := range c {
		c[i] = math.Float32frombits(sentinel)
	}
	return c
}

// checkGuards fails if any cell of c outside the m×n outputs changed.
func (p *problem) checkGuards(t *testing.T, c []float32) {
	t.Helper()
	for idx, v := range c {
		i, j := idx/p.ldc, idx%p.ldc
		if i < p.m && j < p.n {
			continue
		}
		if math.Float32bits(v) != sentinel {
			t.Fatalf("guard cell %d (row %d col %d) overwritten: %g", idx, i, j, v)
		}
	}
}

// checkFloat64 compares c with a float64 evaluation of the product, to a
// relative 1e-5 of Σ|a·w| + |bias| (the scale of the rounding errors).
func (p *problem) checkFloat64(t *testing.T, c []float32, w []float32) {
	t.Helper()
	for i := 0; i < p.m; i++ {
		for j := 0; j < p.n; j++ {
			var s, mag float64
			for q := 0; q < p.k; q++ {
				x := float64(p.a[i*p.lda+q]) * float64(w[j*p.k+q])
				s += x
				mag += math.Abs(x)
			}
			if p.bias != nil {
				s += float64(p.bias[j])
				mag += math.Abs(float64(p.bias[j]))
			}
			if p.relu && s < 0 {
				s = 0
			}
			got := float64(c[i*p.ldc+j])
			if d := math.Abs(got - s); !(d <= 1e-5*mag) {
				t.Fatalf("c[%d,%d] = %g, float64 reference %g (diff %g, scale %g)", i, j, got, s, d, mag)
			}
		}
	}
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: lengths %d and %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d: %g (%#08x), want %g (%#08x)", what, i,
				got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

var awkward = []int{1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 65, 127, 129, 373}

// shapes samples (m, n, k) from the awkward sizes: every size appears in
// every position, the rest drawn at random, with the work bounded so the
// pure-Go path under -race stays fast.
func shapes(rng *rand.Rand) [][3]int {
	var out [][3]int
	limit := 400_000
	if raceEnabled {
		limit = 100_000
	}
	pick := func() int { return awkward[rng.IntN(len(awkward))] }
	for _, s := range awkward {
		for pos := 0; pos < 3; pos++ {
			for {
				d := [3]int{pick(), pick(), pick()}
				d[pos] = s
				if d[0]*d[1]*d[2] <= limit {
					out = append(out, d)
					break
				}
			}
		}
	}
	out = append(out, [3]int{129, 373, 17}, [3]int{373, 17, 129}, [3]int{65, 33, 373}, [3]int{7, 129, 373})
	return out
}

func TestMulShapes(t *testing.T) {
	paths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		var buf Buf
		for ci, d := range shapes(rng) {
			m, n, k := d[0], d[1], d[2]
			withBias, relu := ci%2 == 0, ci%4 < 2
			p := newProblem(rng, m, n, k, withBias, relu)
			name := fmt.Sprintf("m=%d n=%d k=%d bias=%v relu=%v", m, n, k, withBias, relu)

			want := p.guarded()
			MulRef(want, p.ldc, p.a, p.lda, m, p.w, n, k, p.bias, relu)
			p.checkFloat64(t, want, p.w)

			got := p.guarded()
			Pack(p.w, n, k).Mul(got, p.ldc, p.a, p.lda, m, p.bias, relu, &buf)
			p.checkGuards(t, got)
			sameBits(t, name+" fp32 vs MulRef", got, want)

			wr := roundBF16(p.w)
			want16 := p.guarded()
			MulRef(want16, p.ldc, p.a, p.lda, m, wr, n, k, p.bias, relu)
			p.checkFloat64(t, want16, wr)
			got16 := p.guarded()
			PackBF16(p.w, n, k).Mul(got16, p.ldc, p.a, p.lda, m, p.bias, relu, &buf)
			p.checkGuards(t, got16)
			sameBits(t, name+" bf16 vs MulRef", got16, want16)
		}
	})
}

// TestDegenerate covers K = 0 (outputs are bias, then ReLU), N = 0 and
// m = 0.
func TestDegenerate(t *testing.T) {
	paths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		var buf Buf
		for _, d := range [][3]int{{3, 5, 0}, {7, 0, 9}, {0, 5, 9}, {1, 1, 1}} {
			for _, relu := range []bool{false, true} {
				p := newProblem(rng, d[0], d[1], d[2], true, relu)
				want := p.guarded()
				MulRef(want, p.ldc, p.a, p.lda, p.m, p.w, p.n, p.k, p.bias, relu)
				got := p.guarded()
				Pack(p.w, p.n, p.k).Mul(got, p.ldc, p.a, p.lda, p.m, p.bias, relu, &buf)
				p.checkGuards(t, got)
				sameBits(t, fmt.Sprint(d), got, want)
				if p.k == 0 {
					for i := 0; i < p.m; i++ {
						for j := 0; j < p.n; j++ {
							b := p.bias[j]
							if relu && b < 0 {
								b = 0
							}
							if got[i*p.ldc+j] != b {
								t.Fatalf("K=0: c[%d,%d] = %g, want %g", i, j, got[i*p.ldc+j], b)
							}
						}
					}
				}
			}
		}
	})
}

// TestRowIdentity is the batch-independence guarantee: each row computed
// alone or inside any sub-batch is bit-identical to the same row computed
// in the whole batch, for fp32 and bf16 panels and both kernels; and the
// two kernels agree bit for bit.
func TestRowIdentity(t *testing.T) {
	const m = 513
	rng := rand.New(rand.NewPCG(5, 6))
	// n = 40: two full panels and an edge one; k = 400: two k blocks.
	for _, d := range [][2]int{{40, 400}, {128, 99}} {
		n, k := d[0], d[1]
		p := newProblem(rng, m, n, k, true, true)
		for _, bf := range []bool{false, true} {
			pk := Pack(p.w, n, k)
			if bf {
				pk = PackBF16(p.w, n, k)
			}
			var whole [2][]float32 // by path: asm, go
			paths(t, func(t *testing.T) {
				if raceEnabled && !useAsm && n == 128 {
					t.Skip("the pure-Go kernel under -race: first shape only")
				}
				var buf Buf
				full := p.guarded()
				pk.Mul(full, p.ldc, p.a, p.lda, m, p.bias, p.relu, &buf)
				p.checkGuards(t, full)
				path := 0
				if !useAsm {
					path = 1
				}
				whole[path] = full
				skip := 1 // every sub-batch
				if !useAsm {
					skip = 6 // the Go kernel is slower: every 6th
				}
				if raceEnabled {
					skip *= 5
				}
				for _, sub := range []int{1, 7, 64, 513} {
					for i0 := 0; i0+sub <= m; i0 += sub * skip {
						c := make([]float32, sub*p.ldc)
						pk.Mul(c, p.ldc, p.a[i0*p.lda:], p.lda, sub, p.bias, p.relu, &buf)
						for r := 0; r < sub; r++ {
							sameBits(t, fmt.Sprintf("n=%d k=%d bf16=%v rows [%d,%d) row %d", n, k, bf, i0, i0+sub, i0+r),
								c[r*p.ldc:r*p.ldc+n], full[(i0+r)*p.ldc:(i0+r)*p.ldc+n])
						}
					}
					// Sub-batches at unaligned offsets too.
					if sub > 1 && sub < m {
						for _, i0 := range []int{1, 5, 13, m - sub} {
							c := make([]float32, sub*p.ldc)
							pk.Mul(c, p.ldc, p.a[i0*p.lda:], p.lda, sub, p.bias, p.relu, &buf)
							for r := 0; r < sub; r++ {
								sameBits(t, fmt.Sprintf("rows [%d,%d) row %d", i0, i0+sub, i0+r),
									c[r*p.ldc:r*p.ldc+n], full[(i0+r)*p.ldc:(i0+r)*p.ldc+n])
							}
						}
					}
				}
			})
			if whole[0] != nil && whole[1] != nil {
				sameBits(t, fmt.Sprintf("n=%d k=%d bf16=%v asm vs go", n, k, bf), whole[0], whole[1])
			}
		}
	}
}

// TestFMA32 checks the emulated single-precision FMA against exact
// arithmetic, including inputs where rounding to float64 first and then to
// float32 would be wrong.
func TestFMA32(t *testing.T) {
	exact := func(a, b, c float32) float32 {
		x := new(big.Float).SetPrec(1200).SetFloat64(float64(a))
		x.Mul(x, new(big.Float).SetPrec(1200).SetFloat64(float64(b)))
		x.Add(x, new(big.Float).SetPrec(1200).SetFloat64(float64(c)))
		f, _ := x.Float32()
		return f
	}
	one := float32(1)
	ulp := float32(math.Ldexp(1, -23))
	// a·b = 2⁻²⁴ − 2⁻⁷⁰: c + a·b lies just below the midpoint between c
	// and its successor; rounded to float64 it is the midpoint, and ties to
	// even would round up when c is odd.
	a := float32(math.Ldexp(1, -24)) * (one + ulp)
	b := one - ulp
	c := one + ulp
	cases := [][3]float32{
		{a, b, c}, {-a, b, -c}, {a, -b, -c},
		{a, b, 1}, {1, 1, 1},
		{float32(math.Inf(1)), 0, 1}, {float32(math.NaN()), 1, 1},
		{math.MaxFloat32, 2, -math.MaxFloat32},
		{math.SmallestNonzeroFloat32, 0.5, 0}, {math.SmallestNonzeroFloat32, 1.5, 0},
		{math.SmallestNonzeroFloat32, 0.5, math.SmallestNonzeroFloat32},
	}
	if naive := float32(float64(a)*float64(b) + float64(c)); naive == c {
		t.Fatalf("the double-rounding case is not one: %g", naive)
	}
	if got := fma32(a, b, c); got != c {
		t.Fatalf("double-rounding case: fma32 = %g, want %g (float64 path gives %g)", got, c, float32(float64(a)*float64(b)+float64(c)))
	}
	rng := rand.New(rand.NewPCG(7, 8))
	trials := 200_000
	if raceEnabled {
		trials = 40_000
	}
	for i := 0; i < trials; i++ {
		r := func() float32 {
			switch rng.IntN(4) {
			case 0:
				return math.Float32frombits(rng.Uint32())
			case 1:
				return float32(math.Ldexp(rng.Float64()*2-1, rng.IntN(60)-30))
			case 2:
				return float32(rng.IntN(33) - 16)
			default:
				return float32(math.Ldexp(rng.Float64()*2-1, -rng.IntN(40)-110)) // around subnormals
			}
		}
		cases = append(cases, [3]float32{r(), r(), r()})
	}
	for _, cs := range cases {
		got := fma32(cs[0], cs[1], cs[2])
		var want float32
		if isNaNOrInf(cs[0]) || isNaNOrInf(cs[1]) || isNaNOrInf(cs[2]) {
			want = float32(float64(cs[0])*float64(cs[1]) + float64(cs[2]))
		} else {
			want = exact(cs[0], cs[1], cs[2])
		}
		if math.IsNaN(float64(want)) && math.IsNaN(float64(got)) {
			continue
		}
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("fma32(%g, %g, %g) = %g (%#08x), want %g (%#08x)", cs[0], cs[1], cs[2],
				got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
	// The kernels (assembly included) agree on the hard case.
	paths(t, func(t *testing.T) {
		var buf Buf
		out := make([]float32, 2)
		// k = 2: the chain is fma(1, c, 0) = c, then fma(a, b, c).
		Pack([]float32{c, b}, 1, 2).Mul(out, 1, []float32{1, a, -1, -a}, 2, 2, nil, false, &buf)
		if out[0] != c || out[1] != -c {
			t.Fatalf("kernel on the double-rounding case: %g %g, want %g %g", out[0], out[1], c, -c)
		}
	})
}

func isNaNOrInf(f float32) bool { return math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) }

// TestNaNPropagates: a NaN in a row of A makes every output of that row
// NaN, with and without ReLU, and leaves the other rows alone.
func TestNaNPropagates(t *testing.T) {
	paths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 10))
		var buf Buf
		const m, n, k = 13, 21, 37
		for _, relu := range []bool{false, true} {
			for _, bf := range []bool{false, true} {
				p := newProblem(rng, m, n, k, true, relu)
				for i := range p.w {
					if i%3 == 0 {
						p.w[i] = 0 // NaN·0 must still be NaN
					}
				}
				p.a[4*p.lda+17] = float32(math.NaN())
				p.a[12*p.lda+0] = float32(math.NaN())
				pk := Pack(p.w, n, k)
				if bf {
					pk = PackBF16(p.w, n, k)
				}
				c := p.guarded()
				pk.Mul(c, p.ldc, p.a, p.lda, m, p.bias, relu, &buf)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						nan := math.IsNaN(float64(c[i*p.ldc+j]))
						if nan != (i == 4 || i == 12) {
							t.Fatalf("relu=%v bf16=%v: c[%d,%d] = %g", relu, bf, i, j, c[i*p.ldc+j])
						}
					}
				}
			}
		}
	})
}

func TestReLUZeroSign(t *testing.T) {
	paths(t, func(t *testing.T) {
		var buf Buf
		// 1·(−0) = −0: the chain 0 + (−0) gives +0 (FMA from a zero
		// accumulator), and ReLU leaves it; a −0 bias keeps +0 + −0 = +0.
		c := []float32{9, 9}
		Pack([]float32{float32(math.Copysign(0, -1)), -1}, 2, 1).Mul(c, 2, []float32{1}, 1, 1, nil, true, &buf)
		want := make([]float32, 2)
		MulRef(want, 2, []float32{1}, 1, 1, []float32{float32(math.Copysign(0, -1)), -1}, 2, 1, nil, true)
		sameBits(t, "relu zeros", c, want)
	})
}

func TestAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const m, n, k = 67, 40, 300
	p := newProblem(rng, m, n, k, true, true)
	pk, pk16 := Pack(p.w, n, k), PackBF16(p.w, n, k)
	c := p.guarded()
	var buf Buf
	paths(t, func(t *testing.T) {
		runs := 20
		if !useAsm {
			runs = 2
		}
		allocs := testing.AllocsPerRun(runs, func() {
			pk.Mul(c, p.ldc, p.a, p.lda, m, p.bias, true, &buf)
			pk16.Mul(c, p.ldc, p.a, p.lda, m, nil, false, &buf)
			pk.Mul(c, p.ldc, p.a, p.lda, 1, p.bias, false, &buf)
		})
		if allocs != 0 {
			t.Fatalf("Mul allocates %v times a call in steady state", allocs)
		}
	})
}

func TestBytes(t *testing.T) {
	w := make([]float32, 17*5)
	if got, want := Pack(w, 17, 5).Bytes(), 2*16*5*4; got != want {
		t.Fatalf("Pack Bytes = %d, want %d", got, want)
	}
	if got, want := PackBF16(w, 17, 5).Bytes(), 2*16*5*2; got != want {
		t.Fatalf("PackBF16 Bytes = %d, want %d", got, want)
	}
}

func TestPanics(t *testing.T) {
	pk := Pack(make([]float32, 4*3), 4, 3)
	a := make([]float32, 2*3)
	c := make([]float32, 2*4)
	var buf Buf
	cases := []struct {
		name, msg string
		f         func()
	}{
		{"short w", "len(w)", func() { Pack(make([]float32, 11), 4, 3) }},
		{"negative n", "negative", func() { PackBF16(nil, -1, 3) }},
		{"nil buf", "nil *Buf", func() { pk.Mul(c, 4, a, 3, 2, nil, false, nil) }},
		{"negative m", "m=-1", func() { pk.Mul(c, 4, a, 3, -1, nil, false, &buf) }},
		{"lda", "lda=2 < K=3", func() { pk.Mul(c, 4, a, 2, 2, nil, false, &buf) }},
		{"ldc", "ldc=3 < N=4", func() { pk.Mul(c, 3, a, 3, 2, nil, false, &buf) }},
		{"short a", "len(a)=5", func() { pk.Mul(c, 4, a[:5], 3, 2, nil, false, &buf) }},
		{"short c", "len(c)=7", func() { pk.Mul(c[:7], 4, a, 3, 2, nil, false, &buf) }},
		{"short bias", "len(bias)=3", func() { pk.Mul(c, 4, a, 3, 2, make([]float32, 3), false, &buf) }},
		{"ref short w", "len(w)", func() { MulRef(c, 4, a, 3, 2, make([]float32, 11), 4, 3, nil, false) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("no panic")
				}
				if s := fmt.Sprint(r); !strings.Contains(s, tc.msg) {
					t.Fatalf("panic %q does not mention %q", s, tc.msg)
				}
			}()
			tc.f()
		})
	}
}

// TestOtherBlockings runs Mul with small cache blocks, so that k blocks,
// row blocks and column blocks all come in several pieces, and checks that
// the result is still bit-identical to MulRef: blocking never changes a
// result.
func TestOtherBlockings(t *testing.T) {
	saved := [3]int{kcMax, mcMax, ncBytes}
	defer func() { kcMax, mcMax, ncBytes = saved[0], saved[1], saved[2] }()
	rng := rand.New(rand.NewPCG(13, 14))
	paths(t, func(t *testing.T) {
		for _, blk := range [][3]int{{8, 6, 1}, {20, 12, 4 << 10}, {64, 18, 16 << 10}, {384, 96, 512 << 10}} {
			kcMax, mcMax, ncBytes = blk[0], blk[1], blk[2]
			for _, d := range [][3]int{{37, 50, 77}, {6, 16, 64}, {1, 3, 9}, {13, 65, 33}} {
				p := newProblem(rng, d[0], d[1], d[2], true, d[0]%2 == 1)
				for _, bf := range []bool{false, true} {
					w, pk := p.w, Pack(p.w, p.n, p.k)
					if bf {
						w, pk = roundBF16(p.w), PackBF16(p.w, p.n, p.k)
					}
					want := p.guarded()
					MulRef(want, p.ldc, p.a, p.lda, p.m, w, p.n, p.k, p.bias, p.relu)
					var buf Buf
					got := p.guarded()
					pk.Mul(got, p.ldc, p.a, p.lda, p.m, p.bias, p.relu, &buf)
					p.checkGuards(t, got)
					sameBits(t, fmt.Sprintf("blocking %v shape %v bf16=%v", blk, d, bf), got, want)
				}
			}
		}
	})
}

// TestBlocking pins the k blocking to K alone.
func TestBlocking(t *testing.T) {
	for _, tc := range [][2]int{{1, 1}, {256, 256}, {384, 384}, {385, 196}, {512, 256}, {1152, 384}, {1153, 292}} {
		if got := kBlock(tc[0]); got != tc[1] {
			t.Errorf("kBlock(%d) = %d, want %d", tc[0], got, tc[1])
		}
	}
}
