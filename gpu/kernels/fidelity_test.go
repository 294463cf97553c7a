package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tandemml/tandem/kernel"
)

// TestExp32MatchesEngine: the kernels' exp (the reference of tdm_exp32) is
// kernel.Exp32 bit for bit, over the whole range and its edges.
func TestExp32MatchesEngine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	xs := []float32{0, -0, 1, -1, 88.72283, 88.7229, 88.8, -87.3, -103.97, -103.972, -104, -150, 1e-30,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	for range 200000 {
		xs = append(xs, float32(rng.Float64()*200-105))
	}
	for _, x := range xs {
		got, want := exp32(float64(x)), kernel.Exp32(x)
		if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Fatalf("exp32(%v) = %v (%#x), kernel.Exp32 = %v (%#x)", x, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
}

// TestPTXRoundsProducts: the committed PTX has no fused multiply-add (the
// kernels round each product before the add, as the CPU does), no
// approximate math and no flush of subnormals.
func TestPTXRoundsProducts(t *testing.T) {
	for _, bad := range []string{"fma.", "approx", ".ftz"} {
		if strings.Contains(string(PTX()), bad) {
			t.Errorf("the PTX contains %q", bad)
		}
	}
}

// TestTopKStagesShrink: every stage after the first has fewer chunks, the
// last has one, and a chunk under 2k is refused instead of looping.
func TestTopKStagesShrink(t *testing.T) {
	for _, c := range []struct{ n, k, chunk int }{{0, 1, 2}, {1, 1, 2}, {1 << 20, 512, 1024}, {5000, 600, 1200}, {3, 10, 1024}} {
		st := TopKStages(c.n, c.k, c.chunk)
		if st[len(st)-1].Chunks != 1 || st[0].N != c.n {
			t.Errorf("%+v: stages %v", c, st)
		}
		for i := 1; i < len(st); i++ {
			if st[i].N != st[i-1].Chunks*c.k || st[i].Chunks >= st[i-1].Chunks {
				t.Errorf("%+v: stages %v do not shrink", c, st)
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("TopKStages(2048, 600, 1024) did not panic")
		}
	}()
	TopKStages(2048, 600, 1024)
}

// softmaxClose: the engine's Softmax may run in assembly, to the same
// accuracy (3·2⁻²⁴ of the exact value) but not always the same bits.
func softmaxClose(got, want float32) bool {
	g, w := float64(got), float64(want)
	if g != g || w != w {
		return g != g && w != w
	}
	return math.Abs(g-w) <= 6.0/(1<<24)*math.Abs(w)+1e-44
}

// TestRefsMatchEngineKernels checks the references against the CPU
// engine's kernels on random data: softmax rows of every length with NaN,
// infinite and −1e9 entries, the MMoE mix as trunk.go computes it, layer
// norm, the cross combine, ReLU, gathers and top-k.
func TestRefsMatchEngineKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for n := 1; n <= 70; n++ {
		for trial := range 6 {
			row := randFloats(r, n)
			for i := range row {
				row[i] *= 10
			}
			switch trial {
			case 1:
				row[r.IntN(n)] = -1e9
			case 2:
				row[r.IntN(n)] = float32(math.NaN())
			case 3:
				row[r.IntN(n)] = float32(math.Inf(1))
			case 4:
				row[r.IntN(n)] = float32(math.Inf(-1))
			case 5:
				row[r.IntN(n)] = 80
			}
			want := slices.Clone(row)
			kernel.Softmax(want)
			got := slices.Clone(row)
			RefMaskedSoftmax(got, []int32{int32(n)}, 1, n, 1)
			for i := range want {
				if !softmaxClose(got[i], want[i]) {
					t.Fatalf("n %d trial %d: softmax[%d] = %v, kernel.Softmax %v", n, trial, i, got[i], want[i])
				}
			}
		}
	}

	// MMoE: trunk.go's loop over kernel.Softmax weights.
	const rows, ne, w = 6, 5, 7
	logits, experts := randFloats(r, rows*ne), randFloats(r, ne*rows*w)
	h := make([]float32, rows*w)
	RefMMoECombine(h, logits, experts, rows, ne, w, w, w, rows*w)
	for row := range rows {
		a := slices.Clone(logits[row*ne : (row+1)*ne])
		kernel.Softmax(a)
		for c := range w {
			var s float32
			for i := range ne {
				s += a[i] * experts[i*rows*w+row*w+c]
			}
			if d := math.Abs(float64(s - h[row*w+c])); d > 1e-6 {
				t.Fatalf("mmoe[%d,%d] = %v, engine %v", row, c, h[row*w+c], s)
			}
		}
	}

	// Layer norm after the residual add, within one float32 rounding.
	const ln = 33
	y, x := randFloats(r, 20*ln), randFloats(r, 20*ln)
	g, b := randFloats(r, ln), randFloats(r, ln)
	got := slices.Clone(y)
	RefAddLayerNorm(got, x, g, b, 20, ln, 1e-5)
	kernel.Add(y, x)
	kernel.LayerNorm(y, y, ln, g, b, 1e-5)
	for i := range y {
		if d := math.Abs(float64(got[i] - y[i])); d > 1.0/(1<<23)*math.Max(1, math.Abs(float64(y[i]))) {
			t.Fatalf("layer norm[%d] = %v, kernel.LayerNorm %v", i, got[i], y[i])
		}
	}

	// Cross combine and ReLU: exact.
	hh, x0, xx := randFloats(r, 40), randFloats(r, 40), randFloats(r, 40)
	want := make([]float32, 40)
	kernel.Cross(want, x0, hh, xx)
	RefCrossCombine(hh, x0, xx, 4, 10, 10, 10, 10)
	relu := slices.Clone(xx)
	relu[0] = float32(math.Copysign(0, -1))
	relu[1] = float32(math.NaN())
	gotR := make([]float32, 40)
	RefCopyCols(gotR, relu, 4, 10, 10, 10, true)
	kernel.ReLU(relu)
	for i := range want {
		if math.Float32bits(hh[i]) != math.Float32bits(want[i]) {
			t.Fatalf("cross[%d] = %v, kernel.Cross %v", i, hh[i], want[i])
		}
		if math.Float32bits(gotR[i]) != math.Float32bits(relu[i]) && !(gotR[i] != gotR[i] && relu[i] != relu[i]) {
			t.Fatalf("relu[%d] = %v, kernel.ReLU %v", i, gotR[i], relu[i])
		}
	}

	// Gather: one field is kernel.Gather over its table.
	table := randFloats(r, 9*4)
	codes := randInts(r, 12, 9)
	gd, wd := make([]float32, 12*4), make([]float32, 12*4)
	RefEmbedGather(gd, codes, table, []int32{0}, 12, 1, 4, 4, 1)
	kernel.Gather(wd, 4, table, 4, codes)
	if !slices.Equal(gd, wd) {
		t.Fatal("RefEmbedGather differs from kernel.Gather")
	}

	// Top-k over one chunk is kernel.TopK (ties by the smaller index, NaN
	// never selected), padded with (−inf, −1).
	for _, k := range []int{1, 7, 100, 300} {
		sc := randFloats(r, 200)
		for i := 0; i < len(sc); i += 9 {
			sc[i] = 0.5
		}
		sc[3] = float32(math.NaN())
		ov, oi := make([]float32, k), make([]int32, k)
		RefTopK(ov, oi, sc, nil, nil, 1, len(sc), len(sc), 0, len(sc), k, k)
		ids := kernel.TopK(nil, sc, k)
		for j := range k {
			wantID, wantV := int32(-1), float32(math.Inf(-1))
			if j < len(ids) {
				wantID, wantV = ids[j], sc[ids[j]]
			}
			if oi[j] != wantID || ov[j] != wantV {
				t.Fatalf("k %d rank %d: (%v, %d), kernel.TopK (%v, %d)", k, j, ov[j], oi[j], wantV, wantID)
			}
		}
	}
}
