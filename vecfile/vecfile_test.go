package vecfile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func fvecsBytes(t testing.TB, data []float32, dim int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeFvecs(&b, data, dim); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestFvecsRoundTrip(t *testing.T) {
	data := []float32{1, -2, 3.5, float32(math.Inf(1)), 0, 6}
	raw := fvecsBytes(t, data, 3)
	if len(raw) != 2*16 || binary.LittleEndian.Uint32(raw) != 3 || binary.LittleEndian.Uint32(raw[16:]) != 3 {
		t.Fatalf("fvecs bytes %v", raw)
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[8:])); got != -2 {
		t.Errorf("second value %v, want -2", got)
	}
	got, dim, err := DecodeFvecs(bytes.NewReader(raw))
	if err != nil || dim != 3 || !slices.Equal(got, data) {
		t.Fatalf("DecodeFvecs = %v, %d, %v", got, dim, err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "a.fvecs")
	if err := WriteFvecs(p, data, 2); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p, gzipFile(t, p)} {
		got, dim, err = ReadFvecs(path)
		if err != nil || dim != 2 || !slices.Equal(got, data) {
			t.Errorf("ReadFvecs(%s) = %v, %d, %v", path, got, dim, err)
		}
		got, dim, err = Read(path)
		if err != nil || dim != 2 || !slices.Equal(got, data) {
			t.Errorf("Read(%s) = %v, %d, %v", path, got, dim, err)
		}
	}
	empty, dim, err := DecodeFvecs(bytes.NewReader(nil))
	if err != nil || dim != 0 || len(empty) != 0 {
		t.Errorf("empty input: %v, %d, %v", empty, dim, err)
	}
}

func TestIvecsAndBvecs(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "gt.ivecs")
	ids := []int32{7, -1, 1 << 30, 0}
	if err := WriteIvecs(p, ids, 2); err != nil {
		t.Fatal(err)
	}
	got, dim, err := ReadIvecs(p)
	if err != nil || dim != 2 || !slices.Equal(got, ids) {
		t.Fatalf("ReadIvecs = %v, %d, %v", got, dim, err)
	}
	// A .bvecs row: dimension 3, bytes 1 2 255.
	bp := filepath.Join(dir, "b.bvecs")
	os.WriteFile(bp, []byte{3, 0, 0, 0, 1, 2, 255, 3, 0, 0, 0, 4, 5, 6}, 0o644)
	fl, dim, err := Read(bp)
	if err != nil || dim != 3 || !slices.Equal(fl, []float32{1, 2, 255, 4, 5, 6}) {
		t.Errorf("Read(bvecs) = %v, %d, %v", fl, dim, err)
	}
	if _, _, err := Read(filepath.Join(dir, "x.csv")); err == nil || !strings.Contains(err.Error(), "x.csv") {
		t.Errorf("unknown format: %v", err)
	}
	if err := EncodeIvecs(&bytes.Buffer{}, ids, 3); err == nil {
		t.Error("EncodeIvecs of 4 values as rows of 3: no error")
	}
	if err := EncodeFvecs(&bytes.Buffer{}, nil, 0); err == nil {
		t.Error("EncodeFvecs with dimension 0: no error")
	}
}

func TestVecsErrorsNameVectorAndOffset(t *testing.T) {
	good := fvecsBytes(t, []float32{1, 2, 3, 4, 5, 6}, 3)
	mixed := slices.Concat(good[:16], fvecsBytes(t, []float32{1, 2}, 2))
	zero := slices.Concat(good, []byte{0, 0, 0, 0})
	neg := slices.Concat(good[:16], []byte{0xff, 0xff, 0xff, 0xff})
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"truncated values", good[:30], "vector 1 at byte offset 16: input ends after 10 of its 12 value bytes"},
		{"truncated dimension", good[:18], "vector 1 at byte offset 16: input ends inside the dimension (2 of 4 bytes)"},
		{"dimension change", mixed, "vector 1 at byte offset 16: dimension 2, the vectors before it have 3"},
		{"zero dimension", zero, "vector 2 at byte offset 32: dimension 0"},
		{"negative dimension", neg, "vector 1 at byte offset 16: dimension -1"},
	} {
		_, _, err := DecodeFvecs(bytes.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	p := filepath.Join(t.TempDir(), "bad.fvecs")
	os.WriteFile(p, good[:30], 0o644)
	if _, _, err := ReadFvecs(p); err == nil || !strings.Contains(err.Error(), "read "+p+": vector 1") {
		t.Errorf("ReadFvecs of a truncated file: %v", err)
	}
	if _, _, err := ReadFvecs(filepath.Join(t.TempDir(), "missing.fvecs")); err == nil || !strings.Contains(err.Error(), "missing.fvecs") {
		t.Errorf("missing file: %v", err)
	}
	gz := filepath.Join(t.TempDir(), "notgz.fvecs.gz")
	os.WriteFile(gz, good, 0o644)
	if _, _, err := ReadFvecs(gz); err == nil || !strings.Contains(err.Error(), "notgz.fvecs.gz: gzip header") {
		t.Errorf("bad gzip: %v", err)
	}
}

// idx2x3 is two 2×3 "images".
var idx2x3 = []byte{0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255}

func TestIDX(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "x-idx3-ubyte")
	if err := os.WriteFile(plain, idx2x3, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plain, gzipFile(t, plain)} {
		rows, n, dim, err := ReadIDX(p)
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 || dim != 6 || rows[0] != 0 || rows[5] != 5 || rows[11] != 255 {
			t.Errorf("%s: n=%d dim=%d rows=%v", p, n, dim, rows)
		}
		if rows2, dim2, err := Read(p); err != nil || dim2 != 6 || !slices.Equal(rows, rows2) {
			t.Errorf("Read(%s) = %d, %v", p, dim2, err)
		}
	}
	// One item of two big-endian float32 and of two int16.
	f := []byte{0, 0, 0x0D, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0}
	if rows, n, dim, err := DecodeIDX(bytes.NewReader(f)); err != nil || n != 1 || dim != 2 || rows[0] != 1 || rows[1] != -2 {
		t.Errorf("float IDX: %v %d %d %v", rows, n, dim, err)
	}
	s := []byte{0, 0, 0x0B, 1, 0, 0, 0, 2, 0xff, 0xfe, 0, 7}
	if rows, n, dim, err := DecodeIDX(bytes.NewReader(s)); err != nil || n != 2 || dim != 1 || rows[0] != -2 || rows[1] != 7 {
		t.Errorf("int16 IDX: %v %d %d %v", rows, n, dim, err)
	}
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{idx2x3[:3], "idx header at byte offset 0: input ends after 3 of 4 bytes"},
		{idx2x3[:10], "idx sizes at byte offset 4: input ends after 6 of 12 bytes"},
		{idx2x3[:25], "idx item 1 at byte offset 22: input ends (9 of 12 data bytes for 2 items)"},
		{append(slices.Clone(idx2x3), 9), "idx data at byte offset 28: trailing bytes after 2 items"},
		{append([]byte{1}, idx2x3[1:]...), "magic 0100"},
		{[]byte{0, 0, 0x0A, 1, 0, 0, 0, 1, 0}, "byte offset 2: unknown element type 0x0a"},
		{[]byte{0, 0, 0x08, 0}, "rank 0"},
		{[]byte{0, 0, 0x08, 2, 0, 0, 0, 1, 0, 0, 0, 0}, "items of 0 values"},
		{[]byte{0, 0, 0x08, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0xff, 0xff}, "more than"},
		// A header claiming 4G items of one byte with no data fails without allocating them.
		{[]byte{0, 0, 0x08, 1, 0x7f, 0xff, 0xff, 0xff}, "idx item 0 at byte offset 8: input ends"},
	} {
		if _, _, _, err := DecodeIDX(bytes.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DecodeIDX(% x): %v, want %q", c.in, err, c.want)
		}
	}
	p := filepath.Join(dir, "short-idx1-ubyte")
	os.WriteFile(p, idx2x3[:25], 0o644)
	if _, _, _, err := ReadIDX(p); err == nil || !strings.Contains(err.Error(), p+": idx item 1") {
		t.Errorf("ReadIDX of a short file: %v", err)
	}
}

func gzipFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(raw)
	zw.Close()
	gz := path + ".gz"
	if err := os.WriteFile(gz, zb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return gz
}
