// Package shard splits the ad catalog across index shards and merges their answers exactly.
//
// # Shard map
//
// An ad lives on shard Jump(xxhash64(le64(id)), S): the jump consistent hash of Lamping and Veach over the
// 64-bit xxhash (seed 0) of the ad id's eight little-endian bytes. The map needs no directory: every process
// that knows S computes the same placement, and going from S to S+1 shards moves only the ads that land on the
// new shard, about 1/(S+1) of them. [Of] and [Map] validate S; [Jump] is the bare function.
//
// # Per-shard limit
//
// The root asks each shard for k′ < k hits instead of k. [KPrime] picks the smallest k′ for which a shard
// holds more than k′ of the true top k with probability at most p under random placement (a binomial tail,
// computed in log space). With [DefaultP], k = 1000 over 64 shards gives k′ = 40.
//
// # Exact merge
//
// [Gather] queries every shard with k′ concurrently through a [Searcher], merges the answers into the top k
// (score descending, ties by id ascending), and then re-queries, with a doubled limit, every shard that
// answered a full list whose last score is not below the merged k-th score: only such a shard can hold a
// winner it has not returned. It repeats until no shard is ambiguous or a shard's limit reaches k, so the
// result is the exact global top k whatever the placement; k′ only decides how often that costs a second
// round. [Result] reports the refetches and the rows merged.
//
// # Failures
//
// By default a failing shard fails the call with a [*ShardError] naming it. With [Options.AllowPartial] the
// shard is left out and [Result.Coverage] says which share of the shards the answer is exact over.
//
// docs/SCALING.md describes the sharded deployment this package is the first piece of.
package shard
