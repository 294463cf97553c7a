//go:build race

package data

// raceEnabled reports a -race build. Its checkptr instrumentation turns
// parquet-go's recoverable panic on some corrupt values (unsafe.Slice of a
// nil pointer) into a fatal error, so tests that feed randomly corrupted
// Parquet bytes run only without -race; the reader's recover turns that
// panic into an error naming the file in normal builds.
const raceEnabled = true
