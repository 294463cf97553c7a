package metric

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// ReliabilityBin is one bin of a reliability diagram: Count predictions
// whose mean is MeanP, with mean label MeanY.
type ReliabilityBin struct {
	Count        int
	MeanP, MeanY float64
}

// Reliability returns the equal-mass reliability bins of predictions p for
// labels y, both in [0, 1] (soft labels allowed). The predictions are
// sorted by a stable sort, so tied predictions keep their input order, and
// cut into min(bins, len(p)) runs whose counts differ by at most one; bin
// b holds sorted positions [b·N/bins, (b+1)·N/bins). It is an error when p
// and y differ in length or are empty, when bins < 1, or when a value is
// NaN or outside [0, 1].
func Reliability(p, y []float64, bins int) ([]ReliabilityBin, error) {
	if len(p) != len(y) {
		return nil, fmt.Errorf("metric: %d predictions but %d labels", len(p), len(y))
	}
	if len(p) == 0 {
		return nil, errors.New("metric: no predictions")
	}
	if bins < 1 {
		return nil, fmt.Errorf("metric: %d bins, want at least 1", bins)
	}
	type pair struct{ p, y float64 }
	xs := make([]pair, len(p))
	for i := range p {
		if !(p[i] >= 0 && p[i] <= 1) {
			return nil, fmt.Errorf("metric: prediction %d is %v, outside [0, 1]", i, p[i])
		}
		if !(y[i] >= 0 && y[i] <= 1) {
			return nil, fmt.Errorf("metric: label %d is %v, outside [0, 1]", i, y[i])
		}
		xs[i] = pair{p[i], y[i]}
	}
	slices.SortStableFunc(xs, func(a, b pair) int { return cmp.Compare(a.p, b.p) })
	n := int64(len(xs))
	bins = int(min(int64(bins), n))
	out := make([]ReliabilityBin, bins)
	for b := range out {
		lo := int(int64(b) * n / int64(bins))
		hi := int(int64(b+1) * n / int64(bins))
		var sp, sy float64
		for _, x := range xs[lo:hi] {
			sp += x.p
			sy += x.y
		}
		c := float64(hi - lo)
		out[b] = ReliabilityBin{Count: hi - lo, MeanP: sp / c, MeanY: sy / c}
	}
	return out, nil
}

// ECE returns the expected calibration error of predictions p for labels
// y over the equal-mass bins of Reliability: Σ_b (n_b/N)·|MeanP_b − MeanY_b|.
// It is 0 for a model calibrated within every bin. Its errors are those of
// Reliability.
func ECE(p, y []float64, bins int) (float64, error) {
	rb, err := Reliability(p, y, bins)
	if err != nil {
		return math.NaN(), err
	}
	var e float64
	for _, b := range rb {
		e += float64(b.Count) * math.Abs(b.MeanP-b.MeanY)
	}
	return e / float64(len(p)), nil
}

// CalibrationRatio returns Σp/Σy, the ratio of predicted to observed
// positives: 1 for a model calibrated on the whole, above 1 when it
// over-predicts. It is 1 when both sums are 0 and +Inf when only Σy is 0.
// Its only NaN is for invalid input: p and y differ in length or hold a
// NaN or an infinity.
func CalibrationRatio(p, y []float64) float64 {
	if len(p) != len(y) {
		return math.NaN()
	}
	var sp, sy float64
	for i := range p {
		sp += p[i]
		sy += y[i]
	}
	switch {
	case math.IsNaN(sp) || math.IsNaN(sy) || math.IsInf(sp, 0) || math.IsInf(sy, 0):
		return math.NaN()
	case sy == 0 && sp == 0:
		return 1
	}
	return sp / sy
}
