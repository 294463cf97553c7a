// Package serve is tandem's gRPC server: the Retrieve and Rank RPCs of
// proto/tandem/v1 over the live snapshot (package catalog) and the L2
// models of MODELDIR/CURRENT (package ranker), with the errors SYSTEM.md §4
// promises, bounded admission, Prometheus metrics, standard health and
// reflection, and reload without downtime.
//
// # Versions
//
// A Set is one loaded snapshot version with one model version's L2
// exports; the two must share a schema hash. The server holds the live Set
// behind an atomic pointer: a request takes the pointer once and finishes
// on that Set whatever happens meanwhile. Reload (the RPC, or the watcher
// polling DBDIR/CURRENT and MODELDIR/CURRENT) loads a new Set off the hot
// path, warms it with one Retrieve and one Rank, and swaps it in; a failed
// load keeps the old Set, logs why and counts the failure. The replaced Set
// stays in memory as the rollback target: reloading its versions swaps it
// back at once. A loaded Set needs nothing on disk (catalog reads the
// snapshot into memory and closes it), so the refresh job's garbage
// collection never pulls a file from under a request.
//
// # Admission
//
// Retrieve and Rank take a slot of a fixed-size semaphore without waiting;
// when every slot is taken the call fails at once with ResourceExhausted,
// so overload never builds a queue. Health, GetModelInfo and Reload are
// not admitted through it.
//
// # Errors
//
// InvalidArgument names the field: a bad UserContext (package query), k
// outside 1…max_retrieve_k, an unknown product filter, an empty, oversized
// or repeated candidate list, or candidates none of which the snapshot
// knows; unknown candidates beside known ones are returned in
// unknown_ad_ids instead. A surface without an L2 model is
// FailedPrecondition; an expired deadline DeadlineExceeded; a server with
// nothing loaded Unavailable.
package serve
