//go:build race

package gemm

// raceEnabled: the race detector slows the pure-Go kernel and the
// references about tenfold, so the tests sample less.
const raceEnabled = true
