package vecfile

import (
	"bytes"
	"testing"
)

// vecsSeeds is a small corpus of good and broken TEXMEX files.
func vecsSeeds(f *testing.F) {
	good := fvecsBytes(f, []float32{1, 2, 3, 4, 5, 6}, 3)
	for _, s := range [][]byte{nil, good, good[:30], good[:18], {1, 0, 0, 0, 7}, {0, 0, 0, 0}, {0xff, 0xff, 0, 0}, {2, 0, 0, 0, 1, 2, 3, 0, 0, 0, 1, 2, 3}} {
		f.Add(s)
	}
}

// FuzzDecodeFvecs: no panic; what decodes re-encodes to the same bytes.
func FuzzDecodeFvecs(f *testing.F) {
	vecsSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		data, dim, err := DecodeFvecs(bytes.NewReader(in))
		if err != nil {
			return
		}
		if dim == 0 {
			if len(in) != 0 || len(data) != 0 {
				t.Fatalf("dimension 0 from %d bytes", len(in))
			}
			return
		}
		var b bytes.Buffer
		if err := EncodeFvecs(&b, data, dim); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), in) {
			t.Fatalf("re-encoded %x, decoded from %x", b.Bytes(), in)
		}
	})
}

// FuzzDecodeIvecs: no panic; what decodes re-encodes to the same bytes.
func FuzzDecodeIvecs(f *testing.F) {
	vecsSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		data, dim, err := DecodeIvecs(bytes.NewReader(in))
		if err != nil || dim == 0 {
			return
		}
		var b bytes.Buffer
		if err := EncodeIvecs(&b, data, dim); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), in) {
			t.Fatalf("re-encoded %x, decoded from %x", b.Bytes(), in)
		}
	})
}

// FuzzDecodeBvecs: no panic; a decoded file has 4+dim bytes per vector.
func FuzzDecodeBvecs(f *testing.F) {
	vecsSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		data, dim, err := DecodeBvecs(bytes.NewReader(in))
		if err != nil || dim == 0 {
			return
		}
		if n := len(data) / dim; len(data)%dim != 0 || n*(4+dim) != len(in) {
			t.Fatalf("%d values of dimension %d from %d bytes", len(data), dim, len(in))
		}
	})
}

// FuzzDecodeIDX: no panic; a decoded file holds exactly its header's
// values.
func FuzzDecodeIDX(f *testing.F) {
	for _, s := range [][]byte{idx2x3, idx2x3[:25], idx2x3[:3], {0, 0, 0x0D, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0x3f, 0x80, 0, 0},
		{0, 0, 0x0E, 1, 0, 0, 0, 1, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}, {0, 0, 0x08, 1, 0x7f, 0xff, 0xff, 0xff}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rows, n, dim, err := DecodeIDX(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(rows) != n*dim || dim < 1 {
			t.Fatalf("%d values for %d items of %d", len(rows), n, dim)
		}
		rank := int(in[3])
		size := idxTypes[in[2]]
		if 4+4*rank+len(rows)*size != len(in) {
			t.Fatalf("%d values of %d bytes from %d bytes with rank %d", len(rows), size, len(in), rank)
		}
	})
}
