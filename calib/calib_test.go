package calib

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// synth returns n logits z ~ N(0, sd²) and labels y ~ Bernoulli(σ(a·z+b)).
func synth(seed uint64, n int, sd, a, b float64) (z, y []float32) {
	rng := rand.New(rand.NewPCG(seed, 1))
	z = make([]float32, n)
	y = make([]float32, n)
	for i := range z {
		z[i] = float32(sd * rng.NormFloat64())
		if rng.Float64() < sigmoid(a*float64(z[i])+b) {
			y[i] = 1
		}
	}
	return z, y
}

// gradient returns the mean gradient of the loss at p, in float64.
func gradient(z, y, w []float32, p Params) (ga, gb float64) {
	var tw float64
	for i := range z {
		wi := 1.0
		if w != nil {
			wi = float64(w[i])
		}
		g := wi * (sigmoid(p.A*float64(z[i])+p.B) - float64(y[i]))
		ga += g * float64(z[i])
		gb += g
		tw += wi
	}
	return ga / tw, gb / tw
}

func mustFit(t *testing.T, z, y, w []float32) Params {
	t.Helper()
	p, err := Fit(z, y, w)
	if err != nil {
		t.Fatalf("Fit: %v", err)
	}
	return p
}

func TestApply(t *testing.T) {
	p := Params{A: 2, B: -1}
	if got, want := p.Apply(0.5), float32(0.5); got != want {
		t.Errorf("Apply(0.5) = %v, want %v", got, want)
	}
	if got, want := p.Logit(3), float32(5); got != want {
		t.Errorf("Logit(3) = %v, want %v", got, want)
	}
	if got, want := Identity.Apply(1), float32(1/(1+math.Exp(-1))); got != want {
		t.Errorf("Identity.Apply(1) = %v, want %v", got, want)
	}
	// Large logits saturate instead of overflowing to NaN.
	if got := Identity.Apply(-1e30); got != 0 {
		t.Errorf("Apply(-1e30) = %v, want 0", got)
	}
	if got := Identity.Apply(1e30); got != 1 {
		t.Errorf("Apply(1e30) = %v, want 1", got)
	}
}

func TestFitRecovers(t *testing.T) {
	const a, b = 0.7, -1.3
	z, y := synth(1, 200_000, 2, a, b)
	p := mustFit(t, z, y, nil)
	if math.Abs(p.A-a) > 0.02 || math.Abs(p.B-b) > 0.02 {
		t.Errorf("Fit = %+v, want A=%v B=%v within 0.02", p, a, b)
	}
	// The fit is the maximum likelihood estimate: the gradient vanishes.
	if ga, gb := gradient(z, y, nil, p); math.Abs(ga) > 1e-9 || math.Abs(gb) > 1e-9 {
		t.Errorf("gradient at fit = (%g, %g), want 0", ga, gb)
	}
}

func TestFitSoftLabels(t *testing.T) {
	// With labels y = σ(a·z+b) the likelihood peaks exactly at (a, b),
	// up to the float32 rounding of the labels.
	const a, b = 1.8, 0.4
	rng := rand.New(rand.NewPCG(2, 2))
	z := make([]float32, 5000)
	y := make([]float32, len(z))
	for i := range z {
		z[i] = float32(3 * rng.NormFloat64())
		y[i] = float32(sigmoid(a*float64(z[i]) + b))
	}
	p := mustFit(t, z, y, nil)
	if math.Abs(p.A-a) > 1e-5 || math.Abs(p.B-b) > 1e-5 {
		t.Errorf("Fit = %+v, want A=%v B=%v within 1e-5", p, a, b)
	}
}

func TestFitWeights(t *testing.T) {
	// Integer weights equal repeated rows.
	z, y := synth(3, 3000, 1.5, 1.2, -0.5)
	w := make([]float32, len(z))
	var zr, yr []float32
	for i := range z {
		w[i] = float32(i%3 + 1)
		for range i%3 + 1 {
			zr = append(zr, z[i])
			yr = append(yr, y[i])
		}
	}
	pw := mustFit(t, z, y, w)
	pr := mustFit(t, zr, yr, nil)
	if math.Abs(pw.A-pr.A) > 1e-9 || math.Abs(pw.B-pr.B) > 1e-9 {
		t.Errorf("weighted %+v, repeated %+v", pw, pr)
	}
	// Weights of 1 are no weights.
	ones := make([]float32, len(z))
	for i := range ones {
		ones[i] = 1
	}
	if p1, p := mustFit(t, z, y, ones), mustFit(t, z, y, nil); p1 != p {
		t.Errorf("unit weights %+v, nil weights %+v", p1, p)
	}
	// Zero weights drop rows.
	w0 := make([]float32, 2*len(z))
	z0 := append(append([]float32(nil), z...), z...)
	y0 := append(append([]float32(nil), y...), y...)
	for i := range z {
		w0[i] = 1
		y0[len(z)+i] = 1 - y0[len(z)+i]
	}
	if p0, p := mustFit(t, z0, y0, w0), mustFit(t, z, y, nil); math.Abs(p0.A-p.A) > 1e-9 || math.Abs(p0.B-p.B) > 1e-9 {
		t.Errorf("zero weights %+v, without the rows %+v", p0, p)
	}
}

func TestFitMinA(t *testing.T) {
	// Logits that rank labels backwards would fit A ≈ -1; the constraint
	// holds A at MinA and fits B alone.
	z, y := synth(4, 20_000, 2, -1, 0.3)
	p := mustFit(t, z, y, nil)
	if p.A != MinA {
		t.Fatalf("A = %v, want %v", p.A, MinA)
	}
	if _, gb := gradient(z, y, nil, p); math.Abs(gb) > 1e-9 {
		t.Errorf("B gradient at fit = %g, want 0", gb)
	}
	// Uninformative constant logits also land on the constraint, with
	// the base rate as prediction.
	zc := make([]float32, len(y))
	for i := range zc {
		zc[i] = 2
	}
	p = mustFit(t, zc, y, nil)
	var rate float64
	for _, v := range y {
		rate += float64(v)
	}
	rate /= float64(len(y))
	if got := float64(p.Apply(2)); math.Abs(got-rate) > 1e-6 || p.A < MinA {
		t.Errorf("constant logits: %+v predicts %v, want A ≥ %v and rate %v", p, got, MinA, rate)
	}
}

func TestFitIdempotent(t *testing.T) {
	z, y := synth(5, 50_000, 1.5, 0.6, 0.8)
	p := mustFit(t, z, y, nil)
	zc := make([]float32, len(z))
	for i := range z {
		zc[i] = p.Logit(z[i])
	}
	q := mustFit(t, zc, y, nil)
	if math.Abs(q.A-1) > 1e-5 || math.Abs(q.B) > 1e-5 {
		t.Errorf("refit of calibrated logits = %+v, want Identity", q)
	}
}

func TestFitSeparable(t *testing.T) {
	// Perfectly separated labels have no finite optimum: Fit returns a
	// steep finite map that still ranks correctly.
	z := []float32{-3, -2, -1, 1, 2, 3}
	y := []float32{0, 0, 0, 1, 1, 1}
	p := mustFit(t, z, y, nil)
	if !(p.A > 5) || math.IsInf(p.A, 0) || math.IsNaN(p.B) {
		t.Errorf("separable fit = %+v, want large finite A", p)
	}
}

func TestFitDeterministic(t *testing.T) {
	// Sums are added in a fixed order whatever the parallelism.
	z, y := synth(6, 3*chunk+17, 1, 0.9, -2)
	p := mustFit(t, z, y, nil)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if q := mustFit(t, z, y, nil); q != p {
		t.Errorf("GOMAXPROCS=1 fit %+v, default %+v", q, p)
	}
}

func TestFitErrors(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name       string
		z, y, w    []float32
		degenerate bool
	}{
		{name: "empty"},
		{name: "label length", z: []float32{1, 2}, y: []float32{1}},
		{name: "weight length", z: []float32{1, 2}, y: []float32{1, 0}, w: []float32{1}},
		{name: "NaN logit", z: []float32{nan, 2}, y: []float32{1, 0}},
		{name: "Inf logit", z: []float32{1, -inf}, y: []float32{1, 0}},
		{name: "NaN label", z: []float32{1, 2}, y: []float32{nan, 0}},
		{name: "label above 1", z: []float32{1, 2}, y: []float32{1.5, 0}},
		{name: "negative label", z: []float32{1, 2}, y: []float32{1, -0.1}},
		{name: "negative weight", z: []float32{1, 2}, y: []float32{1, 0}, w: []float32{1, -1}},
		{name: "NaN weight", z: []float32{1, 2}, y: []float32{1, 0}, w: []float32{nan, 1}},
		{name: "Inf weight", z: []float32{1, 2}, y: []float32{1, 0}, w: []float32{inf, 1}},
		{name: "no positives", z: []float32{1, 2}, y: []float32{0, 0}, degenerate: true},
		{name: "no negatives", z: []float32{1, 2}, y: []float32{1, 1}, degenerate: true},
		{name: "zero weights", z: []float32{1, 2}, y: []float32{1, 0}, w: []float32{0, 0}, degenerate: true},
		{name: "positives weigh 0", z: []float32{1, 2}, y: []float32{1, 0}, w: []float32{0, 1}, degenerate: true},
	}
	for _, tc := range tests {
		_, err := Fit(tc.z, tc.y, tc.w)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if got := errors.Is(err, ErrDegenerate); got != tc.degenerate {
			t.Errorf("%s: error %q matches ErrDegenerate = %v, want %v", tc.name, err, got, tc.degenerate)
		}
	}
}
