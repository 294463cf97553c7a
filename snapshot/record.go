package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Ad is one row of a snapshot's ad table: what retrieval and ranking need
// of an ad without the catalog files.
type Ad struct {
	ID       int64
	ItemID   int64
	Product  uint8 // index into the config's products
	Eligible uint8 // bit s: eligible on surface s
	Active   bool
	Bid      float32
	Cats     []int32   // categorical codes, config order
	Dense    []float32 // raw dense features, config order
	// Vectors holds a_t per route (manifest order) and task: routes ×
	// tasks × out_dim, zeros where a route does not serve the ad.
	Vectors []float32
}

const adFormat = 1

// appendAd encodes a (little-endian, length-prefixed slices).
func appendAd(b []byte, a *Ad) []byte {
	b = append(b, adFormat)
	b = binary.LittleEndian.AppendUint64(b, uint64(a.ItemID))
	b = append(b, a.Product, a.Eligible, boolByte(a.Active))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(a.Bid))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(a.Cats)))
	for _, c := range a.Cats {
		b = binary.LittleEndian.AppendUint32(b, uint32(c))
	}
	b = appendFloats(b, a.Dense)
	return appendFloats(b, a.Vectors)
}

func appendFloats(b []byte, v []float32) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

var errShort = errors.New("record ends early")

// decodeAd is the inverse of appendAd; any malformed input is an error.
func decodeAd(id int64, b []byte) (Ad, error) {
	a := Ad{ID: id}
	r := reader{b: b}
	if f := r.byte(); f != adFormat {
		if r.err != nil {
			return a, r.err
		}
		return a, fmt.Errorf("ad %d: record format %d, want %d", id, f, adFormat)
	}
	a.ItemID = int64(r.u64())
	a.Product, a.Eligible = r.byte(), r.byte()
	act := r.byte()
	if act > 1 && r.err == nil {
		r.err = fmt.Errorf("active flag %d", act)
	}
	a.Active = act == 1
	a.Bid = math.Float32frombits(r.u32())
	n := r.count(4)
	a.Cats = make([]int32, 0, n)
	for range n {
		a.Cats = append(a.Cats, int32(r.u32()))
	}
	a.Dense = r.floats()
	a.Vectors = r.floats()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return a, fmt.Errorf("ad %d: %w", id, r.err)
	}
	return a, nil
}

// decodeFloats reads a bare float32 array (an item's content vector).
func decodeFloats(b []byte) ([]float32, error) {
	r := reader{b: b}
	v := r.floats()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return v, r.err
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = errShort
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// count reads a length and checks that many elements of size bytes fit.
func (r *reader) count(size int) int {
	n := int(r.u32())
	if r.err == nil && n > len(r.b)/size {
		r.err = fmt.Errorf("length %d exceeds the record", n)
		return 0
	}
	return n
}

func (r *reader) floats() []float32 {
	n := r.count(4)
	v := make([]float32, 0, n)
	for range n {
		v = append(v, math.Float32frombits(r.u32()))
	}
	return v
}
