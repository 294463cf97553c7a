// Package calib calibrates model logits after training with a Platt-style
// map: a logit z becomes the probability p = σ(A·z + B).
//
// # Fitting
//
// [Fit] finds A and B that maximise the weighted Bernoulli log-likelihood
// of labels y in [0, 1] (soft labels allowed) under p = σ(A·z + B). It runs
// a Newton method in float64 from A = 1, B = 0: each step solves the 2×2
// Newton system with a ridge of 1e-6 added to the diagonal of the Hessian
// of the mean loss, halves the step until the loss does not rise, and stops
// after 50 iterations or once the Newton step is shorter than 1e-10. The
// slope is constrained to A ≥ [MinA]: when the unconstrained optimum has a
// smaller slope (the logits rank the labels backwards, or barely at all),
// A is fixed at MinA and B alone is fitted by the same method in one
// dimension. When the logits separate the labels perfectly the likelihood
// has no maximum; Fit then returns the steep map it reached after 50
// iterations.
//
// Invalid input (NaN or infinite values, labels outside [0, 1], negative
// weights, slices of different lengths, no rows) is an error. So is input
// with no positive or no negative label mass, which has no finite fit;
// that error matches [ErrDegenerate], for callers that fall back to a
// coarser calibration.
//
// # Tables
//
// [FitTable] fits one map per slice of traffic, keyed by surface, view
// type and task, and shrinks sparse slices toward their surface:
//
//   - For every task it fits a global map over all rows of the task.
//   - For every (surface, task) it fits a surface map over the rows of
//     the surface, all view types together.
//   - For every (surface, view type, task) slice whose positives (the sum
//     of its weighted labels) reach Options.MinPositives it fits a slice
//     map and shrinks it toward the surface map: with λ = Shrink/positives,
//     A = (A_slice + λ·A_surface)/(1 + λ), and likewise B. A slice with
//     fewer positives gets no map of its own.
//   - With Options.GlobalOnly it fits only the global map of each task,
//     which every slice then uses: the one-calibration-for-all baseline.
//
// A fit that fails for lack of positive or negative mass is left out of
// the table. [Table.Lookup] returns the slice map, else the surface map,
// else the global map of the task, else [Identity].
package calib
