//go:build race

package index

// raceEnabled: the race detector slows building and searching about
// tenfold, so the tests use smaller sets.
const raceEnabled = true
