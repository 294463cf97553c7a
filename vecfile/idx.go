package vecfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// idxTypes maps an IDX type byte to the size of its values.
var idxTypes = map[byte]int{0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}

// maxIDXValues bounds the values of one IDX file (8 GiB of float32).
const maxIDXValues = 1 << 31

// DecodeIDX reads an IDX file from r and returns its items as float32 rows
// (n items of dim values each, row-major). Values are converted from their
// type as they are: pixel bytes stay 0..255, float64 values are rounded.
// Input after the last item is an error.
func DecodeIDX(r io.Reader) (rows []float32, n, dim int, err error) {
	var hdr [4]byte
	if k, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, 0, 0, fmt.Errorf("idx header at byte offset 0: input ends after %d of 4 bytes", k)
	}
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, 0, 0, fmt.Errorf("idx header at byte offset 0: magic %02x%02x, want 0000: not an IDX file", hdr[0], hdr[1])
	}
	size, ok := idxTypes[hdr[2]]
	if !ok {
		return nil, 0, 0, fmt.Errorf("idx header at byte offset 2: unknown element type 0x%02x", hdr[2])
	}
	rank := int(hdr[3])
	if rank < 1 {
		return nil, 0, 0, errors.New("idx header at byte offset 3: rank 0")
	}
	sizes := make([]byte, 4*rank)
	if k, err := io.ReadFull(r, sizes); err != nil {
		return nil, 0, 0, fmt.Errorf("idx sizes at byte offset 4: input ends after %d of %d bytes", k, len(sizes))
	}
	n64, dim64 := uint64(binary.BigEndian.Uint32(sizes)), uint64(1)
	for i := 1; i < rank; i++ {
		dim64 *= uint64(binary.BigEndian.Uint32(sizes[4*i:]))
		if dim64 > MaxDim {
			return nil, 0, 0, fmt.Errorf("idx sizes at byte offset %d: items of more than %d values", 4+4*i, MaxDim)
		}
	}
	if dim64 == 0 {
		return nil, 0, 0, errors.New("idx sizes at byte offset 8: items of 0 values")
	}
	if n64*dim64 > maxIDXValues {
		return nil, 0, 0, fmt.Errorf("idx sizes at byte offset 4: %d items of %d values is more than %d values", n64, dim64, maxIDXValues)
	}
	n, dim = int(n64), int(dim64)
	start := int64(4 + 4*rank)
	need := int64(n) * int64(dim) * int64(size)
	// ReadAll grows with what is there, not with what the header claims.
	raw, err := io.ReadAll(io.LimitReader(r, need))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("idx data at byte offset %d: %w", start+int64(len(raw)), err)
	}
	if int64(len(raw)) < need {
		item := int64(len(raw)) / (int64(dim) * int64(size))
		return nil, 0, 0, fmt.Errorf("idx item %d at byte offset %d: input ends (%d of %d data bytes for %d items)", item, start+item*int64(dim)*int64(size), len(raw), need, n)
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return nil, 0, 0, fmt.Errorf("idx data at byte offset %d: trailing bytes after %d items", start+need, n)
	}
	rows = make([]float32, n*dim)
	for i := range rows {
		b := raw[i*size:]
		switch hdr[2] {
		case 0x08:
			rows[i] = float32(b[0])
		case 0x09:
			rows[i] = float32(int8(b[0]))
		case 0x0B:
			rows[i] = float32(int16(binary.BigEndian.Uint16(b)))
		case 0x0C:
			rows[i] = float32(int32(binary.BigEndian.Uint32(b)))
		case 0x0D:
			rows[i] = math.Float32frombits(binary.BigEndian.Uint32(b))
		case 0x0E:
			rows[i] = float32(math.Float64frombits(binary.BigEndian.Uint64(b)))
		}
	}
	return rows, n, dim, nil
}

// ReadIDX reads an IDX file (.gz decompressed); see DecodeIDX.
func ReadIDX(path string) (rows []float32, n, dim int, err error) {
	r, closeFn, _, err := open(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read %s: %w", path, err)
	}
	defer closeFn()
	rows, n, dim, err = DecodeIDX(r)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read %s: %w", path, err)
	}
	return rows, n, dim, nil
}
