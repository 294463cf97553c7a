package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// goodParquet returns a small valid candidates file.
func goodParquet(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	writeTable(t, dir, TableCandidates, FormatParquet, sampleCandidates(3, 1))
	b, err := os.ReadFile(filepath.Join(dir, "candidates.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// splitParquet returns a file's body (up to its footer) and its decoded
// footer.
func splitParquet(t *testing.T, b []byte) ([]byte, *format.FileMetaData) {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(b[len(b)-8:]))
	body := b[:len(b)-8-n]
	md := new(format.FileMetaData)
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), b[len(body):len(b)-8], md); err != nil {
		t.Fatal(err)
	}
	return body, md
}

// joinParquet puts a body and an encoded footer back together.
func joinParquet(body, footer []byte) []byte {
	out := append(append([]byte(nil), body...), footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	return append(out, "PAR1"...)
}

func withFooter(t *testing.T, b []byte, edit func(*format.FileMetaData)) []byte {
	t.Helper()
	body, md := splitParquet(t, b)
	edit(md)
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), md)
	if err != nil {
		t.Fatal(err)
	}
	return joinParquet(body, footer)
}

// firstPageHeader returns the offset and scan of the file's first page
// header (at offset 4).
func firstPageHeader(t *testing.T, b []byte) thriftScan {
	t.Helper()
	s := thriftScan{b: b[4:], limit: len(b) - 4}
	if err := s.structure(0, -1); err != nil {
		t.Fatal(err)
	}
	return s
}

// withPageSize rewrites the first page header's i32 field id (2 or 3) to v.
func withPageSize(t *testing.T, b []byte, id int64, v int32) []byte {
	t.Helper()
	s := firstPageHeader(t, b)
	var out bytes.Buffer
	out.Write(b[:4])
	// Re-encode the header's i32 fields 1-3 (written first, with deltas),
	// then copy the rest of the header and the file unchanged.
	fields := []int32{s.header.typ, s.header.uncompressed, s.header.compressed}
	fields[id-1] = v
	for _, f := range fields {
		out.WriteByte(0x15) // delta 1, i32
		out.Write(binary.AppendUvarint(nil, uint64(uint32((f<<1)^(f>>31)))))
	}
	rest := thriftScan{b: b[4:], limit: len(b) - 4}
	for range 3 { // skip the three fields in the original
		rest.byte()
		rest.uvarint()
	}
	out.Write(b[4+rest.i:])
	return out.Bytes()
}

// fixFirstPageCRC rewrites the checksum (field 4, after the three sizes) of
// the first page header in place, keeping its varint's length; it reports
// whether the checksum fits.
func fixFirstPageCRC(t *testing.T, b []byte) bool {
	t.Helper()
	s := firstPageHeader(t, b)
	data := 4 + s.i
	crc := int32(crc32.ChecksumIEEE(b[data : data+int(s.header.compressed)]))
	r := thriftScan{b: b[4:], limit: len(b) - 4}
	for range 3 {
		r.byte()
		r.uvarint()
	}
	if h, _ := r.byte(); h != 0x15 {
		t.Fatalf("field after the sizes has header %#x, want the checksum", h)
	}
	start := 4 + r.i
	r.uvarint()
	n := 4 + r.i - start
	v := uint32((crc << 1) ^ (crc >> 31))
	for k := range n - 1 {
		b[start+k] = byte(v&0x7f) | 0x80
		v >>= 7
	}
	if v >= 0x80 {
		return false
	}
	b[start+n-1] = byte(v)
	return true
}

// readAllocating reads content as a candidates file and returns the error
// and returns the bytes allocated meanwhile and the error.
func readAllocating(t *testing.T, content []byte) (uint64, error) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := newParquetReader[Candidate]("candidates.parquet", bytes.NewReader(content), int64(len(content)), nil)
	if err == nil {
		err = readAllFrom[Candidate](t, r)
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}

// TestParquetGuard covers corruptions that made parquet-go allocate
// gigabytes (or crash the process) before the guard rejected them.
func TestParquetGuard(t *testing.T) {
	good := goodParquet(t)
	if _, err := readAllocating(t, good); err != nil {
		t.Fatal(err)
	}
	if _, err := readAllocating(t, withPageSize(t, good, 3, firstPageHeader(t, good).header.compressed)); err != nil {
		t.Fatalf("re-encoding the page header unchanged broke the file: %v", err)
	}
	schemaListAt := func(footer []byte) int {
		// Field 1 (version, i32) then field 2 (schema, list): 0x15 v 0x19.
		return bytes.IndexByte(footer[2:], 0x19) + 3
	}
	cases := []struct {
		name    string
		content func(t *testing.T) []byte
		want    string
	}{
		{"huge compressed page size", func(t *testing.T) []byte { return withPageSize(t, good, 3, 1<<30) }, "compressed size 1073741824 exceeds the chunk"},
		{"huge uncompressed page size", func(t *testing.T) []byte { return withPageSize(t, good, 2, 1<<30) }, "implausible uncompressed size 1073741824"},
		{"negative page size", func(t *testing.T) []byte { return withPageSize(t, good, 3, -5) }, "compressed size -5"},
		{"data page offset off a page", func(t *testing.T) []byte {
			return withFooter(t, good, func(md *format.FileMetaData) {
				// A dictionary page where the data page is, and the data
				// page offset off by two.
				cc := &md.RowGroups[0].Columns[0].MetaData
				cc.DictionaryPageOffset = cc.DataPageOffset
				cc.DataPageOffset += 2
			})
		}, "data page offset"},
		{"chunk past the end", func(t *testing.T) []byte {
			return withFooter(t, good, func(md *format.FileMetaData) { md.RowGroups[0].Columns[1].MetaData.TotalCompressedSize = 1 << 40 })
		}, "outside the file"},
		{"lz4", func(t *testing.T) []byte {
			return withFooter(t, good, func(md *format.FileMetaData) { md.RowGroups[0].Columns[0].MetaData.Codec = format.Lz4Raw })
		}, "LZ4 compression is not supported"},
		{"zstd frame declares more than the page", func(t *testing.T) []byte {
			b := append([]byte(nil), good...)
			i := bytes.Index(b, []byte{0x28, 0xb5, 0x2f, 0xfd})
			if i < 0 {
				t.Fatal("no zstd frame")
			}
			// Declare a 4-byte content size, which then reads as the bytes
			// that follow: far more than the page. Fix the page's checksum,
			// which parquet-go would otherwise check first.
			b[i+4] = 0x80
			// Vary the window descriptor until the new checksum fits.
			for w := range 256 {
				b[i+5] = byte(w)
				if fixFirstPageCRC(t, b) {
					return b
				}
			}
			t.Fatal("no checksum fits")
			return nil
		}, "compressed data declares"},
		{"huge schema list in footer", func(t *testing.T) []byte {
			body, md := splitParquet(t, good)
			footer, _ := thrift.Marshal(new(thrift.CompactProtocol), md)
			i := schemaListAt(footer)
			huge := append([]byte{0xfc}, binary.AppendUvarint(nil, 1<<31-1)...)
			footer = append(append(append([]byte(nil), footer[:i]...), huge...), footer[i+1:]...)
			return joinParquet(body, footer)
		}, "corrupt footer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			alloc, err := readAllocating(t, c.content(t))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) ||
				!strings.HasPrefix(err.Error(), "data: candidates.parquet: ") {
				t.Errorf("got %q, want an ErrMalformed naming the file with %q", err, c.want)
			}
			if alloc > 16<<20 {
				t.Errorf("allocated %d MiB", alloc>>20)
			}
		})
	}
}

func TestParquetLZ4FileRejected(t *testing.T) {
	dir := t.TempDir()
	writeParquet(t, filepath.Join(dir, "candidates.parquet"), sampleCandidates(10, 1), parquet.Compression(&parquet.Lz4Raw))
	_, err := ReadAll[Candidate](dir, TableCandidates)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "LZ4") {
		t.Errorf("got %v", err)
	}
}

func TestParquetOtherCodecs(t *testing.T) {
	for _, codec := range []parquet.WriterOption{
		parquet.Compression(&parquet.Snappy), parquet.Compression(&parquet.Gzip), parquet.Compression(&parquet.Uncompressed),
	} {
		dir := t.TempDir()
		rows := sampleAds(500, 1)
		writeParquet(t, filepath.Join(dir, "ads.parquet"), rows, codec)
		got, err := ReadAll[Ad](dir, TableAds)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffRows(rows, got); d != "" {
			t.Fatal(d)
		}
	}
}
