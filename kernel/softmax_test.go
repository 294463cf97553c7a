package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// ulpsOff is |got − want| in units of 2⁻²⁴·|want|, the unit of closeRel.
func ulpsOff(got float32, want float64) float64 {
	if want == 0 {
		if got == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return math.Abs(float64(got)-want) / (0x1p-24 * math.Abs(want))
}

// softmaxRow builds a test row of width n of the given kind.
//
//   - random: uniform in ±scale;
//   - masked: random, with about a third of the entries −1e9 or −Inf;
//   - negative: all far below zero (around −1e6 and −3e4), spread over
//     more than the underflow range;
//   - mixed: a large maximum (up to 1e4) with entries at every distance
//     below it: ties, about −17 (where a float32 difference would lose
//     accuracy), near and past the subnormal and underflow limits,
//     −1e9, −3e38 and −Inf.
func softmaxRow(r *rand.Rand, kind string, n int, scale float64) []float32 {
	x := randVec(r, n, scale)
	switch kind {
	case "masked":
		live := r.IntN(n)
		for i := range x {
			if i != live && r.IntN(3) == 0 {
				x[i] = []float32{-1e9, float32(math.Inf(-1))}[r.IntN(2)]
			}
		}
	case "negative":
		base := []float64{-1e6, -3e4}[r.IntN(2)]
		for i := range x {
			x[i] = float32(base - 130*r.Float64())
		}
	case "mixed":
		m := float32((2*r.Float64() - 1) * 1e4)
		top := r.IntN(n)
		for i := range x {
			var d float64
			switch r.IntN(8) {
			case 0:
				d = 0
			case 1:
				d = 17 + r.Float64()
			case 2:
				d = 80 + 24*r.Float64() // subnormal results and 0
			case 3:
				d = 103.9 + 0.2*r.Float64() // around the underflow limit
			case 4:
				d = 1e9
			case 5:
				d = 3e38
			case 6:
				d = math.Inf(1)
			default:
				d = 30 * r.Float64()
			}
			x[i] = float32(float64(m) - d)
			if x[i] > m {
				x[i] = m
			}
		}
		x[top] = m
	}
	return x
}

// checkSoftmax checks a Softmax result against the float64 reference:
// within 3 ulps, and exactly +0 wherever the entry is 1e9 or more below the
// maximum (a masked entry). It returns the worst error in ulps.
func checkSoftmax(t *testing.T, what string, x, got []float32) float64 {
	t.Helper()
	want := refSoftmax(x)
	m := slices.Max(x)
	worst := 0.0
	var sum float64
	for i, v := range got {
		if float64(x[i]) <= float64(m)-1e9 && math.Float32bits(v) != 0 {
			t.Fatalf("%s: masked x[%d]=%g gave %g, want exactly +0", what, i, x[i], v)
		}
		if !closeRel(v, want[i], 3) {
			t.Fatalf("%s: x[%d]=%g gave %g, want %g (%.2f ulps)", what, i, x[i], v, want[i], ulpsOff(v, want[i]))
		}
		if want[i] > 1e-30 {
			worst = max(worst, ulpsOff(v, want[i]))
		}
		sum += float64(v)
	}
	if math.Abs(sum-1) > 1e-6 {
		t.Fatalf("%s: sum %g", what, sum)
	}
	return worst
}

// TestSoftmaxPaths runs both Softmax paths, the assembly and the pure-Go
// one, on every width from 1 to 70 and rows of several kinds, and checks
// each against the float64 reference. The two paths need not give the
// same bits (their float64 sums add in different orders and the assembly
// fuses multiply-adds) but both must be within 3 ulps.
func TestSoftmaxPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	worst := map[bool]float64{}
	differ, total, far := 0, 0, int64(0)
	for n := 1; n <= 70; n++ {
		for _, kind := range []string{"random", "masked", "negative", "mixed"} {
			for _, scale := range []float64{0.1, 3, 50} {
				for range 3 {
					x := softmaxRow(r, kind, n, scale)
					var res [2][]float32
					for _, asm := range modes() {
						setAsm(t, asm)
						got := slices.Clone(x)
						Softmax(got)
						what := fmt.Sprintf("%s n=%d %s scale=%g", modeName(asm), n, kind, scale)
						worst[asm] = max(worst[asm], checkSoftmax(t, what, x, got))
						if asm {
							res[1] = got
						} else {
							res[0] = got
						}
					}
					if res[1] != nil {
						for i := range x {
							total++
							if d := int64(math.Float32bits(res[0][i])) - int64(math.Float32bits(res[1][i])); d != 0 {
								differ++
								far = max(far, d, -d)
							}
						}
					}
				}
			}
		}
	}
	for _, asm := range modes() {
		t.Logf("%s: worst error %.3f ulps", modeName(asm), worst[asm])
	}
	if hasAsm {
		t.Logf("assembly and Go differ in %d of %d entries, by at most %d units in the last place", differ, total, far)
	}
}

// TestSoftmaxExpRange sweeps x − m over the whole range where the weight
// is not 0, beyond it, and with a large maximum, on both paths.
func TestSoftmaxExpRange(t *testing.T) {
	for _, asm := range modes() {
		setAsm(t, asm)
		worst := 0.0
		for _, m := range []float32{0, 1, -37.25, 5000.5, -1e4} {
			const w = 29 // 3 full blocks and a tail of 5, the maximum first
			x := make([]float32, w)
			for d := 0.0; d < 106; {
				x[0] = m
				for i := 1; i < w; i++ {
					x[i] = float32(float64(m) - d)
					d += 0.000613
				}
				got := slices.Clone(x)
				Softmax(got)
				worst = max(worst, checkSoftmax(t, fmt.Sprintf("%s m=%g", modeName(asm), m), x, got))
			}
		}
		t.Logf("%s: worst error %.3f ulps", modeName(asm), worst)
	}
}

// TestSoftmaxSpecialPaths puts a NaN or an infinity at every position of
// rows of every width up to 70, in a full block or in the tail, on both
// paths.
func TestSoftmaxSpecialPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	inf := float32(math.Inf(1))
	for _, asm := range modes() {
		setAsm(t, asm)
		for n := 1; n <= 70; n++ {
			for at := range n {
				x := randVec(r, n, 5)
				x[at] = float32(math.NaN())
				Softmax(x)
				for i, v := range x {
					if !isNaN32(v) {
						t.Fatalf("%s n=%d NaN at %d: x[%d]=%g", modeName(asm), n, at, i, v)
					}
				}

				x = randVec(r, n, 5)
				x[at] = inf
				x[n-1-at] = inf
				Softmax(x)
				w := float32(1.0 / 2)
				if at == n-1-at {
					w = 1
				}
				for i, v := range x {
					want := float32(0)
					if i == at || i == n-1-at {
						want = w
					}
					if !same(v, want) {
						t.Fatalf("%s n=%d +Inf at %d: x[%d]=%g want %g", modeName(asm), n, at, i, v, want)
					}
				}

				x = make([]float32, n)
				for i := range x {
					x[i] = -inf
				}
				x[at] = -1e9
				Softmax(x)
				for i, v := range x {
					if want := float32(0); i == at {
						want = 1
						if !same(v, want) {
							t.Fatalf("%s n=%d: x[%d]=%g want 1", modeName(asm), n, i, v)
						}
					} else if !same(v, want) {
						t.Fatalf("%s n=%d: −Inf x[%d]=%g want +0", modeName(asm), n, i, v)
					}
				}
			}
			x := make([]float32, n)
			for i := range x {
				x[i] = -inf
			}
			Softmax(x)
			for i, v := range x {
				if !same(v, float32(1/float64(n))) {
					t.Fatalf("%s n=%d all −Inf: x[%d]=%g", modeName(asm), n, i, v)
				}
			}
		}
	}
}

// TestSoftmaxRowIndependent checks that a row's result has the same bits
// at every offset within a cache line and whatever lies around it, on
// both paths.
func TestSoftmaxRowIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	for _, asm := range modes() {
		setAsm(t, asm)
		for n := 1; n <= 70; n++ {
			for _, kind := range []string{"random", "mixed"} {
				x := softmaxRow(r, kind, n, 10)
				want := slices.Clone(x)
				Softmax(want)
				for off := range 16 {
					for _, fill := range []float32{float32(math.NaN()), float32(math.Inf(1)), 1e30, 0} {
						buf := make([]float32, off+n+9)
						for i := range buf {
							buf[i] = fill
						}
						row := buf[off : off+n : off+n]
						copy(row, x)
						Softmax(row)
						if !slices.EqualFunc(row, want, same) {
							t.Fatalf("%s n=%d %s at offset %d: %v, alone %v", modeName(asm), n, kind, off, row, want)
						}
						for i, v := range buf {
							if (i < off || i >= off+n) && !same(v, fill) {
								t.Fatalf("%s n=%d: cell %d outside the row written", modeName(asm), n, i-off)
							}
						}
					}
				}
			}
		}
	}
}

func TestSoftmaxAllocs(t *testing.T) {
	x := randVec(rand.New(rand.NewPCG(37, 38)), 33, 3)
	for _, asm := range modes() {
		setAsm(t, asm)
		if a := testing.AllocsPerRun(20, func() { Softmax(x) }); a != 0 {
			t.Fatalf("%s: %g allocations per call", modeName(asm), a)
		}
	}
}
