package kernels

import (
	"math"
	"math/rand/v2"
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
