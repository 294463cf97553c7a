package shard

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestJumpReference pins Jump to the paper's C function, compiled and run on these inputs.
func TestJumpReference(t *testing.T) {
	for _, c := range []struct {
		key     uint64
		buckets int
		want    int
	}{
		{0, 1, 0},
		{1, 1, 0},
		{0, 2, 0},
		{1, 2, 0},
		{2, 2, 0},
		{1, 10, 6},
		{2, 10, 6},
		{3, 10, 8},
		{100, 10, 4},
		{1000, 10, 9},
		{5, 100, 59},
		{256, 10, 3},
		{12345678901234567, 100, 5},
		{math.MaxUint64, 1000, 313},
		{1 << 63, 7, 5},
		{42, math.MaxInt32, 1603940301},
		{3735928559, 65536, 64244},
	} {
		if got := Jump(c.key, c.buckets); got != c.want {
			t.Errorf("Jump(%d, %d) = %d, want %d", c.key, c.buckets, got, c.want)
		}
	}
}

func TestJumpOutOfRange(t *testing.T) {
	for _, b := range []int{0, -1, math.MinInt, math.MaxInt32 + 1, math.MaxInt} {
		if got := Jump(7, b); got != -1 {
			t.Errorf("Jump(7, %d) = %d, want -1", b, got)
		}
	}
}

// TestKeyGolden pins the byte encoding and the hash: xxhash64 (seed 0) of the id's eight little-endian bytes.
// The first row is the published XXH64 of eight zero bytes.
func TestKeyGolden(t *testing.T) {
	for _, c := range []struct {
		id   int64
		want uint64
	}{
		{0, 0x34c96acdcadb1bbb},
		{1, 0x9f29cb17a2a49995},
		{2, 0xeac73e4044e82db0},
		{42, 0xb556806fb6d14353},
		{1000, 0xe53f2d22876c9a49},
		{123456789, 0xcb7c2941b198004d},
		{-1, 0x85d136adb773c6c9},
		{1 << 62, 0x88804a4927a4014b},
	} {
		if got := Key(c.id); got != c.want {
			t.Errorf("Key(%d) = %#016x, want %#016x", c.id, got, c.want)
		}
	}
}

// TestOfGolden pins the whole shard map: changing any of these moves ads between shards of a live index.
// The values were checked against the paper's C function fed with the keys above.
func TestOfGolden(t *testing.T) {
	shards := []int{1, 2, 4, 16, 64, 1000}
	for _, c := range []struct {
		id   int64
		want []int // per shards
	}{
		{0, []int{0, 1, 1, 4, 27, 321}},
		{1, []int{0, 1, 1, 1, 46, 776}},
		{42, []int{0, 1, 3, 12, 45, 190}},
		{1000, []int{0, 0, 0, 12, 49, 430}},
		{123456789, []int{0, 0, 3, 6, 29, 599}},
		{-1, []int{0, 1, 1, 12, 34, 415}},
	} {
		for i, s := range shards {
			got, err := Of(c.id, s)
			if err != nil {
				t.Fatalf("Of(%d, %d): %v", c.id, s, err)
			}
			if got != c.want[i] {
				t.Errorf("Of(%d, %d) = %d, want %d", c.id, s, got, c.want[i])
			}
			m, err := NewMap(s)
			if err != nil {
				t.Fatalf("NewMap(%d): %v", s, err)
			}
			if got := m.Shard(c.id); got != c.want[i] || m.Shards() != s {
				t.Errorf("Map(%d).Shard(%d) = %d, want %d", s, c.id, got, c.want[i])
			}
		}
	}
}

func TestOfInvalid(t *testing.T) {
	for _, s := range []int{0, -1, MaxShards + 1, math.MaxInt} {
		if _, err := Of(1, s); err == nil {
			t.Errorf("Of(1, %d): no error", s)
		}
		if _, err := NewMap(s); err == nil {
			t.Errorf("NewMap(%d): no error", s)
		}
	}
	if _, err := Of(1, MaxShards); err != nil {
		t.Errorf("Of(1, MaxShards): %v", err)
	}
}

// TestUniform checks the shard sizes of a million consecutive ids (the worst case for a weak hash) and a
// million random ones with a chi-square statistic. Under uniform placement it has mean S−1 and standard
// deviation √(2(S−1)); the bound of 6 standard deviations fails a good hash with odds below 10⁻⁸, and the
// inputs are fixed, so the test is deterministic.
func TestUniform(t *testing.T) {
	const n = 1_000_000
	keys := make([]uint64, n)
	r := rand.New(rand.NewPCG(1, 2))
	for name, id := range map[string]func(i int) int64{
		"consecutive": func(i int) int64 { return int64(i) + 1 },
		"random":      func(int) int64 { return r.Int64() },
	} {
		for i := range keys {
			keys[i] = Key(id(i))
		}
		for _, s := range []int{2, 16, 64, 1000} {
			counts := make([]int, s)
			for _, k := range keys {
				counts[Jump(k, s)]++
			}
			want := float64(n) / float64(s)
			chi := 0.0
			for _, c := range counts {
				d := float64(c) - want
				chi += d * d / want
			}
			df := float64(s - 1)
			if bound := df + 6*math.Sqrt(2*df); chi > bound {
				t.Errorf("%s ids, %d shards: chi-square %.1f over bound %.1f", name, s, chi, bound)
			}
		}
	}
}

// TestMonotone checks consistency: going from S to S+1 shards moves a key only onto the new shard, and
// moves about 1/(S+1) of them.
func TestMonotone(t *testing.T) {
	const n = 200_000
	for _, s := range []int{1, 2, 3, 7, 16, 63, 64} {
		moved := 0
		for i := range n {
			k := Key(int64(i))
			a, b := Jump(k, s), Jump(k, s+1)
			if a != b {
				if b != s {
					t.Fatalf("id %d moved from shard %d to %d going from %d to %d shards", i, a, b, s, s+1)
				}
				moved++
			}
		}
		// Binomial(n, 1/(S+1)): allow 6 standard deviations.
		q := 1 / float64(s+1)
		want, sd := n*q, math.Sqrt(n*q*(1-q))
		if d := math.Abs(float64(moved) - want); d > 6*sd {
			t.Errorf("%d → %d shards: %d of %d ids moved, want %.0f ± %.0f", s, s+1, moved, n, want, 6*sd)
		}
	}
}

func BenchmarkOf(b *testing.B) {
	m, err := NewMap(64)
	if err != nil {
		b.Fatal(err)
	}
	var sink int
	id := int64(0)
	for b.Loop() {
		sink += m.Shard(id)
		id++
	}
	_ = sink
}
