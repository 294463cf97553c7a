package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tandemml/tandem/bf16"
	"github.com/tandemml/tandem/internal/atomicfile"
)

// DType is a tensor's element type as spelled in the header.
type DType string

// The supported dtypes.
const (
	F32  DType = "F32"
	BF16 DType = "BF16"
)

// size returns the bytes per element of d, or 0 when d is not supported.
func (d DType) size() int {
	switch d {
	case F32:
		return 4
	case BF16:
		return 2
	}
	return 0
}

// otherDTypes are the safetensors dtypes this package does not support;
// they get a clearer error than a dtype that does not exist at all.
var otherDTypes = []string{
	"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
	"I16", "U16", "F16", "I32", "U32", "F64", "I64", "U64", "C64",
}

func checkDType(d string) error {
	if DType(d).size() != 0 {
		return nil
	}
	if slices.Contains(otherDTypes, d) {
		return fmt.Errorf("dtype %q is not supported (only F32 and BF16 are)", d)
	}
	return fmt.Errorf("unknown dtype %q (want F32 or BF16)", d)
}

// MaxHeaderSize is the largest header [Decode] accepts, in bytes.
const MaxHeaderSize = 100 << 20

// metadataKey is the header entry that holds the metadata.
const metadataKey = "__metadata__"

// Tensor is a named tensor. Data holds the product of Shape values in
// row-major order; an empty Shape is a scalar with one value.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []float32
}

// File is a decoded checkpoint.
type File struct {
	Path    string            // the path or name given to Read or Decode
	Meta    map[string]string // never nil
	Tensors map[string]Tensor // by name
	Names   []string          // the tensor names, sorted
}

func errorf(file, format string, args ...any) error {
	return fmt.Errorf("checkpoint: %s: %w", file, fmt.Errorf(format, args...))
}

func tensorErrorf(file, tensor, format string, args ...any) error {
	return fmt.Errorf("checkpoint: %s: tensor %q: %w", file, tensor, fmt.Errorf(format, args...))
}

// errTooLarge is numElements' error for a product over its limit.
var errTooLarge = errors.New("too many elements")

// numElements returns the product of shape, or an error when a dimension
// is negative or the product exceeds limit (errTooLarge).
func numElements(shape []int64, limit uint64) (uint64, error) {
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d == 0 {
			return 0, nil
		}
	}
	n := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > limit {
			return 0, errTooLarge
		}
		n = lo
	}
	return n, nil
}

// Write writes tensors and meta to path in the safetensors format. See
// the package documentation for the layout and the atomic replacement.
// The tensors must have distinct, non-empty, valid UTF-8 names other than
// "__metadata__", a supported dtype, non-negative dimensions, as many
// values as their shape says, and finite values that stay finite in their
// dtype.
func Write(path string, tensors []Tensor, meta map[string]string) error {
	header, order, err := encodeHeader(path, tensors, meta)
	if err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
		if _, err := w.Write(n[:]); err != nil {
			return err
		}
		if _, err := w.Write(header); err != nil {
			return err
		}
		for _, i := range order {
			if err := writeData(w, &tensors[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// encodeHeader validates the tensors and returns the padded header and
// the tensor indices in sorted name order.
func encodeHeader(path string, tensors []Tensor, meta map[string]string) ([]byte, []int, error) {
	seen := make(map[string]bool, len(tensors))
	for i := range tensors {
		t := &tensors[i]
		if t.Name == "" {
			return nil, nil, errorf(path, "tensor %d has an empty name", i)
		}
		if !utf8.ValidString(t.Name) {
			return nil, nil, errorf(path, "tensor name %q is not valid UTF-8", t.Name)
		}
		if t.Name == metadataKey {
			return nil, nil, errorf(path, "tensor name %q is reserved for metadata", t.Name)
		}
		if seen[t.Name] {
			return nil, nil, errorf(path, "duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		if err := checkDType(string(t.DType)); err != nil {
			return nil, nil, tensorErrorf(path, t.Name, "%w", err)
		}
		shape := make([]int64, len(t.Shape))
		for j, d := range t.Shape {
			shape[j] = int64(d)
		}
		n, err := numElements(shape, math.MaxInt64/4)
		if err == errTooLarge {
			return nil, nil, tensorErrorf(path, t.Name, "shape %v has too many elements", t.Shape)
		}
		if err != nil {
			return nil, nil, tensorErrorf(path, t.Name, "%w", err)
		}
		if uint64(len(t.Data)) != n {
			return nil, nil, tensorErrorf(path, t.Name, "shape %v needs %d values, data has %d", t.Shape, n, len(t.Data))
		}
		for j, v := range t.Data {
			if err := checkFinite(v); err != nil {
				return nil, nil, tensorErrorf(path, t.Name, "value %d %w", j, err)
			}
			if t.DType == BF16 && math.IsInf(float64(bf16.ToFloat32(bf16.FromFloat32(v))), 0) {
				return nil, nil, tensorErrorf(path, t.Name, "value %d (%g) overflows bfloat16", j, v)
			}
		}
	}
	for k, v := range meta {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, errorf(path, "metadata %q is not valid UTF-8", k)
		}
	}

	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch na, nb := tensors[a].Name, tensors[b].Name; {
		case na < nb:
			return -1
		case na > nb:
			return 1
		}
		return 0
	})

	var h bytes.Buffer
	h.WriteByte('{')
	if len(meta) > 0 {
		writeString(&h, metadataKey)
		h.WriteString(":{")
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeString(&h, k)
			h.WriteByte(':')
			writeString(&h, meta[k])
		}
		h.WriteByte('}')
	}
	offset := uint64(0)
	for i, ti := range order {
		t := &tensors[ti]
		if i > 0 || len(meta) > 0 {
			h.WriteByte(',')
		}
		writeString(&h, t.Name)
		h.WriteString(`:{"dtype":`)
		writeString(&h, string(t.DType))
		h.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := offset + uint64(len(t.Data)*t.DType.size())
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	h.WriteByte('}')
	for (8+h.Len())%8 != 0 {
		h.WriteByte(' ')
	}
	return h.Bytes(), order, nil
}

// writeString writes s as a JSON string, without escaping HTML
// characters.
func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	// Encoding a string cannot fail; Encode appends a newline.
	_ = enc.Encode(s)
	buf.Truncate(buf.Len() - 1)
}

func checkFinite(v float32) error {
	switch {
	case math.IsNaN(float64(v)):
		return fmt.Errorf("is NaN")
	case math.IsInf(float64(v), 0):
		return fmt.Errorf("is %g", v)
	}
	return nil
}

// writeData writes the values of t little-endian in t's dtype.
func writeData(w io.Writer, t *Tensor) error {
	const chunk = 16 << 10
	size := t.DType.size()
	buf := make([]byte, chunk*size)
	for data := t.Data; len(data) > 0; {
		n := min(len(data), chunk)
		b := buf[:n*size]
		if t.DType == BF16 {
			for i, v := range data[:n] {
				binary.LittleEndian.PutUint16(b[2*i:], bf16.FromFloat32(v))
			}
		} else {
			for i, v := range data[:n] {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// writeAtomic replaces path (see package atomicfile), naming the file in
// errors.
func writeAtomic(path string, write func(io.Writer) error) error {
	if err := atomicfile.Write(path, write); err != nil {
		return errorf(path, "%w", err)
	}
	return nil
}

// Read reads and decodes the checkpoint at path; see [Decode].
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return Decode(path, b)
}

// entry is one tensor's header entry.
type entry struct {
	name       string
	dtype      DType
	shape      []int64
	begin, end uint64
}

// Decode decodes the safetensors bytes b; name, usually the file's path,
// is the File's Path and is named in errors. It checks the header and
// the tensor layout as described in the package documentation, and that
// every value is finite.
func Decode(name string, b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, errorf(name, "truncated: %d bytes, shorter than the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > MaxHeaderSize {
		return nil, errorf(name, "header length %d is over the %d byte limit", n, MaxHeaderSize)
	}
	if n > uint64(len(b)-8) {
		return nil, errorf(name, "truncated: header length %d but only %d bytes follow it", n, len(b)-8)
	}
	header, data := b[8:8+n], b[8+n:]

	fields, err := parseObject(header, "tensor name")
	if err != nil {
		return nil, errorf(name, "header: %w", err)
	}
	f := &File{Path: name, Meta: map[string]string{}, Tensors: map[string]Tensor{}}
	entries := make([]entry, 0, len(fields))
	for _, fl := range fields {
		if fl.key == metadataKey {
			if err := decodeMeta(fl.value, f.Meta); err != nil {
				return nil, errorf(name, "%s: %w", metadataKey, err)
			}
			continue
		}
		e, err := decodeEntry(fl.key, fl.value, uint64(len(data)))
		if err != nil {
			return nil, tensorErrorf(name, fl.key, "%w", err)
		}
		entries = append(entries, e)
	}

	// The tensors must tile the data buffer exactly.
	byOffset := slices.Clone(entries)
	slices.SortStableFunc(byOffset, func(a, b entry) int {
		if a.begin != b.begin {
			return cmpU64(a.begin, b.begin)
		}
		return cmpU64(a.end, b.end)
	})
	next, prev := uint64(0), ""
	for _, e := range byOffset {
		switch {
		case e.begin < next:
			return nil, tensorErrorf(name, e.name, "data_offsets [%d, %d] overlap tensor %q, which ends at %d", e.begin, e.end, prev, next)
		case e.begin > next:
			return nil, tensorErrorf(name, e.name, "data_offsets [%d, %d] leave a gap of bytes [%d, %d) before it", e.begin, e.end, next, e.begin)
		}
		next, prev = e.end, e.name
	}
	if next != uint64(len(data)) {
		return nil, errorf(name, "tensors cover bytes [0, %d) of a %d byte data buffer", next, len(data))
	}

	for _, e := range entries {
		t := Tensor{Name: e.name, DType: e.dtype, Shape: make([]int, len(e.shape))}
		for i, d := range e.shape {
			t.Shape[i] = int(d)
		}
		raw := data[e.begin:e.end]
		switch e.dtype {
		case F32:
			t.Data = make([]float32, len(raw)/4)
			for i := range t.Data {
				t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case BF16:
			t.Data = make([]float32, len(raw)/2)
			for i := range t.Data {
				t.Data[i] = bf16.ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
			}
		}
		for i, v := range t.Data {
			if err := checkFinite(v); err != nil {
				return nil, tensorErrorf(name, e.name, "value %d %w", i, err)
			}
		}
		f.Tensors[e.name] = t
		f.Names = append(f.Names, e.name)
	}
	slices.Sort(f.Names)
	return f, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// decodeEntry decodes and checks one tensor's header entry against a
// data buffer of dataLen bytes.
func decodeEntry(name string, raw json.RawMessage, dataLen uint64) (entry, error) {
	e := entry{name: name}
	if name == "" {
		return e, fmt.Errorf("empty tensor name")
	}
	fields, err := parseObject(raw, "field")
	if err != nil {
		return e, err
	}
	var dtype *string
	var shape, offsets []int64
	for _, fl := range fields {
		switch fl.key {
		case "dtype":
			var s string
			if err := unmarshalKind(fl.value, '"', &s); err != nil {
				return e, fmt.Errorf("dtype: %w", err)
			}
			dtype = &s
		case "shape":
			if err := unmarshalKind(fl.value, '[', &shape); err != nil {
				return e, fmt.Errorf("shape: %w", err)
			}
		case "data_offsets":
			if err := unmarshalKind(fl.value, '[', &offsets); err != nil {
				return e, fmt.Errorf("data_offsets: %w", err)
			}
		default:
			return e, fmt.Errorf("unknown field %q", fl.key)
		}
	}
	switch {
	case dtype == nil:
		return e, fmt.Errorf("missing dtype")
	case shape == nil:
		return e, fmt.Errorf("missing shape")
	case offsets == nil:
		return e, fmt.Errorf("missing data_offsets")
	}
	if err := checkDType(*dtype); err != nil {
		return e, err
	}
	e.dtype, e.shape = DType(*dtype), shape
	if len(offsets) != 2 {
		return e, fmt.Errorf("data_offsets %s: want [begin, end]", fmtOffsets(offsets))
	}
	if offsets[0] < 0 || offsets[1] < offsets[0] {
		return e, fmt.Errorf("data_offsets %s: want 0 <= begin <= end", fmtOffsets(offsets))
	}
	e.begin, e.end = uint64(offsets[0]), uint64(offsets[1])
	if e.end > dataLen {
		return e, fmt.Errorf("data_offsets %s are out of range of the %d byte data buffer", fmtOffsets(offsets), dataLen)
	}
	size := uint64(e.dtype.size())
	n, err := numElements(shape, min(dataLen/size+1, math.MaxInt))
	if err == errTooLarge {
		return e, fmt.Errorf("shape %v of %s is larger than the %d byte data buffer", shape, e.dtype, dataLen)
	}
	if err != nil {
		return e, err
	}
	if n*size != e.end-e.begin {
		return e, fmt.Errorf("shape %v of %s is %d bytes but data_offsets %s hold %d", shape, e.dtype, n*size, fmtOffsets(offsets), e.end-e.begin)
	}
	return e, nil
}

// fmtOffsets formats data offsets as in the header.
func fmtOffsets(offsets []int64) string {
	s := make([]string, len(offsets))
	for i, o := range offsets {
		s[i] = strconv.FormatInt(o, 10)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// decodeMeta decodes the metadata object into m; null is no metadata.
func decodeMeta(raw json.RawMessage, m map[string]string) error {
	if string(raw) == "null" {
		return nil
	}
	fields, err := parseObject(raw, "key")
	if err != nil {
		return err
	}
	for _, fl := range fields {
		var s string
		if err := unmarshalKind(fl.value, '"', &s); err != nil {
			return fmt.Errorf("key %q: %w", fl.key, err)
		}
		m[fl.key] = s
	}
	return nil
}

// unmarshalKind unmarshals raw into v after checking that it is a JSON
// value starting with kind: '"' for a string, '[' for an array.
func unmarshalKind(raw json.RawMessage, kind byte, v any) error {
	if len(raw) == 0 || raw[0] != kind {
		want := "a string"
		if kind == '[' {
			want = "an array"
		}
		return fmt.Errorf("%s is not %s", abbrev(raw), want)
	}
	return json.Unmarshal(raw, v)
}

// abbrev returns raw for an error message, shortened if long.
func abbrev(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "..."
	}
	return string(raw)
}

type field struct {
	key   string
	value json.RawMessage
}

// parseObject parses b as one JSON object, surrounded by optional
// whitespace, and returns its fields in order. Duplicate keys are an
// error that calls a key keyKind.
func parseObject(b []byte, keyKind string) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var fields []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("not JSON: object key %v is not a string", tok)
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate %s %q", keyKind, key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("not JSON: key %q: %w", key, err)
		}
		fields = append(fields, field{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("not JSON: data after the object")
	}
	return fields, nil
}

// Get returns the values of the named tensor. When shape is given, the
// tensor must have exactly that shape (so a scalar's empty shape cannot
// be checked this way). The returned slice is the File's own, not a copy.
func (f *File) Get(name string, shape ...int) ([]float32, error) {
	if f == nil {
		return nil, fmt.Errorf("checkpoint: Get %q on a nil File", name)
	}
	t, ok := f.Tensors[name]
	if !ok {
		return nil, errorf(f.Path, "no tensor %q", name)
	}
	if len(shape) > 0 && !slices.Equal(t.Shape, shape) {
		return nil, tensorErrorf(f.Path, name, "shape is %v, want %v", t.Shape, shape)
	}
	return t.Data, nil
}

// MetaJSON unmarshals the metadata value of key, a string holding JSON,
// into v.
func (f *File) MetaJSON(key string, v any) error {
	if f == nil {
		return fmt.Errorf("checkpoint: MetaJSON %q on a nil File", key)
	}
	s, ok := f.Meta[key]
	if !ok {
		return errorf(f.Path, "no metadata key %q", key)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return errorf(f.Path, "metadata key %q: %w", key, err)
	}
	return nil
}
