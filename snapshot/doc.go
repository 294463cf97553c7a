// Package snapshot stores what serving reads from the nightly refresh job:
// one Badger directory per version (SYSTEM.md §3).
//
//	DBDIR/CURRENT   the live version's name, replaced by write-temp + fsync + rename
//	DBDIR/PREVIOUS  the version CURRENT named before the last flip (the rollback target)
//	DBDIR/<V>/      a Badger directory: the ad table (features, a_t per route
//	                and task, eligibility), the item table, named blobs (per
//	                route the ANN index and a copy of the L1 user tower) and
//	                the manifest, written last
//
// A [Writer] creates a version, which is closed before anything reads it
// (Badger locks a directory per process). [Open] opens one read-only and
// verifies it: the manifest must be present and every table's and blob's
// SHA-256 must match it, so a partial or corrupt version is refused and
// never becomes live ([Flip] opens before it points CURRENT at it). Flip
// records the version it replaces in DBDIR/PREVIOUS (the rollback target);
// [GC] keeps CURRENT and PREVIOUS and deletes the rest.
package snapshot
