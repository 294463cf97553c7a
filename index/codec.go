package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// The binary format, version 1, all integers little-endian:
//
//	magic     8 bytes "TNDMHNSW"
//	version   uint32 (1)
//	metric    uint32
//	dim       uint32
//	n         uint32   number of vectors
//	m         uint32   neighbours per upper layer (2m on layer 0)
//	efc       uint32   efConstruction, for the record
//	seed      uint64
//	entry     int32    −1 when n = 0
//	maxLevel  uint32   level of the entry node
//	maxNorm2  float32  N² of the InnerProduct transform, 0 otherwise
//	levels    n × uint8
//	vectors   n × dimS × float32, the stored rows without padding
//	          (normalised for Cosine; with the extra coordinate for
//	          InnerProduct, dimS = dim+1)
//	layer 0   for each node: count uint32, then count × int32 ids
//	upper     for each node of level L ≥ 1, for layers 1..L: count, ids
//	crc32     uint32, Castagnoli, of every byte before it
//
// Squared norms are recomputed on load. The decoder checks every field
// (ranges, ids, the level of every neighbour, finite values, exact length)
// so that a graph it accepts is safe to search.
const (
	codecMagic   = "TNDMHNSW"
	codecVersion = 1
	headerSize   = 8 + 4*6 + 8 + 4 + 4 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes the graph in the versioned format above. Equal
// graphs give equal bytes.
func (g *Graph) MarshalBinary() ([]byte, error) {
	if g == nil {
		return nil, errors.New("index: marshal of a nil Graph")
	}
	size := headerSize + g.n + 4*g.n*g.dimS + 4
	for i := range g.n {
		for lc := 0; lc <= int(g.levels[i]); lc++ {
			size += 4 + 4*int(g.block(int32(i), lc)[0])
		}
	}
	b := make([]byte, 0, size)
	b = append(b, codecMagic...)
	le := binary.LittleEndian
	b = le.AppendUint32(b, codecVersion)
	b = le.AppendUint32(b, uint32(g.metric))
	b = le.AppendUint32(b, uint32(g.dim))
	b = le.AppendUint32(b, uint32(g.n))
	b = le.AppendUint32(b, uint32(g.m))
	b = le.AppendUint32(b, uint32(g.efc))
	b = le.AppendUint64(b, g.seed)
	b = le.AppendUint32(b, uint32(g.entry))
	b = le.AppendUint32(b, uint32(g.maxLevel))
	b = le.AppendUint32(b, math.Float32bits(g.maxNorm2))
	b = append(b, g.levels...)
	for i := range g.n {
		for _, v := range g.row(int32(i))[:g.dimS] {
			b = le.AppendUint32(b, math.Float32bits(v))
		}
	}
	appendList := func(blk []int32) {
		b = le.AppendUint32(b, uint32(blk[0]))
		for _, id := range blk[1 : 1+blk[0]] {
			b = le.AppendUint32(b, uint32(id))
		}
	}
	for i := range g.n {
		appendList(g.block(int32(i), 0))
	}
	for i := range g.n {
		for lc := 1; lc <= int(g.levels[i]); lc++ {
			appendList(g.block(int32(i), lc))
		}
	}
	b = le.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b, nil
}

// UnmarshalBinary replaces g with the graph encoded in data. Truncated,
// corrupt or inconsistent input gives an error and leaves g unchanged.
func (g *Graph) UnmarshalBinary(data []byte) error {
	ng, err := decode(data)
	if err != nil {
		return err
	}
	*g = *ng
	return nil
}

// Unmarshal decodes a graph written by MarshalBinary.
func Unmarshal(data []byte) (*Graph, error) { return decode(data) }

// reader walks the encoded bytes; the first failure sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("index: decode: "+format, args...)
	}
}

func (r *reader) u32(what string) uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 4 {
		r.fail("truncated at byte %d reading %s", r.off, what)
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func decode(data []byte) (*Graph, error) {
	if len(data) < headerSize+4 {
		return nil, fmt.Errorf("index: decode: %d bytes, shorter than the %d-byte header and checksum", len(data), headerSize+4)
	}
	if string(data[:8]) != codecMagic {
		return nil, errors.New("index: decode: not an HNSW graph (bad magic)")
	}
	le := binary.LittleEndian
	if v := le.Uint32(data[8:]); v != codecVersion {
		return nil, fmt.Errorf("index: decode: format version %d, this code reads %d", v, codecVersion)
	}
	body := data[:len(data)-4]
	if want, got := le.Uint32(data[len(data)-4:]), crc32.Checksum(body, castagnoli); want != got {
		return nil, fmt.Errorf("index: decode: checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	r := &reader{b: body, off: 12}
	metric := Metric(r.u32("metric"))
	dim := r.u32("dim")
	n := r.u32("n")
	m := r.u32("m")
	efc := r.u32("efConstruction")
	seedLo, seedHi := r.u32("seed"), r.u32("seed")
	entry := int32(r.u32("entry"))
	maxLevel := r.u32("maxLevel")
	maxNorm2 := math.Float32frombits(r.u32("maxNorm2"))
	switch {
	case !metric.valid():
		return nil, fmt.Errorf("index: decode: unknown metric %d", int(metric))
	case dim == 0 || dim > 1<<24:
		return nil, fmt.Errorf("index: decode: dim = %d out of range", dim)
	case m < 2 || m > maxM:
		return nil, fmt.Errorf("index: decode: m = %d out of range", m)
	case efc < 1 || efc > maxEfC:
		return nil, fmt.Errorf("index: decode: efConstruction = %d out of range", efc)
	case n > maxNodes:
		return nil, fmt.Errorf("index: decode: n = %d out of range", n)
	case maxLevel > maxLevels:
		return nil, fmt.Errorf("index: decode: maxLevel = %d out of range", maxLevel)
	case math.IsNaN(float64(maxNorm2)) || math.IsInf(float64(maxNorm2), 0) || maxNorm2 < 0:
		return nil, fmt.Errorf("index: decode: maxNorm2 = %v out of range", maxNorm2)
	}
	g := &Graph{
		metric:   metric,
		dim:      int(dim),
		dimS:     int(dim),
		n:        int(n),
		m:        int(m),
		m0:       2 * int(m),
		efc:      int(efc),
		seed:     uint64(seedLo) | uint64(seedHi)<<32,
		maxNorm2: maxNorm2,
		entry:    entry,
		maxLevel: int(maxLevel),
	}
	if metric == InnerProduct {
		g.dimS++
	}
	g.stride = (g.dimS + 7) &^ 7
	// Every node takes at least its level, its row and one count: check
	// before allocating anything sized by n.
	if need := uint64(n) * (1 + 4*uint64(g.dimS) + 4); need > uint64(len(body)-r.off) {
		return nil, fmt.Errorf("index: decode: %d bytes cannot hold %d vectors of dimension %d", len(data), n, g.dimS)
	}
	if n == 0 {
		if entry != -1 || maxLevel != 0 {
			return nil, fmt.Errorf("index: decode: empty graph with entry %d, maxLevel %d", entry, maxLevel)
		}
	} else if entry < 0 || entry >= int32(n) {
		return nil, fmt.Errorf("index: decode: entry %d out of range [0, %d)", entry, n)
	}

	g.levels = make([]uint8, n)
	copy(g.levels, body[r.off:])
	r.off += int(n)
	for i, l := range g.levels {
		if uint32(l) > maxLevel {
			return nil, fmt.Errorf("index: decode: node %d has level %d above maxLevel %d", i, l, maxLevel)
		}
	}
	if n > 0 && uint32(g.levels[entry]) != maxLevel {
		return nil, fmt.Errorf("index: decode: entry %d has level %d, maxLevel is %d", entry, g.levels[entry], maxLevel)
	}

	g.vecs = make([]float32, g.n*g.stride)
	for i := range g.n {
		row := g.vecs[i*g.stride : i*g.stride+g.dimS]
		for j := range row {
			v := math.Float32frombits(le.Uint32(body[r.off:]))
			r.off += 4
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("index: decode: vector %d column %d is %v", i, j, v)
			}
			row[j] = v
		}
		if s := norm2(row); s > math.MaxFloat32/4 {
			return nil, fmt.Errorf("index: decode: vector %d: squared norm overflows float32", i)
		}
	}
	g.computeNorms()
	g.layoutLinks()

	readList := func(node int32, lc int) {
		cnt := r.u32("a neighbour count")
		if r.err != nil {
			return
		}
		if cnt > uint32(g.capacity(lc)) {
			r.fail("node %d layer %d has %d neighbours, capacity %d", node, lc, cnt, g.capacity(lc))
			return
		}
		blk := g.block(node, lc)
		blk[0] = int32(cnt)
		for j := range int(cnt) {
			id := int32(r.u32("a neighbour id"))
			if r.err != nil {
				return
			}
			switch {
			case id < 0 || id >= int32(n):
				r.fail("node %d layer %d: neighbour id %d out of range", node, lc, id)
				return
			case id == node:
				r.fail("node %d layer %d links to itself", node, lc)
				return
			case int(g.levels[id]) < lc:
				r.fail("node %d layer %d: neighbour %d has level %d", node, lc, id, g.levels[id])
				return
			}
			blk[1+j] = id
		}
	}
	for i := range g.n {
		readList(int32(i), 0)
		if r.err != nil {
			return nil, r.err
		}
	}
	for i := range g.n {
		for lc := 1; lc <= int(g.levels[i]); lc++ {
			readList(int32(i), lc)
			if r.err != nil {
				return nil, r.err
			}
		}
	}
	if r.off != len(body) {
		return nil, fmt.Errorf("index: decode: %d unexpected bytes after the graph", len(body)-r.off)
	}
	return g, nil
}
