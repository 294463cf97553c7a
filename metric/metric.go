package metric

import (
	"cmp"
	"math"
	"slices"
)

// MinProb is the clip bound of probabilities in log loss: p is clipped to
// [MinProb, 1-MinProb] so that a confident miss costs about 34.5 nats
// instead of infinity.
const MinProb = 1e-15

// bce returns the binary cross-entropy of predicting p for label y
// (nonzero y is a positive), with p clipped to [MinProb, 1-MinProb]. The
// clip is applied to the probability of the observed label, so that
// confident misses cost the same for either label.
func bce(p float64, y int8) float64 {
	if y != 0 {
		return -math.Log(min(max(p, MinProb), 1-MinProb))
	}
	if p >= 0.5 { // 1-p is exact here
		return -math.Log(max(1-p, MinProb))
	}
	return -math.Log1p(-max(p, MinProb))
}

// LogLoss returns the mean binary cross-entropy of predictions p for labels
// y, in nats, with p clipped to [MinProb, 1-MinProb]. A label is positive
// when nonzero. It returns NaN when p and y differ in length, are empty, or
// p holds a NaN.
func LogLoss(p []float64, y []int8) float64 {
	if len(p) != len(y) || len(p) == 0 {
		return math.NaN()
	}
	var acc LogLossAcc
	for i := range p {
		acc.Add(p[i], y[i])
	}
	return acc.LogLoss()
}

// AUC returns the area under the ROC curve of scores for labels y: the
// probability that a random positive scores above a random negative, a tie
// counting 1/2. A label is positive when nonzero. It returns NaN when score
// and y differ in length, when either class is absent, or when a score is
// NaN.
func AUC(score []float64, y []int8) float64 {
	if len(score) != len(y) {
		return math.NaN()
	}
	type scored struct {
		s   float64
		pos bool
	}
	xs := make([]scored, len(score))
	for i, s := range score {
		if math.IsNaN(s) {
			return math.NaN()
		}
		xs[i] = scored{s, y[i] != 0}
	}
	slices.SortFunc(xs, func(a, b scored) int { return cmp.Compare(a.s, b.s) })
	// Walk groups of tied scores from the lowest: each positive in a group
	// beats every negative below it and ties with the group's negatives.
	var pairs, negBelow, pos float64
	for i := 0; i < len(xs); {
		j := i
		var gPos, gNeg float64
		for ; j < len(xs) && xs[j].s == xs[i].s; j++ {
			if xs[j].pos {
				gPos++
			} else {
				gNeg++
			}
		}
		pairs += gPos * (negBelow + gNeg/2)
		negBelow += gNeg
		pos += gPos
		i = j
	}
	if pos == 0 || negBelow == 0 {
		return math.NaN()
	}
	return pairs / (pos * negBelow)
}

// LogLossAcc accumulates log loss over a stream of predictions. The zero
// value is an empty accumulator.
type LogLossAcc struct {
	n, pos  int64
	sumLoss float64
	sumP    float64
}

// Add adds prediction p for label y (positive when nonzero).
func (a *LogLossAcc) Add(p float64, y int8) {
	a.n++
	if y != 0 {
		a.pos++
	}
	a.sumLoss += bce(p, y)
	a.sumP += p
}

// Merge adds every prediction of b to a, for accumulators filled in
// parallel.
func (a *LogLossAcc) Merge(b *LogLossAcc) {
	a.n += b.n
	a.pos += b.pos
	a.sumLoss += b.sumLoss
	a.sumP += b.sumP
}

// Count returns the number of predictions added.
func (a *LogLossAcc) Count() int64 { return a.n }

// Positives returns the number of positive labels added.
func (a *LogLossAcc) Positives() int64 { return a.pos }

// LogLoss returns the mean binary cross-entropy in nats, NaN when empty.
func (a *LogLossAcc) LogLoss() float64 {
	if a.n == 0 {
		return math.NaN()
	}
	return a.sumLoss / float64(a.n)
}

// BaseLogLoss returns the log loss of always predicting the empirical
// positive rate r: the entropy -r ln r - (1-r) ln(1-r), 0 when all labels
// agree, NaN when empty.
func (a *LogLossAcc) BaseLogLoss() float64 {
	if a.n == 0 {
		return math.NaN()
	}
	r := float64(a.pos) / float64(a.n)
	var h float64
	if r > 0 {
		h -= r * math.Log(r)
	}
	if r < 1 {
		h -= (1 - r) * math.Log1p(-r)
	}
	return h
}

// NormalizedEntropy returns LogLoss / BaseLogLoss: below 1 when the
// predictions beat the base rate. It is NaN when empty and +Inf when the
// base log loss is 0 (all labels agree) but the log loss is not.
func (a *LogLossAcc) NormalizedEntropy() float64 {
	return a.LogLoss() / a.BaseLogLoss()
}

// Calibration returns the mean prediction over the mean label: 1 for a
// calibrated model. It is NaN when empty and +Inf when there are no
// positives but some prediction is positive.
func (a *LogLossAcc) Calibration() float64 {
	if a.n == 0 {
		return math.NaN()
	}
	return a.sumP / float64(a.pos)
}

// CrossEntropy returns the expected log loss, in nats, of predicting q for
// a label that is 1 with probability p: p·BCE(q, 1) + (1−p)·BCE(q, 0), with
// q clipped like LogLoss. CrossEntropy(p, p) is the entropy of p.
func CrossEntropy(p, q float64) float64 {
	return p*bce(q, 1) + (1-p)*bce(q, 0)
}
