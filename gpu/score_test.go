package gpu

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/kernel"
)

// cpuLogits is the CPU path's z: Run's u_t · the snapshot's a_t + β_t.
func cpuLogits(t *testing.T, m *engine.L1User, b *engine.Batch, vec []float32, ctx, ads []int32) []float32 {
	t.Helper()
	nt, od := len(m.Tasks), m.OutDim
	u := make([]float32, b.U*nt*od)
	if err := m.Run(engine.NewWorker(), b, u); err != nil {
		t.Fatal(err)
	}
	z := make([]float32, len(ads)*nt)
	var d [1]float32
	for i := range ads {
		for k := range nt {
			if m.HasTask(k) {
				kernel.Dots(d[:], u[(int(ctx[i])*nt+k)*od:][:od], vec[(int(ads[i])*nt+k)*od:][:od], od)
				z[i*nt+k] = d[0] + m.Beta(k)
			}
		}
	}
	return z
}

// TestScoreMatchesCPU: scoring given candidates on the device (the tower
// and the dot products in one lane visit) gives the CPU path's logits,
// over contexts spanning two chunks, pairs in any order, growing buffers.
func TestScoreMatchesCPU(t *testing.T) {
	c := loadCatalog(t)
	for _, o := range []Options{{}, {NoGraphs: true}} {
		d, sl := open(t, o)
		stale0 := sl.Stale() // the stand-in library is shared by the package's tests
		for _, r := range c.Routes {
			tw, err := d.NewUserTower(r.User)
			if err != nil {
				t.Fatal(err)
			}
			vec := RouteVectors(c, r)
			nt := len(c.Tasks)
			av, err := d.NewAdVectors(vec, len(c.AdIDs), nt, c.OutDim)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			for _, pairs := range []int{0, 1, 37, 3000} {
				b := engine.RandomBatch(r.User.Dims(), 7, 0, false, uint64(pairs)+1) // buckets {1, 4}: two chunks
				ctx, ads := make([]int32, pairs), make([]int32, pairs)
				for i := range pairs {
					ctx[i], ads[i] = int32(rng.IntN(b.U)), int32(rng.IntN(len(c.AdIDs)))
				}
				got := make([]float32, pairs*nt)
				if err := tw.Score(b, av, ctx, ads, got); err != nil {
					t.Fatal(err)
				}
				want := cpuLogits(t, r.User, b, vec, ctx, ads)
				if pairs > 0 {
					closeTo(t, "route "+r.Name+" z", got, want, 1e-5)
				}
			}
			av.Close()
			tw.Close()
		}
		if n := sl.Stale() - stale0; n != 0 {
			t.Errorf("%d launches referenced freed memory", n)
		}
	}
}

// TestScoreBadInput: every malformed argument is an error naming it, and
// closed vectors refuse to score.
func TestScoreBadInput(t *testing.T) {
	c := loadCatalog(t)
	d, _ := open(t, Options{})
	r := c.Routes[0]
	tw, err := d.NewUserTower(r.User)
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	nt, od := len(c.Tasks), c.OutDim
	av, err := d.NewAdVectors(RouteVectors(c, r), len(c.AdIDs), nt, od)
	if err != nil {
		t.Fatal(err)
	}
	b := engine.RandomBatch(r.User.Dims(), 3, 0, false, 5)
	z := make([]float32, 2*nt)
	for _, tc := range []struct {
		name     string
		ctx, ads []int32
		z        []float32
		want     string
	}{
		{"ctx out of range", []int32{0, 3}, []int32{0, 1}, z, "ctx[1] = 3"},
		{"negative ad", []int32{0, 1}, []int32{-1, 1}, z, "ads[0] = -1"},
		{"unknown ad", []int32{0, 1}, []int32{0, int32(len(c.AdIDs))}, z, "ads[1]"},
		{"lengths", []int32{0}, []int32{0, 1}, z, "1 contexts for 2 ads"},
		{"short output", []int32{0, 1}, []int32{0, 1}, z[:1], "output buffer"},
	} {
		err := tw.Score(b, av, tc.ctx, tc.ads, tc.z)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	bad := *b
	bad.UserDense = append([]float32(nil), b.UserDense...)
	if len(bad.UserDense) > 0 {
		bad.UserDense[0] = float32(math.NaN())
		if err := tw.Score(&bad, av, []int32{0}, []int32{0}, z); err == nil {
			t.Error("a NaN input was scored")
		}
	}
	other, err := d.NewAdVectors(make([]float32, 4*nt*(od+1)), 4, nt, od+1)
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Score(b, other, []int32{0}, []int32{0}, z); err == nil || !strings.Contains(err.Error(), "tasks") {
		t.Errorf("mismatched vector width: %v", err)
	}
	other.Close()
	if _, err := d.NewAdVectors(make([]float32, 5), 2, 1, 2); err == nil {
		t.Error("a wrong vector count was uploaded")
	}
	nan := make([]float32, 2*nt*od)
	nan[3] = float32(math.NaN())
	if _, err := d.NewAdVectors(nan, 2, nt, od); err == nil || !strings.Contains(err.Error(), "ad 0") {
		t.Errorf("NaN vectors: %v", err)
	}
	av.Close()
	if err := tw.Score(b, av, []int32{0}, []int32{0}, z); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("closed vectors: %v", err)
	}
}
