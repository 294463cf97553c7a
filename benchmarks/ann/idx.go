package main

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// readIDXImages reads an IDX file of unsigned bytes (magic 0x00000803 for
// images, any rank ≥ 1) and returns its items as float32 rows of the
// product of the remaining dimensions, pixel values 0..255 unscaled.
// Files ending in .gz are decompressed on the fly.
func readIDXImages(path string) (rows []float32, n, dim int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	rows, n, dim, err = decodeIDX(r)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return rows, n, dim, nil
}

// decodeIDX parses the IDX format: two zero bytes, a type byte (0x08 for
// unsigned bytes, the only type read here), a rank byte, rank big-endian
// uint32 dimensions, then the data.
func decodeIDX(r io.Reader) ([]float32, int, int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, 0, 0, fmt.Errorf("idx header: %w", err)
	}
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, 0, 0, errors.New("not an IDX file (bad magic)")
	}
	if hdr[2] != 0x08 {
		return nil, 0, 0, fmt.Errorf("IDX element type 0x%02x, only unsigned bytes (0x08) are read", hdr[2])
	}
	rank := int(hdr[3])
	if rank < 1 {
		return nil, 0, 0, errors.New("IDX rank 0")
	}
	dims := make([]uint32, rank)
	if err := binary.Read(r, binary.BigEndian, dims); err != nil {
		return nil, 0, 0, fmt.Errorf("idx dimensions: %w", err)
	}
	n, dim := int(dims[0]), 1
	for _, d := range dims[1:] {
		dim *= int(d)
		if dim > 1<<24 {
			return nil, 0, 0, errors.New("IDX item too large")
		}
	}
	if n > 1<<26 || n*dim > 1<<31 {
		return nil, 0, 0, fmt.Errorf("IDX file of %d items of %d values is too large", n, dim)
	}
	raw := make([]byte, n*dim)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, 0, 0, fmt.Errorf("idx data (%d items of %d bytes): %w", n, dim, err)
	}
	rows := make([]float32, len(raw))
	for i, b := range raw {
		rows[i] = float32(b)
	}
	return rows, n, dim, nil
}

// writeFvecs writes rows in the .fvecs format: per row an int32 dimension
// then the floats, little-endian.
func writeFvecs(path string, rows []float32, dim int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var b [4]byte
	for i := 0; i < len(rows); i += dim {
		binary.LittleEndian.PutUint32(b[:], uint32(dim))
		w.Write(b[:])
		for _, v := range rows[i : i+dim] {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			w.Write(b[:])
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readIvecs reads an .ivecs file (per row an int32 count then the int32
// values) whose rows all hold k values.
func readIvecs(path string, k int) ([][]int32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rowBytes := 4 * (k + 1)
	if len(b)%rowBytes != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of rows of %d ids", path, len(b), k)
	}
	out := make([][]int32, len(b)/rowBytes)
	for i := range out {
		r := b[i*rowBytes:]
		if c := int(binary.LittleEndian.Uint32(r)); c != k {
			return nil, fmt.Errorf("%s: row %d holds %d ids, want %d", path, i, c, k)
		}
		ids := make([]int32, k)
		for j := range ids {
			ids[j] = int32(binary.LittleEndian.Uint32(r[4+4*j:]))
		}
		out[i] = ids
	}
	return out, nil
}
