package data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// parquet-go trusts the sizes in a file's thrift-encoded footer and page
// headers: a corrupt length makes it allocate up to 2 GiB per string or
// page, and a corrupt list size up to hundreds of GiB, which kills the
// process. So before parquet-go reads a file, guardFooter and guardPages
// walk the footer and every page header with a bounded thrift scanner and
// reject sizes that do not fit in the bytes that hold them.

const (
	// maxThriftDepth bounds the nesting of thrift structs and containers.
	maxThriftDepth = 32
	// maxPageBytes bounds a page's uncompressed size, unless its compressed
	// size is large enough to make a bigger page plausible (pageRatio).
	maxPageBytes = 64 << 20
	pageRatio    = 1024
	// pageHeaderRead is how many bytes are read at first for a page header.
	pageHeaderRead = 1 << 10
)

var (
	errThriftShort = errors.New("thrift value runs past the buffer")
	errThriftBad   = errors.New("corrupt thrift value")
)

// thriftScan validates a thrift compact-protocol struct at the start of b
// without decoding it. A length or container size larger than the limit
// bytes from b's start can hold is corrupt; one that is merely past len(b)
// (≤ limit) is short, and the caller may retry with more bytes.
type thriftScan struct {
	b     []byte
	i     int
	limit int
	// header holds the page header fields the guard needs.
	header pageHeader
}

// pageHeader holds the fields of a thrift PageHeader that guardChunk needs.
type pageHeader struct {
	typ, uncompressed, compressed int32 // fields 1, 2, 3
	hasSizes                      [2]bool
	// From data_page_header_v2 (field 8): the lengths of the uncompressed
	// levels before the values (fields 5 and 6) and whether the values are
	// compressed (field 7, true by default).
	levels        int64
	notCompressed bool
}

// record keeps the page header fields guardChunk needs: i32 fields 1 to 3
// of the top-level struct, and fields 5 to 7 of its field 8.
func (h *pageHeader) record(depth int, parent, id int64, typ byte, v int64) {
	switch {
	case depth == 0 && typ == 5 && id == 1:
		h.typ = int32(v)
	case depth == 0 && typ == 5 && (id == 2 || id == 3):
		if id == 2 {
			h.uncompressed = int32(v)
		} else {
			h.compressed = int32(v)
		}
		h.hasSizes[id-2] = true
	case depth == 1 && parent == 8 && typ == 5 && (id == 5 || id == 6):
		h.levels += int64(int32(v))
	case depth == 1 && parent == 8 && id == 7 && (typ == 1 || typ == 2):
		h.notCompressed = typ == 2
	}
}

func (s *thriftScan) need(n uint64) error {
	switch {
	case n > uint64(s.limit-s.i):
		return errThriftBad
	case n > uint64(len(s.b)-s.i):
		return errThriftShort
	}
	return nil
}

func (s *thriftScan) skip(n uint64) error {
	if err := s.need(n); err != nil {
		return err
	}
	s.i += int(n)
	return nil
}

func (s *thriftScan) byte() (byte, error) {
	if err := s.need(1); err != nil {
		return 0, err
	}
	s.i++
	return s.b[s.i-1], nil
}

func (s *thriftScan) uvarint() (uint64, error) {
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		c, err := s.byte()
		if err != nil {
			return 0, err
		}
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, errThriftBad
}

func zigzag(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

// structure scans a struct up to and including its STOP byte; parent is
// the field id of the struct in its parent struct.
func (s *thriftScan) structure(depth int, parent int64) error {
	if depth > maxThriftDepth {
		return errThriftBad
	}
	var id int64
	for {
		h, err := s.byte()
		if err != nil || h == 0 {
			return err
		}
		typ := h & 0x0f
		if delta := h >> 4; delta != 0 {
			id += int64(delta)
		} else {
			v, err := s.uvarint()
			if err != nil {
				return err
			}
			id = zigzag(v)
		}
		switch typ {
		case 1, 2: // booleans are in the field header
			s.header.record(depth, parent, id, typ, 0)
		case 5:
			v, err := s.uvarint()
			if err != nil {
				return err
			}
			s.header.record(depth, parent, id, typ, zigzag(v))
		case 12:
			if err := s.structure(depth+1, id); err != nil {
				return err
			}
		default:
			if err := s.value(typ, depth, false); err != nil {
				return err
			}
		}
	}
}

// value scans one value of a thrift type; inList tells whether it is a
// container element, where booleans take a byte.
func (s *thriftScan) value(typ byte, depth int, inList bool) error {
	switch typ {
	case 1, 2: // boolean true, false
		if inList {
			return s.skip(1)
		}
		return nil
	case 3: // byte
		return s.skip(1)
	case 4, 5, 6: // i16, i32, i64
		_, err := s.uvarint()
		return err
	case 7: // double
		return s.skip(8)
	case 8: // binary
		n, err := s.uvarint()
		if err != nil {
			return err
		}
		return s.skip(n)
	case 9, 10: // list, set
		return s.list(depth)
	case 11:
		return s.mapping(depth)
	case 12:
		return s.structure(depth+1, -1)
	}
	return errThriftBad
}

// list scans a list or set, whose elements each take at least a byte.
func (s *thriftScan) list(depth int) error {
	h, err := s.byte()
	if err != nil {
		return err
	}
	n, elem := uint64(h>>4), h&0x0f
	if n == 15 {
		if n, err = s.uvarint(); err != nil {
			return err
		}
	}
	if n > uint64(s.limit-s.i) || depth >= maxThriftDepth {
		return errThriftBad
	}
	for range n {
		if err := s.value(elem, depth+1, true); err != nil {
			return err
		}
	}
	return nil
}

// mapping scans a map, whose entries each take at least two bytes.
func (s *thriftScan) mapping(depth int) error {
	n, err := s.uvarint()
	if err != nil || n == 0 {
		return err
	}
	kv, err := s.byte()
	if err != nil {
		return err
	}
	if n > uint64(s.limit-s.i)/2 || depth >= maxThriftDepth {
		return errThriftBad
	}
	for range n {
		if err := s.value(kv>>4, depth+1, true); err != nil {
			return err
		}
		if err := s.value(kv&0x0f, depth+1, true); err != nil {
			return err
		}
	}
	return nil
}

// guardFooter checks a Parquet file's magic numbers and the thrift
// structure of its footer. size is the file's size.
func guardFooter(ra io.ReaderAt, size int64) error {
	const magic = "PAR1"
	if size < 12 {
		return errorOf(ErrMalformed, "%d bytes is too short for a Parquet file", size)
	}
	var head [4]byte
	var tail [8]byte
	if err := readFull(ra, head[:], 0); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if err := readFull(ra, tail[:], size-8); err != nil {
		return fmt.Errorf("read footer: %w", err)
	}
	if string(head[:]) != magic || string(tail[4:]) != magic {
		return errorOf(ErrMalformed, "not a Parquet file (no PAR1 magic numbers)")
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n > size-12 {
		return errorOf(ErrMalformed, "footer length %d exceeds file size %d", n, size)
	}
	footer := make([]byte, n)
	if err := readFull(ra, footer, size-8-n); err != nil {
		return fmt.Errorf("read footer: %w", err)
	}
	s := thriftScan{b: footer, limit: len(footer)}
	if err := s.structure(0, -1); err != nil {
		return errorOf(ErrMalformed, "corrupt footer")
	}
	return nil
}

// guardPages checks the page headers of every column chunk of f.
func guardPages(ra io.ReaderAt, size int64, f *parquet.File) error {
	for g, rg := range f.Metadata().RowGroups {
		for c, cc := range rg.Columns {
			md := &cc.MetaData
			start := md.DataPageOffset
			if md.DictionaryPageOffset != 0 {
				start = md.DictionaryPageOffset
			}
			where := fmt.Sprintf("row group %d column %d", g, c)
			if start < 0 || md.TotalCompressedSize < 0 || md.TotalCompressedSize > size-start {
				return errorOf(ErrMalformed, "%s: chunk [%d, +%d) is outside the file", where, start, md.TotalCompressedSize)
			}
			if md.Codec == format.Lz4Raw || md.Codec == format.Lz4 {
				// parquet-go's LZ4 decoder doubles its buffer without bound
				// while the data fails to decode.
				return errorOf(ErrMalformed, "%s: LZ4 compression is not supported; use zstd", where)
			}
			if err := guardChunk(ra, start, start+md.TotalCompressedSize, md.DataPageOffset, md.Codec); err != nil {
				return wrapError(ErrMalformed, where, err)
			}
		}
	}
	return nil
}

// guardChunk checks the pages of the column chunk in [start, end)
// compressed with codec; parquet-go seeks to its first data page at
// dataOffset, which must be where a page starts.
func guardChunk(ra io.ReaderAt, start, end, dataOffset int64, codec format.CompressionCodec) error {
	var buf []byte
	seenData := dataOffset == start
	for off := start; off < end; {
		seenData = seenData || off == dataOffset
		s, err := scanPageHeader(ra, off, end, &buf)
		if err != nil {
			return err
		}
		h := &s.header
		if !h.hasSizes[0] || !h.hasSizes[1] {
			return fmt.Errorf("page header at %d without sizes", off)
		}
		uncompressed, compressed := int64(h.uncompressed), int64(h.compressed)
		data := off + int64(s.i)
		if uncompressed < 0 || uncompressed > max(maxPageBytes, pageRatio*compressed) {
			return fmt.Errorf("page at %d: implausible uncompressed size %d for %d bytes", off, uncompressed, compressed)
		}
		if compressed < 0 || compressed > end-data {
			return fmt.Errorf("page at %d: compressed size %d exceeds the chunk", off, compressed)
		}
		if h.typ == int32(format.DataPageV2) && (h.levels < 0 || h.levels > compressed) {
			return fmt.Errorf("page at %d: levels of %d bytes exceed the page", off, h.levels)
		}
		if !h.notCompressed {
			if err := guardCompressed(ra, data+h.levels, compressed-h.levels, uncompressed, codec); err != nil {
				return fmt.Errorf("page at %d: %w", off, err)
			}
		}
		off = data + compressed
	}
	if !seenData && end > start {
		return fmt.Errorf("data page offset %d is not at a page", dataOffset)
	}
	return nil
}

// scanPageHeader scans the page header at off, reading more bytes into
// *buf as long as the header needs and the chunk, which ends at end, has.
func scanPageHeader(ra io.ReaderAt, off, end int64, buf *[]byte) (thriftScan, error) {
	rem := end - off
	n := min(rem, pageHeaderRead)
	for {
		if int64(cap(*buf)) < n {
			*buf = make([]byte, n)
		}
		b := (*buf)[:n]
		if err := readFull(ra, b, off); err != nil {
			return thriftScan{}, fmt.Errorf("read page header at %d: %w", off, err)
		}
		s := thriftScan{b: b, limit: int(rem)}
		err := s.structure(0, -1)
		if errors.Is(err, errThriftShort) && n < rem {
			n = min(rem, 4*n)
			continue
		}
		if err != nil {
			return thriftScan{}, fmt.Errorf("corrupt page header at %d", off)
		}
		return s, nil
	}
}

// guardCompressed checks the size that the start of a zstd or snappy
// stream of n bytes at off declares against the page's uncompressed size:
// the decoders allocate what it says.
func guardCompressed(ra io.ReaderAt, off, n, uncompressed int64, codec format.CompressionCodec) error {
	var b [18]byte // the longest zstd frame header
	head := b[:min(n, int64(len(b)))]
	if codec != format.Zstd && codec != format.Snappy || len(head) == 0 {
		return nil
	}
	if err := readFull(ra, head, off); err != nil {
		return fmt.Errorf("read page data: %w", err)
	}
	var declared uint64
	var known bool
	if codec == format.Zstd {
		declared, known = zstdContentSize(head)
	} else {
		declared, known = snappyLength(head)
	}
	if known && declared > uint64(uncompressed) {
		return fmt.Errorf("compressed data declares %d bytes, more than the page's %d", declared, uncompressed)
	}
	return nil
}

// zstdContentSize returns the content size declared by the zstd frame header
// at the start of b, if there is one.
func zstdContentSize(b []byte) (uint64, bool) {
	const magic = 0xFD2FB528
	if len(b) < 5 || binary.LittleEndian.Uint32(b) != magic {
		return 0, false
	}
	fhd := b[4]
	single := fhd&0x20 != 0
	p := 5
	if !single {
		p++ // window descriptor
	}
	p += [4]int{0, 1, 2, 4}[fhd&3] // dictionary id
	size := [4]int{0, 2, 4, 8}[fhd>>6]
	if size == 0 && single {
		size = 1
	}
	if size == 0 || p+size > len(b) {
		return 0, false
	}
	var v uint64
	for i := size - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[p+i])
	}
	if size == 2 {
		v += 256
	}
	return v, true
}

// snappyLength returns the decoded length that starts a snappy block.
func snappyLength(b []byte) (uint64, bool) {
	v, n := binary.Uvarint(b)
	return v, n > 0
}

// readFull reads len(b) bytes at off; io.EOF with a full read is success.
func readFull(ra io.ReaderAt, b []byte, off int64) error {
	n, err := ra.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
