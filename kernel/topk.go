package kernel

import (
	"fmt"
	"math"
)

// TopK returns the indices of the k largest scores, best first. Equal
// scores are ordered by index, smaller first, and a NaN score is never
// selected (it ranks below −Inf). When fewer than k scores are not NaN,
// all of those are returned; k ≤ 0 returns none.
//
// The result is appended to idx[:0] and returned; nothing is allocated
// when cap(idx) ≥ min(k, len(scores)). TopK keeps a 4-ary heap of the k
// best seen so far with the worst at its root, so a score that does not
// beat the root costs one comparison (made 32 at a time with AVX2):
// O(n log k) at worst and close to O(n) for scores in random order.
// len(scores) must fit in an int32.
func TopK(idx []int32, scores []float32, k int) []int32 {
	n := len(scores)
	if n > math.MaxInt32 {
		panic(fmt.Sprintf("kernel.TopK: %d scores do not fit int32 indices", n))
	}
	k = min(k, n)
	if k <= 0 {
		return idx[:0]
	}
	switch {
	case k <= 64: // a small buffer is quicker to clear
		var buf [64]int64
		return topKKeys(idx[:0], scores, k, buf[:0:k])
	case k <= keyHeapMax:
		var buf [keyHeapMax]int64
		return topKKeys(idx[:0], scores, k, buf[:0:k])
	}
	return topKIndices(idx[:0], scores, k)
}

// keyHeapMax is the largest k whose heap holds rank keys in a buffer on
// the stack (8 KiB): comparisons then read no score, and the heap stays in
// the nearest cache instead of chasing indices through scores. Above it
// the heap holds indices in the output buffer.
const keyHeapMax = 1024

// topKKeys is TopK for 0 < k ≤ cap(keys), with a heap of rank keys.
func topKKeys(h []int32, scores []float32, k int, keys []int64) []int32 {
	n := len(scores)
	i := 0
	for ; i < n && len(keys) < k; i++ {
		if s := scores[i]; s == s {
			keys = append(keys, rank(s, int32(i)))
		}
	}
	for j := (len(keys) - 2) / 4; j >= 0 && len(keys) > 1; j-- {
		siftDownKeys(keys, j)
	}
	if len(keys) == k {
		// A later index loses ties, so only a strictly larger score
		// displaces the root; NaN compares false and is skipped.
		worst := scores[rankIndex(keys[0])]
		for {
			i += firstAbove(scores[i:], worst)
			if i >= n {
				break
			}
			keys[0] = rank(scores[i], int32(i))
			siftDownKeys(keys, 0)
			worst = scores[rankIndex(keys[0])]
			i++
		}
	}
	// Heap sort: moving the worst to the end, one by one, leaves the best
	// first.
	for end := len(keys) - 1; end > 0; end-- {
		keys[0], keys[end] = keys[end], keys[0]
		siftDownKeys(keys[:end], 0)
	}
	for _, r := range keys {
		h = append(h, rankIndex(r))
	}
	return h
}

// topKIndices is TopK for a large k: the heap holds the indices
// themselves, in h, and each comparison reads their scores.
func topKIndices(h []int32, scores []float32, k int) []int32 {
	n := len(scores)
	i := 0
	for ; i < n && len(h) < k; i++ {
		if s := scores[i]; s == s {
			h = append(h, int32(i))
		}
	}
	for j := (len(h) - 2) / 4; j >= 0 && len(h) > 1; j-- {
		siftDown(h, scores, j)
	}
	if len(h) == k {
		worst := scores[h[0]]
		for {
			i += firstAbove(scores[i:], worst)
			if i >= n {
				break
			}
			h[0] = int32(i)
			siftDown(h, scores, 0)
			worst = scores[h[0]]
			i++
		}
	}
	for end := len(h) - 1; end > 0; end-- {
		h[0], h[end] = h[end], h[0]
		siftDown(h[:end], scores, 0)
	}
	return h
}

// firstAboveGo returns the index of the first x[i] > t, or len(x); a NaN
// is never above t. The assembly version tests 32 values at a time.
func firstAboveGo(x []float32, t float32) int {
	for i, v := range x {
		if v > t {
			return i
		}
	}
	return len(x)
}

// rank maps score s of index i to a key that orders as the ranking does:
// a higher score gives a larger key, and so does a smaller index among
// equal scores. The score's bits are made to order as unsigned integers
// (sign bit flipped for positives, all bits for negatives) after adding 0,
// which turns −0 into +0 so that the two zeros tie; below them 31 bits
// hold MaxInt32−i. Keys stay below 2⁶³, so the difference of two is a
// signed int64 without overflow. Not for NaN scores.
func rank(s float32, i int32) int64 {
	b := math.Float32bits(s + 0)
	b ^= uint32(int32(b)>>31) | 0x8000_0000
	return int64(b)<<31 | int64(math.MaxInt32-i)
}

// rankIndex is the index i of rank(s, i).
func rankIndex(r int64) int32 { return math.MaxInt32 - int32(r&math.MaxInt32) }

// siftDownKeys restores the heap property below keys[j] in a 4-ary heap
// of rank keys: every parent is smaller than its children, so the root is
// the worst kept. See siftDown.
func siftDownKeys(keys []int64, j int) {
	n := len(keys)
	x := keys[j]
	for {
		c := 4*j + 1
		if c >= n || c < 0 {
			break
		}
		var b int
		var kb int64
		if c+3 < n {
			q := keys[c : c+4 : c+4]
			b01 := c - int((q[1]-q[0])>>63) // c+1 when q[1] < q[0]
			k01 := min(q[0], q[1])
			b23 := c + 2 - int((q[3]-q[2])>>63)
			k23 := min(q[2], q[3])
			b = b01 ^ (b01^b23)&int((k23-k01)>>63)
			kb = min(k01, k23)
		} else {
			b, kb = c, keys[c]
			for m := c + 1; m < n; m++ {
				if keys[m] < kb {
					b, kb = m, keys[m]
				}
			}
		}
		if kb > x {
			break
		}
		keys[j] = kb
		j = b
	}
	keys[j] = x
}

// siftDown restores the heap property below h[j] in a 4-ary heap (the
// children of j are 4j+1 … 4j+4): every parent ranks below its children,
// so the root is the worst kept. Four children halve the depth of a binary
// heap, and their four score loads are independent. It moves a hole down
// instead of swapping, and picks the worst child without branches, which
// would mispredict about half the time.
func siftDown(h []int32, scores []float32, j int) {
	n := len(h)
	x := h[j]
	kx := rank(scores[x], x)
	for {
		c := 4*j + 1
		if c >= n || c < 0 {
			break
		}
		var b int
		var kb int64
		if c+3 < n {
			k0 := rank(scores[h[c]], h[c])
			k1 := rank(scores[h[c+1]], h[c+1])
			k2 := rank(scores[h[c+2]], h[c+2])
			k3 := rank(scores[h[c+3]], h[c+3])
			b01 := c - int((k1-k0)>>63) // c+1 when k1 < k0
			k01 := min(k0, k1)
			b23 := c + 2 - int((k3-k2)>>63)
			k23 := min(k2, k3)
			b = b01 ^ (b01^b23)&int((k23-k01)>>63)
			kb = min(k01, k23)
		} else {
			b, kb = c, rank(scores[h[c]], h[c])
			for m := c + 1; m < n; m++ {
				if km := rank(scores[h[m]], h[m]); km < kb {
					b, kb = m, km
				}
			}
		}
		if kb > kx {
			break
		}
		h[j] = h[b]
		j = b
	}
	h[j] = x
}
