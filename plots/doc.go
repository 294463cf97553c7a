// Package plots draws evaluation charts as PNG files.
//
// [Reliability] draws a reliability diagram from the equal-mass bins of
// metric.Reliability: the observed positive rate of each bin against its
// mean prediction, with the diagonal of perfect calibration for
// reference. [Curves] draws named series of points as lines, in sorted
// name order so that equal input gives an identical file.
//
// Every chart is written to a temporary file beside its path and renamed
// into place once complete, so a failed call leaves no partial file. Empty input, non-finite values and
// unwritable paths are errors.
package plots
