package metric

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestReliability(t *testing.T) {
	tests := []struct {
		name string
		p, y []float64
		bins int
		want []ReliabilityBin
	}{
		{
			// Sorted: 0.1/0 0.2/0 | 0.4/1 0.8/0 0.9/1.
			name: "two bins",
			p:    []float64{0.1, 0.4, 0.2, 0.9, 0.8},
			y:    []float64{0, 1, 0, 1, 0},
			bins: 2,
			want: []ReliabilityBin{{2, 0.15, 0}, {3, 0.7, 2.0 / 3}},
		},
		{
			// Cuts at 7·1/3 = 2 and 7·2/3 = 4: counts 2, 2, 3.
			name: "uneven",
			p:    []float64{0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1},
			y:    []float64{1, 1, 0, 1, 0, 0, 0},
			bins: 3,
			want: []ReliabilityBin{{2, 0.15, 0}, {2, 0.35, 0.5}, {3, 0.6, 2.0 / 3}},
		},
		{
			// Ties keep input order, so the two positives fill bin 0.
			name: "ties",
			p:    []float64{0.5, 0.5, 0.5, 0.5},
			y:    []float64{1, 1, 0, 0},
			bins: 2,
			want: []ReliabilityBin{{2, 0.5, 1}, {2, 0.5, 0}},
		},
		{
			name: "more bins than rows",
			p:    []float64{0.3, 0.1},
			y:    []float64{1, 0},
			bins: 5,
			want: []ReliabilityBin{{1, 0.1, 0}, {1, 0.3, 1}},
		},
		{
			name: "one bin, soft labels",
			p:    []float64{0.2, 0.6},
			y:    []float64{0.25, 0.5},
			bins: 1,
			want: []ReliabilityBin{{2, 0.4, 0.375}},
		},
	}
	for _, tc := range tests {
		got, err := Reliability(tc.p, tc.y, tc.bins)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d bins, want %d", tc.name, len(got), len(tc.want))
			continue
		}
		for i, b := range got {
			w := tc.want[i]
			if b.Count != w.Count || !near(b.MeanP, w.MeanP) || !near(b.MeanY, w.MeanY) {
				t.Errorf("%s: bin %d = %+v, want %+v", tc.name, i, b, w)
			}
		}
	}
}

func TestECE(t *testing.T) {
	tests := []struct {
		name string
		p, y []float64
		bins int
		want float64
	}{
		// (2·|0.15−0| + 3·|0.7−2/3|)/5 = (0.3 + 0.1)/5.
		{"two bins", []float64{0.1, 0.4, 0.2, 0.9, 0.8}, []float64{0, 1, 0, 1, 0}, 2, 0.08},
		// (2·0.15 + 2·0.15 + 3·|0.6−2/3|)/7 = 0.8/7.
		{"uneven", []float64{0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1}, []float64{1, 1, 0, 1, 0, 0, 0}, 3, 0.8 / 7},
		{"ties", []float64{0.5, 0.5, 0.5, 0.5}, []float64{1, 1, 0, 0}, 2, 0.5},
		{"ties one bin", []float64{0.5, 0.5, 0.5, 0.5}, []float64{1, 1, 0, 0}, 1, 0},
		{"more bins than rows", []float64{0.3, 0.1}, []float64{1, 0}, 5, 0.4},
		{"calibrated soft labels", []float64{0.1, 0.5, 0.9}, []float64{0.1, 0.5, 0.9}, 3, 0},
	}
	for _, tc := range tests {
		got, err := ECE(tc.p, tc.y, tc.bins)
		if err != nil || !near(got, tc.want) {
			t.Errorf("%s: ECE = %.17g, %v; want %.17g", tc.name, got, err, tc.want)
		}
	}

	// Labels drawn from the predictions give an ECE near 0; predictions
	// off by a constant give that constant.
	rng := rand.New(rand.NewPCG(1, 1))
	p := make([]float64, 100_000)
	y := make([]float64, len(p))
	shifted := make([]float64, len(p))
	for i := range p {
		p[i] = 0.1 + 0.8*rng.Float64()
		if rng.Float64() < p[i] {
			y[i] = 1
		}
		shifted[i] = p[i] - 0.05
	}
	if e, err := ECE(p, y, 10); err != nil || e > 0.01 {
		t.Errorf("calibrated ECE = %v, %v; want below 0.01", e, err)
	}
	if e, err := ECE(shifted, y, 10); err != nil || math.Abs(e-0.05) > 0.01 {
		t.Errorf("shifted ECE = %v, %v; want 0.05 ± 0.01", e, err)
	}
}

func TestCalibrationErrors(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		p, y []float64
		bins int
	}{
		{"empty", nil, nil, 10},
		{"mismatch", []float64{0.5}, []float64{1, 0}, 10},
		{"zero bins", []float64{0.5}, []float64{1}, 0},
		{"negative bins", []float64{0.5}, []float64{1}, -3},
		{"NaN prediction", []float64{nan}, []float64{1}, 1},
		{"NaN label", []float64{0.5}, []float64{nan}, 1},
		{"prediction above 1", []float64{1.5}, []float64{1}, 1},
		{"negative label", []float64{0.5}, []float64{-1}, 1},
		{"infinite prediction", []float64{math.Inf(1)}, []float64{1}, 1},
	}
	for _, tc := range tests {
		if _, err := Reliability(tc.p, tc.y, tc.bins); err == nil {
			t.Errorf("%s: Reliability gave no error", tc.name)
		}
		if got, err := ECE(tc.p, tc.y, tc.bins); err == nil || !math.IsNaN(got) {
			t.Errorf("%s: ECE = %v, %v; want NaN and an error", tc.name, got, err)
		}
	}
}

func TestCalibrationRatio(t *testing.T) {
	tests := []struct {
		name string
		p, y []float64
		want float64
	}{
		{"calibrated", []float64{0.2, 0.3, 0.5}, []float64{1, 0, 0}, 1},
		{"under", []float64{0.4, 0.2}, []float64{1, 1}, 0.3},
		{"over", []float64{0.9, 0.6}, []float64{0, 0.5}, 3},
		{"no positives", []float64{0.1, 0}, []float64{0, 0}, math.Inf(1)},
		{"all zero", []float64{0, 0}, []float64{0, 0}, 1},
		{"empty", nil, nil, 1},
		{"no predicted mass", []float64{0}, []float64{1}, 0},
	}
	for _, tc := range tests {
		if got := CalibrationRatio(tc.p, tc.y); !(got == tc.want || near(got, tc.want)) {
			t.Errorf("%s: CalibrationRatio = %.17g, want %.17g", tc.name, got, tc.want)
		}
	}
	for name, got := range map[string]float64{
		"mismatch":      CalibrationRatio([]float64{0.5}, []float64{1, 0}),
		"NaN":           CalibrationRatio([]float64{math.NaN()}, []float64{1}),
		"infinite":      CalibrationRatio([]float64{0.5}, []float64{math.Inf(1)}),
		"opposite Infs": CalibrationRatio([]float64{math.Inf(1), math.Inf(-1)}, []float64{1, 1}),
	} {
		if !math.IsNaN(got) {
			t.Errorf("%s: CalibrationRatio = %g, want NaN", name, got)
		}
	}
}
