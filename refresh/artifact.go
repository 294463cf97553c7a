package refresh

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The artifacts the tasks hand over through a store (docs/REFRESH_TASKS.md):
// little-endian binary, a magic of 8 bytes first and the SHA-256 of
// everything before it last, so a truncated or damaged artifact (a task
// killed mid-write to a store without atomic writes, a bad copy) is
// refused by name.
const (
	embedMagic = "TNDEMB01"
	indexMagic = "TNDIDX01"
)

// ErrCorrupt is wrapped by the decoders when an artifact is truncated or
// its checksum does not match.
var ErrCorrupt = errors.New("refresh: corrupt artifact")

// embedPart is the artifact of one embed task: the vectors of the ad rows
// [Lo, Hi) of a catalog of Ads rows.
type embedPart struct {
	Part, Parts              int
	Lo, Hi, Ads              int
	ModelVersion, SchemaHash string
	Routes                   []string
	Tasks, OutDim            int
	IDs                      []int64   // ad id of each row
	Vectors                  []float32 // (Hi−Lo) × routes × tasks × d
}

// indexPart is the artifact of one build task: shard Shard of Shards of a
// route's index (Shards = 1: the whole route's).
type indexPart struct {
	Route, ModelVersion string
	Shard, Shards       int
	Seconds             float64 // build time
	Graph               []byte  // index.Graph MarshalBinary
	IDs                 []int64 // ad id of each node
}

type enc struct{ b []byte }

func (e *enc) u32(v int)      { e.b = binary.LittleEndian.AppendUint32(e.b, uint32(v)) }
func (e *enc) u64(v uint64)   { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *enc) str(s string)   { e.u32(len(s)); e.b = append(e.b, s...) }
func (e *enc) bytes(b []byte) { e.u64(uint64(len(b))); e.b = append(e.b, b...) }
func (e *enc) ids(v []int64) {
	e.u64(uint64(len(v)))
	for _, x := range v {
		e.u64(uint64(x))
	}
}
func (e *enc) seal() []byte {
	s := sha256.Sum256(e.b)
	return append(e.b, s[:]...)
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: %d bytes short", ErrCorrupt, n-uint64(len(d.b)))
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}
func (d *dec) u32() int {
	if b := d.take(4); b != nil {
		return int(binary.LittleEndian.Uint32(b))
	}
	return 0
}
func (d *dec) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}
func (d *dec) str() string   { return string(d.take(uint64(d.u32()))) }
func (d *dec) bytes() []byte { return bytes.Clone(d.take(d.u64())) }
func (d *dec) ids() []int64 {
	n := d.u64()
	b := d.take(8 * min(n, math.MaxUint64/8))
	if b == nil {
		return nil
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out
}

// open checks the magic and the trailing checksum and returns a decoder
// over the body.
func open(b []byte, magic string) (*dec, error) {
	if len(b) < len(magic)+sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch (truncated or damaged)", ErrCorrupt)
	}
	if string(body[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: magic %q, want %q", ErrCorrupt, body[:len(magic)], magic)
	}
	return &dec{b: body[len(magic):]}, nil
}

func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return d.err
}

func (p *embedPart) marshal() []byte {
	e := &enc{b: make([]byte, 0, 256+8*len(p.IDs)+4*len(p.Vectors))}
	e.b = append(e.b, embedMagic...)
	e.u32(p.Part)
	e.u32(p.Parts)
	e.u64(uint64(p.Lo))
	e.u64(uint64(p.Hi))
	e.u64(uint64(p.Ads))
	e.str(p.ModelVersion)
	e.str(p.SchemaHash)
	e.u32(len(p.Routes))
	for _, r := range p.Routes {
		e.str(r)
	}
	e.u32(p.Tasks)
	e.u32(p.OutDim)
	e.ids(p.IDs)
	e.u64(uint64(len(p.Vectors)))
	for _, v := range p.Vectors {
		e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(v))
	}
	return e.seal()
}

func unmarshalEmbed(b []byte) (*embedPart, error) {
	d, err := open(b, embedMagic)
	if err != nil {
		return nil, err
	}
	p := &embedPart{Part: d.u32(), Parts: d.u32(), Lo: int(d.u64()), Hi: int(d.u64()), Ads: int(d.u64()),
		ModelVersion: d.str(), SchemaHash: d.str()}
	nr := d.u32()
	if d.err == nil && nr > len(d.b) {
		return nil, fmt.Errorf("%w: %d routes", ErrCorrupt, nr)
	}
	for range nr {
		p.Routes = append(p.Routes, d.str())
	}
	p.Tasks, p.OutDim = d.u32(), d.u32()
	p.IDs = d.ids()
	n := d.u64()
	if raw := d.take(4 * min(n, math.MaxUint64/4)); raw != nil {
		p.Vectors = make([]float32, n)
		for i := range p.Vectors {
			p.Vectors[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if p.Lo > p.Hi || len(p.IDs) != p.Hi-p.Lo || len(p.Vectors) != len(p.IDs)*len(p.Routes)*p.Tasks*p.OutDim {
		return nil, fmt.Errorf("%w: rows [%d, %d), %d ids, %d floats for %d routes × %d tasks × d=%d",
			ErrCorrupt, p.Lo, p.Hi, len(p.IDs), len(p.Vectors), len(p.Routes), p.Tasks, p.OutDim)
	}
	return p, nil
}

func (p *indexPart) marshal() []byte {
	e := &enc{b: make([]byte, 0, 128+len(p.Graph)+8*len(p.IDs))}
	e.b = append(e.b, indexMagic...)
	e.str(p.Route)
	e.str(p.ModelVersion)
	e.u32(p.Shard)
	e.u32(p.Shards)
	e.u64(math.Float64bits(p.Seconds))
	e.bytes(p.Graph)
	e.ids(p.IDs)
	return e.seal()
}

func unmarshalIndex(b []byte) (*indexPart, error) {
	d, err := open(b, indexMagic)
	if err != nil {
		return nil, err
	}
	p := &indexPart{Route: d.str(), ModelVersion: d.str(), Shard: d.u32(), Shards: d.u32(), Seconds: math.Float64frombits(d.u64())}
	p.Graph = d.bytes()
	p.IDs = d.ids()
	if err := d.done(); err != nil {
		return nil, err
	}
	return p, nil
}
