package vecfile

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandemml/tandem/internal/atomicfile"
)

// MaxDim is the largest dimension a vector file may declare (GIST has 960,
// the largest of the common sets).
const MaxDim = 1 << 16

// DecodeFvecs reads .fvecs vectors from r until its end and returns them
// row-major with their dimension (0 for an empty input).
func DecodeFvecs(r io.Reader) ([]float32, int, error) {
	return decodeVecs(r, 4, 0, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
}

// DecodeIvecs reads .ivecs vectors (ground truth or result ids) from r
// until its end and returns them row-major with their dimension.
func DecodeIvecs(r io.Reader) ([]int32, int, error) {
	return decodeVecs(r, 4, 0, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
}

// DecodeBvecs reads .bvecs vectors (one byte per value) from r until its
// end and returns them row-major with their dimension.
func DecodeBvecs(r io.Reader) ([]uint8, int, error) {
	return decodeVecs(r, 1, 0, func(b []byte) uint8 { return b[0] })
}

// decodeVecs is the TEXMEX layout with values of size bytes; capHint is
// the expected number of values (0: unknown). Errors give the offset at
// which the vector starts.
func decodeVecs[T any](r io.Reader, size int, capHint int, conv func([]byte) T) ([]T, int, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var out []T
	if capHint > 0 {
		out = make([]T, 0, capHint)
	}
	dim := 0
	var hdr [4]byte
	var buf []byte
	var off int64
	for i := 0; ; i++ {
		n, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			return out, dim, nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, 0, fmt.Errorf("vector %d at byte offset %d: input ends inside the dimension (%d of 4 bytes)", i, off, n)
			}
			return nil, 0, fmt.Errorf("vector %d at byte offset %d: %w", i, off, err)
		}
		d := int64(int32(binary.LittleEndian.Uint32(hdr[:])))
		switch {
		case d < 1 || d > MaxDim:
			return nil, 0, fmt.Errorf("vector %d at byte offset %d: dimension %d is outside [1, %d]", i, off, d, MaxDim)
		case dim != 0 && int(d) != dim:
			return nil, 0, fmt.Errorf("vector %d at byte offset %d: dimension %d, the vectors before it have %d", i, off, d, dim)
		}
		dim = int(d)
		if buf == nil {
			buf = make([]byte, dim*size)
		}
		if n, err := io.ReadFull(br, buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
				return nil, 0, fmt.Errorf("vector %d at byte offset %d: input ends after %d of its %d value bytes", i, off, n, len(buf))
			}
			return nil, 0, fmt.Errorf("vector %d at byte offset %d: %w", i, off, err)
		}
		for j := 0; j < len(buf); j += size {
			out = append(out, conv(buf[j:j+size]))
		}
		off += 4 + int64(len(buf))
	}
}

// open opens path, decompressing it when its name ends in .gz, and returns
// the reader, a closer, and the file's size when it is not compressed (0
// otherwise).
func open(path string) (io.Reader, func(), int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	if !strings.HasSuffix(path, ".gz") {
		var size int64
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		return f, func() { f.Close() }, size, nil
	}
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		f.Close()
		return nil, nil, 0, fmt.Errorf("gzip header: %w", err)
	}
	return zr, func() { zr.Close(); f.Close() }, 0, nil
}

// ReadFvecs reads an .fvecs file (.fvecs.gz decompressed).
func ReadFvecs(path string) ([]float32, int, error) {
	return readVecs(path, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
}

// ReadIvecs reads an .ivecs file (.ivecs.gz decompressed).
func ReadIvecs(path string) ([]int32, int, error) {
	return readVecs(path, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
}

// ReadBvecs reads a .bvecs file (.bvecs.gz decompressed).
func ReadBvecs(path string) ([]uint8, int, error) {
	return readVecs(path, 1, func(b []byte) uint8 { return b[0] })
}

func readVecs[T any](path string, size int, conv func([]byte) T) ([]T, int, error) {
	r, closeFn, fsize, err := open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", path, err)
	}
	defer closeFn()
	// The values take all but the 4-byte dimensions: fsize/size bounds them.
	hint := 0
	if fsize > 0 && fsize/int64(size) < 1<<31 {
		hint = int(fsize / int64(size))
	}
	out, dim, err := decodeVecs(r, size, hint, conv)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", path, err)
	}
	return out, dim, nil
}

// Read reads a file of float vectors in the format its name says, a .gz
// suffix aside: .fvecs, .bvecs (values converted to float32), or IDX (a
// name ending in .idx or containing "-idx", as train-images-idx3-ubyte).
func Read(path string) ([]float32, int, error) {
	name := strings.TrimSuffix(filepath.Base(path), ".gz")
	switch {
	case strings.HasSuffix(name, ".fvecs"):
		return ReadFvecs(path)
	case strings.HasSuffix(name, ".bvecs"):
		b, dim, err := ReadBvecs(path)
		if err != nil {
			return nil, 0, err
		}
		out := make([]float32, len(b))
		for i, v := range b {
			out[i] = float32(v)
		}
		return out, dim, nil
	case strings.HasSuffix(name, ".idx") || strings.Contains(name, "-idx"):
		rows, _, dim, err := ReadIDX(path)
		return rows, dim, err
	}
	return nil, 0, fmt.Errorf("read %s: unknown vector format: want .fvecs, .bvecs or IDX (.idx or -idx in the name), optionally .gz", path)
}

// EncodeFvecs writes the row-major vectors (len(data)/dim of them) in the
// .fvecs layout.
func EncodeFvecs(w io.Writer, data []float32, dim int) error {
	return encodeVecs(w, data, dim, func(b []byte, v float32) { binary.LittleEndian.PutUint32(b, math.Float32bits(v)) })
}

// EncodeIvecs writes the row-major vectors (len(data)/dim of them) in the
// .ivecs layout.
func EncodeIvecs(w io.Writer, data []int32, dim int) error {
	return encodeVecs(w, data, dim, func(b []byte, v int32) { binary.LittleEndian.PutUint32(b, uint32(v)) })
}

func encodeVecs[T any](w io.Writer, data []T, dim int, put func([]byte, T)) error {
	if dim < 1 || dim > MaxDim {
		return fmt.Errorf("encode vectors: dimension %d is outside [1, %d]", dim, MaxDim)
	}
	if len(data)%dim != 0 {
		return fmt.Errorf("encode vectors: %d values are not a whole number of vectors of %d", len(data), dim)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	row := make([]byte, 4*(dim+1))
	binary.LittleEndian.PutUint32(row, uint32(dim))
	for i := 0; i < len(data); i += dim {
		for j, v := range data[i : i+dim] {
			put(row[4+4*j:], v)
		}
		if _, err := bw.Write(row); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteFvecs replaces path with the vectors in the .fvecs layout; a failed
// write leaves no partial file.
func WriteFvecs(path string, data []float32, dim int) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return EncodeFvecs(w, data, dim) }); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteIvecs replaces path with the vectors in the .ivecs layout; a failed
// write leaves no partial file.
func WriteIvecs(path string, data []int32, dim int) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return EncodeIvecs(w, data, dim) }); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
