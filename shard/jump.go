package shard

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
)

// MaxShards is the largest shard count [Of] and [NewMap] accept.
const MaxShards = 1 << 16

// Jump is the jump consistent hash of Lamping and Veach ("A Fast, Minimal Memory, Consistent Hash
// Algorithm", 2014): it maps key to a bucket in [0, buckets) so that growing buckets by one moves a key only
// to the new bucket, and each key with probability 1/(buckets).
//
// The key drives a 64-bit linear congruential generator (multiplier 2862933555777941757, increment 1); from
// bucket b the key jumps to the next bucket j = ⌊(b+1)·2³¹ / ((state>>33)+1)⌋ and the last jump that stays
// below buckets is the answer. The expected number of jumps is ln(buckets).
//
// buckets must lie in [1, 2³¹−1]; outside it Jump returns −1, which is never a bucket, so a caller that skips
// validation fails at its first index rather than placing every key on bucket 0. [Of] and [Map] validate.
func Jump(key uint64, buckets int) int {
	if buckets < 1 || buckets > math.MaxInt32 {
		return -1
	}
	b, j := int64(-1), int64(0)
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// Key is the hash of an ad id that [Of] feeds to [Jump]: xxhash64 with seed 0 of the id's two's-complement
// value as eight little-endian bytes. Another implementation of the shard map must hash exactly these bytes
// (for id 1: 01 00 00 00 00 00 00 00).
func Key(adID int64) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(adID))
	return xxhash.Sum64(b[:])
}

// Of returns the shard of adID among shards, Jump(Key(adID), shards). shards must lie in [1, MaxShards].
func Of(adID int64, shards int) (int, error) {
	if err := checkShards(shards); err != nil {
		return 0, err
	}
	return Jump(Key(adID), shards), nil
}

// Map is a validated shard count; its zero value is not usable, build one with [NewMap].
type Map struct {
	shards int
}

// NewMap returns the map over shards shards, which must lie in [1, MaxShards].
func NewMap(shards int) (Map, error) {
	if err := checkShards(shards); err != nil {
		return Map{}, err
	}
	return Map{shards: shards}, nil
}

// Shards is the shard count.
func (m Map) Shards() int { return m.shards }

// Shard returns the shard that holds adID, the same as [Of].
func (m Map) Shard(adID int64) int { return Jump(Key(adID), m.shards) }

func checkShards(shards int) error {
	if shards < 1 || shards > MaxShards {
		return fmt.Errorf("shard map: shards = %d, want 1 to %d", shards, MaxShards)
	}
	return nil
}
