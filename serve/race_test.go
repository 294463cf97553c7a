//go:build race

package serve

// raceEnabled: the race detector slows every call about tenfold, so the
// cluster tests take fewer requests under it.
const raceEnabled = true
