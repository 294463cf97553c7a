// Package eval computes evaluation reports over tandem data sets.
//
// # Oracle report
//
// Oracle rebuilds a simulated data set's truth (sim.Open), re-derives the
// decomposition of every test-day impression — failing, with the row
// named, if a stored p_true disagrees — and reports per surface × view type
// × task, and pooled per surface (view type "*"): count, positives, the
// base-rate log loss (each surface × view type predicting its own rate),
// the Bayes log loss, NE_bayes, the Bayes AUC, and the oracle's log loss
// with each named component replaced by its slice mean. With
// OracleOptions.Expected the log losses are expectations under p_true
// (no label noise) instead of averages over the drawn labels.
package eval
