// Package metric computes tandem's evaluation metrics in float64.
//
// # Labels
//
// Labels are int8 as in the impressions table; a nonzero label is a
// positive. Predictions are probabilities of the positive label.
//
// # Log loss
//
// [LogLoss] is the mean binary cross-entropy in nats, with predictions
// clipped to [MinProb, 1-MinProb] so that a single confident miss costs a
// finite 34.5 nats. [LogLossAcc] computes the same over a stream, together
// with the count of predictions and positives, the base log loss (the log
// loss of always predicting the empirical positive rate, that is the
// entropy of the labels), the normalized entropy (log loss over base log
// loss, below 1 when a model beats the base rate) and the calibration (mean
// prediction over mean label).
//
// # AUC
//
// [AUC] is the area under the ROC curve, computed from ranks: the
// probability that a random positive scores above a random negative, with
// tied scores counting 1/2. It takes O(n log n) time and 16 bytes of
// scratch memory per score.
//
// # Calibration
//
// [Reliability] sorts predictions and cuts them into bins of equal count
// (equal mass), reporting each bin's mean prediction and mean label: the
// points of a reliability diagram. [ECE], the expected calibration error,
// is the count-weighted mean gap |mean prediction − mean label| over
// those bins. [CalibrationRatio] is the sum of predictions over the sum
// of labels, 1 for a model calibrated on the whole.
//
// # Degenerate input
//
// No function panics on its input. Where a metric is undefined (no
// predictions, slices of different lengths, a single class for AUC, a NaN
// score) the result is NaN; Reliability and ECE return an error instead.
package metric
