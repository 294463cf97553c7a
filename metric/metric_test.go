package metric

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

func TestLogLoss(t *testing.T) {
	tests := []struct {
		name string
		p    []float64
		y    []int8
		want float64
	}{
		{"two", []float64{0.9, 0.2}, []int8{1, 0}, (-math.Log(0.9) - math.Log(0.8)) / 2},
		{"hand", []float64{0.5}, []int8{0}, 0.6931471805599453},
		{"clip low", []float64{0}, []int8{1}, 34.538776394910684},
		{"clip high", []float64{1}, []int8{0}, 34.538776394910684},
		{"below zero", []float64{-3}, []int8{1}, 34.538776394910684},
		{"nonzero label", []float64{0.25}, []int8{7}, math.Log(4)},
	}
	for _, tc := range tests {
		if got := LogLoss(tc.p, tc.y); !near(got, tc.want) {
			t.Errorf("%s: LogLoss = %.17g, want %.17g", tc.name, got, tc.want)
		}
	}
	if got := LogLoss([]float64{1, 0}, []int8{1, 0}); !(got > 0 && got < 2e-15) {
		t.Errorf("perfect LogLoss = %g, want tiny positive", got)
	}
	for name, got := range map[string]float64{
		"empty":    LogLoss(nil, nil),
		"mismatch": LogLoss([]float64{0.5}, []int8{1, 0}),
		"NaN":      LogLoss([]float64{math.NaN()}, []int8{1}),
	} {
		if !math.IsNaN(got) {
			t.Errorf("%s: LogLoss = %g, want NaN", name, got)
		}
	}
}

func TestAUC(t *testing.T) {
	tests := []struct {
		name  string
		score []float64
		y     []int8
		want  float64
	}{
		{"sklearn", []float64{0.1, 0.4, 0.35, 0.8}, []int8{0, 0, 1, 1}, 0.75},
		{"perfect", []float64{1, 2, 3}, []int8{0, 1, 1}, 1},
		{"reversed", []float64{3, 2, 1}, []int8{0, 1, 1}, 0},
		{"all tied", []float64{0.5, 0.5, 0.5}, []int8{1, 0, 0}, 0.5},
		{"some tied", []float64{0.1, 0.5, 0.5, 0.9}, []int8{0, 1, 0, 1}, 0.875},
		{"infinities", []float64{math.Inf(-1), math.Inf(1), math.Inf(1)}, []int8{0, 1, 0}, 0.75},
	}
	for _, tc := range tests {
		if got := AUC(tc.score, tc.y); !near(got, tc.want) {
			t.Errorf("%s: AUC = %g, want %g", tc.name, got, tc.want)
		}
	}
	for name, got := range map[string]float64{
		"empty":     AUC(nil, nil),
		"positives": AUC([]float64{1, 2}, []int8{1, 1}),
		"negatives": AUC([]float64{1, 2}, []int8{0, 0}),
		"mismatch":  AUC([]float64{1, 2}, []int8{0}),
		"NaN":       AUC([]float64{1, math.NaN()}, []int8{0, 1}),
	} {
		if !math.IsNaN(got) {
			t.Errorf("%s: AUC = %g, want NaN", name, got)
		}
	}
}

// bruteAUC compares every positive with every negative.
func bruteAUC(score []float64, y []int8) float64 {
	var pairs, n float64
	for i := range score {
		for j := range score {
			if y[i] == 0 || y[j] != 0 {
				continue
			}
			n++
			switch {
			case score[i] > score[j]:
				pairs++
			case score[i] == score[j]:
				pairs += 0.5
			}
		}
	}
	return pairs / n
}

func TestAUCBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 200 {
		n := 2 + rng.IntN(60)
		score := make([]float64, n)
		y := make([]int8, n)
		levels := 1 + rng.IntN(10) // few levels: many ties
		for i := range n {
			score[i] = float64(rng.IntN(levels))
			if rng.IntN(2) == 0 {
				y[i] = 1
			}
		}
		y[0], y[1] = 0, 1
		got, want := AUC(score, y), bruteAUC(score, y)
		if !near(got, want) {
			t.Fatalf("trial %d: AUC = %g, brute force %g", trial, got, want)
		}
		// AUC of the negated scores is the complement.
		neg := make([]float64, n)
		for i, s := range score {
			neg[i] = -s
		}
		if c := AUC(neg, y); !near(c, 1-got) {
			t.Fatalf("trial %d: AUC(-score) = %g, want %g", trial, c, 1-got)
		}
	}
}

func TestLogLossAcc(t *testing.T) {
	var a LogLossAcc
	for _, v := range []float64{a.LogLoss(), a.BaseLogLoss(), a.NormalizedEntropy(), a.Calibration()} {
		if !math.IsNaN(v) {
			t.Errorf("empty accumulator gave %g, want NaN", v)
		}
	}
	p := []float64{0.9, 0.2, 0.4, 0.7}
	y := []int8{1, 0, 0, 0}
	for i := range p {
		a.Add(p[i], y[i])
	}
	if a.Count() != 4 || a.Positives() != 1 {
		t.Errorf("Count, Positives = %d, %d; want 4, 1", a.Count(), a.Positives())
	}
	if got, want := a.LogLoss(), LogLoss(p, y); !near(got, want) {
		t.Errorf("LogLoss = %g, want %g", got, want)
	}
	const h = 0.5623351446188083 // -(1/4 ln 1/4 + 3/4 ln 3/4)
	if got := a.BaseLogLoss(); !near(got, h) {
		t.Errorf("BaseLogLoss = %.17g, want %.17g", got, h)
	}
	if got := a.NormalizedEntropy(); !near(got, a.LogLoss()/h) {
		t.Errorf("NormalizedEntropy = %g", got)
	}
	if got := a.Calibration(); !near(got, 2.2/1) {
		t.Errorf("Calibration = %g, want 2.2", got)
	}

	// Predicting the base rate gives the base log loss.
	var b LogLossAcc
	for _, l := range y {
		b.Add(0.25, l)
	}
	if !near(b.LogLoss(), b.BaseLogLoss()) || !near(b.NormalizedEntropy(), 1) || !near(b.Calibration(), 1) {
		t.Errorf("base-rate predictor: LogLoss %g, BaseLogLoss %g, Calibration %g", b.LogLoss(), b.BaseLogLoss(), b.Calibration())
	}

	// Merge equals adding everything to one accumulator.
	var m LogLossAcc
	m.Merge(&a)
	m.Merge(&b)
	var all LogLossAcc
	for i := range p {
		all.Add(p[i], y[i])
		all.Add(0.25, y[i])
	}
	if m.Count() != all.Count() || m.Positives() != all.Positives() || !near(m.LogLoss(), all.LogLoss()) {
		t.Errorf("Merge: %+v, want %+v", m, all)
	}

	// One class only: the base log loss is 0.
	var c LogLossAcc
	c.Add(0.3, 0)
	c.Add(0.1, 0)
	if c.BaseLogLoss() != 0 || !math.IsInf(c.NormalizedEntropy(), 1) || !math.IsInf(c.Calibration(), 1) {
		t.Errorf("all negative: BaseLogLoss %g, NE %g, Calibration %g", c.BaseLogLoss(), c.NormalizedEntropy(), c.Calibration())
	}
	var d LogLossAcc
	d.Add(0.3, 1)
	if d.BaseLogLoss() != 0 {
		t.Errorf("all positive: BaseLogLoss = %g, want 0", d.BaseLogLoss())
	}
}

func BenchmarkAUC(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	n := 1 << 20
	score := make([]float64, n)
	y := make([]int8, n)
	for i := range n {
		score[i] = rng.Float64()
		y[i] = int8(rng.IntN(2))
	}
	b.ResetTimer()
	for range b.N {
		AUC(score, y)
	}
}

func TestCrossEntropy(t *testing.T) {
	for _, c := range []struct{ p, q, want float64 }{
		{1, 0.25, math.Log(4)},
		{0, 0.25, -math.Log(0.75)},
		{0.5, 0.5, math.Log(2)},
		{0.3, 0.3, -(0.3*math.Log(0.3) + 0.7*math.Log(0.7))},
	} {
		if got := CrossEntropy(c.p, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("CrossEntropy(%v, %v) = %v, want %v", c.p, c.q, got, c.want)
		}
	}
	// Gibbs: the true probability is the best prediction.
	if CrossEntropy(0.2, 0.2) >= CrossEntropy(0.2, 0.25) {
		t.Error("CrossEntropy(p, p) is not below CrossEntropy(p, q)")
	}
}
