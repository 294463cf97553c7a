package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// The JSONL codec maps a row struct to a JSON object, one key per exported
// field named by its json tag. It is built once per type with reflection and
// then reads and writes fields through their offsets, so that it can report
// a missing key, an unknown key or a wrong-typed value by column, and write
// floats in the shortest form that reads back exactly.

// fieldKind is the type of a field the codec supports.
type fieldKind uint8

const (
	kindBool fieldKind = iota
	kindInt8
	kindInt16
	kindInt32
	kindInt64
	kindFloat32
	kindFloat64
	kindString
)

// jsonField is one field of a row struct.
type jsonField struct {
	name   string  // JSON key and column name
	prefix string  // `"name":`, with a leading comma after the first field
	offset uintptr // offset in the struct
	kind   fieldKind
	list   bool // a slice of kind
}

// jsonCodec reads and writes rows of one struct type.
type jsonCodec struct {
	typ    reflect.Type
	fields []jsonField
	index  map[string]int // JSON key → field index
}

var jsonCodecs sync.Map // reflect.Type → *jsonCodec

// jsonCodecFor returns the codec of T, which must be a struct whose exported
// fields are booleans, integers, floats, strings or slices of those.
func jsonCodecFor[T any]() (*jsonCodec, error) {
	t := reflect.TypeFor[T]()
	if c, ok := jsonCodecs.Load(t); ok {
		return c.(*jsonCodec), nil
	}
	c, err := newJSONCodec(t)
	if err != nil {
		return nil, err
	}
	actual, _ := jsonCodecs.LoadOrStore(t, c)
	return actual.(*jsonCodec), nil
}

func newJSONCodec(t reflect.Type) (*jsonCodec, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("row type %v is not a struct", t)
	}
	c := &jsonCodec{typ: t, index: make(map[string]int)}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name := jsonName(sf)
		if name == "-" {
			continue
		}
		if sf.Anonymous {
			return nil, fmt.Errorf("row type %v: embedded field %s is not supported", t, sf.Name)
		}
		f := jsonField{name: name, offset: sf.Offset}
		ft := sf.Type
		if ft.Kind() == reflect.Slice {
			f.list, ft = true, ft.Elem()
		}
		kind, ok := kindOf(ft)
		if !ok {
			return nil, fmt.Errorf("row type %v: field %s has unsupported type %v", t, sf.Name, sf.Type)
		}
		f.kind = kind
		if _, dup := c.index[name]; dup {
			return nil, fmt.Errorf("row type %v: two fields named %q", t, name)
		}
		f.prefix = string(appendString(nil, name)) + ":"
		if len(c.fields) > 0 {
			f.prefix = "," + f.prefix
		}
		c.index[name] = len(c.fields)
		c.fields = append(c.fields, f)
	}
	if len(c.fields) == 0 {
		return nil, fmt.Errorf("row type %v has no exported fields", t)
	}
	return c, nil
}

// jsonName is a field's JSON key: its json tag's name, else its Go name.
func jsonName(sf reflect.StructField) string {
	name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
	if name == "" {
		return sf.Name
	}
	return name
}

func kindOf(t reflect.Type) (fieldKind, bool) {
	switch t.Kind() {
	case reflect.Bool:
		return kindBool, true
	case reflect.Int8:
		return kindInt8, true
	case reflect.Int16:
		return kindInt16, true
	case reflect.Int32:
		return kindInt32, true
	case reflect.Int64:
		return kindInt64, true
	case reflect.Float32:
		return kindFloat32, true
	case reflect.Float64:
		return kindFloat64, true
	case reflect.String:
		return kindString, true
	}
	return 0, false
}

// want names what JSON value a field of kind k takes, for errors.
func (f *jsonField) want() string {
	s := [...]string{"boolean", "integer", "integer", "integer", "integer", "number", "number", "string"}[f.kind]
	if f.list {
		return "array of " + s + "s"
	}
	return s
}

// rowPointer returns the address of a row for the codec.
func rowPointer[T any](row *T) unsafe.Pointer { return unsafe.Pointer(row) }

// appendRow appends row as a JSON object (no newline). It fails with a
// *ColumnError for a value JSON cannot hold (NaN, ±Inf).
func (c *jsonCodec) appendRow(b []byte, row unsafe.Pointer) ([]byte, error) {
	b = append(b, '{')
	for i := range c.fields {
		f := &c.fields[i]
		b = append(b, f.prefix...)
		var err error
		p := unsafe.Add(row, f.offset)
		if f.list {
			b, err = appendList(b, p, f.kind)
		} else {
			b, err = appendScalar(b, p, f.kind)
		}
		if err != nil {
			return b, &ColumnError{Column: f.name, Err: err}
		}
	}
	return append(b, '}'), nil
}

func appendScalar(b []byte, p unsafe.Pointer, k fieldKind) ([]byte, error) {
	switch k {
	case kindBool:
		return strconv.AppendBool(b, *(*bool)(p)), nil
	case kindInt8:
		return strconv.AppendInt(b, int64(*(*int8)(p)), 10), nil
	case kindInt16:
		return strconv.AppendInt(b, int64(*(*int16)(p)), 10), nil
	case kindInt32:
		return strconv.AppendInt(b, int64(*(*int32)(p)), 10), nil
	case kindInt64:
		return strconv.AppendInt(b, *(*int64)(p), 10), nil
	case kindFloat32:
		return appendFloat(b, float64(*(*float32)(p)), 32)
	case kindFloat64:
		return appendFloat(b, *(*float64)(p), 64)
	default:
		return appendString(b, *(*string)(p)), nil
	}
}

func appendList(b []byte, p unsafe.Pointer, k fieldKind) ([]byte, error) {
	switch k {
	case kindBool:
		return appendElems(b, *(*[]bool)(p), func(b []byte, v bool) ([]byte, error) { return strconv.AppendBool(b, v), nil })
	case kindInt8:
		return appendElems(b, *(*[]int8)(p), appendInt)
	case kindInt16:
		return appendElems(b, *(*[]int16)(p), appendInt)
	case kindInt32:
		return appendElems(b, *(*[]int32)(p), appendInt)
	case kindInt64:
		return appendElems(b, *(*[]int64)(p), appendInt)
	case kindFloat32:
		return appendElems(b, *(*[]float32)(p), func(b []byte, v float32) ([]byte, error) { return appendFloat(b, float64(v), 32) })
	case kindFloat64:
		return appendElems(b, *(*[]float64)(p), func(b []byte, v float64) ([]byte, error) { return appendFloat(b, v, 64) })
	default:
		return appendElems(b, *(*[]string)(p), func(b []byte, v string) ([]byte, error) { return appendString(b, v), nil })
	}
}

// appendElems appends list as a JSON array; a nil list is written as [].
func appendElems[E any](b []byte, list []E, appendElem func([]byte, E) ([]byte, error)) ([]byte, error) {
	b = append(b, '[')
	for i, v := range list {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendElem(b, v); err != nil {
			return b, fmt.Errorf("%w at index %d", err, i)
		}
	}
	return append(b, ']'), nil
}

func appendInt[E int8 | int16 | int32 | int64](b []byte, v E) ([]byte, error) {
	return strconv.AppendInt(b, int64(v), 10), nil
}

// appendFloat appends f like encoding/json does: the shortest decimal that
// parses back to the same float of the given bit size, in exponent form
// only for very small or very large magnitudes.
func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, errorOf(ErrBadValue, "%v cannot be written as JSON", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// Shorten e-07 to e-7, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendString appends s as a JSON string. Like encoding/json it escapes
// control characters, U+2028 and U+2029, and replaces invalid UTF-8 with
// U+FFFD; unlike it, it leaves <, > and & alone.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonDecoder decodes JSONL lines into rows of one type. It keeps the state
// reused across lines: which keys were seen, and interned short strings.
type jsonDecoder struct {
	codec *jsonCodec
	seen  []bool
	strs  map[string]string
}

const (
	maxInterned    = 4096
	maxInternedLen = 64
)

func newJSONDecoder(c *jsonCodec) *jsonDecoder {
	return &jsonDecoder{codec: c, seen: make([]bool, len(c.fields)), strs: make(map[string]string)}
}

// decode decodes one line, a JSON object with exactly the row's keys, into
// row. Errors name the column (*ColumnError) where there is one. Slices
// already in row are reused.
func (d *jsonDecoder) decode(line []byte, row unsafe.Pointer) error {
	if !json.Valid(line) {
		return syntaxError(line)
	}
	s := scanner{b: line}
	s.skipSpace()
	if s.peek() != '{' {
		return errorOf(ErrMalformed, "line is not a JSON object")
	}
	clear(d.seen)
	s.i++
	s.skipSpace()
	for s.peek() == '"' {
		if err := d.member(&s, row); err != nil {
			return err
		}
		s.skipSpace()
		if s.peek() == ',' {
			s.i++
			s.skipSpace()
		}
	}
	for i, seen := range d.seen {
		if !seen {
			return &ColumnError{Column: d.codec.fields[i].name, Err: ErrMissingColumn}
		}
	}
	return nil
}

// syntaxError describes the syntax error in an invalid JSON line, naming
// the column whose value it is in when the line is otherwise an object, as
// for {"activity": NaN}.
func syntaxError(line []byte) error {
	var v any
	err := json.Unmarshal(line, &v)
	if err == nil { // cannot happen for a line json.Valid rejects
		err = errors.New("invalid")
	}
	err = wrapError(ErrMalformed, "invalid JSON", err)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if key := keyAt(line, se.Offset); key != "" {
			return &ColumnError{Column: key, Err: err}
		}
	}
	return err
}

// keyAt returns the key of the top-level member of the JSON object line
// whose value holds the syntax error at byte offset off, or "" if there is
// none or the error is the line's premature end.
func keyAt(line []byte, off int64) string {
	if off >= int64(len(line)) {
		return ""
	}
	s := scanner{b: line}
	s.skipSpace()
	if s.peek() != '{' {
		return ""
	}
	s.i++
	for {
		s.skipSpace()
		if s.peek() != '"' {
			return ""
		}
		rawKey := s.value()
		s.skipSpace()
		if s.peek() != ':' {
			return ""
		}
		s.i++
		s.skipSpace()
		s.value()
		if off <= int64(s.i)+1 {
			var key string
			if json.Unmarshal(rawKey, &key) != nil {
				return ""
			}
			return key
		}
		s.skipSpace()
		if s.peek() != ',' {
			return ""
		}
		s.i++
	}
}

// member decodes one "key": value pair of the object.
func (d *jsonDecoder) member(s *scanner, row unsafe.Pointer) error {
	rawKey := s.value()
	s.skipSpace()
	s.i++ // ':'
	s.skipSpace()
	raw := s.value()
	key, err := d.key(rawKey)
	if err != nil {
		return err
	}
	i, ok := d.codec.index[key]
	if !ok {
		return &ColumnError{Column: key, Err: ErrUnknownColumn}
	}
	if d.seen[i] {
		return &ColumnError{Column: key, Err: errorOf(ErrMalformed, "duplicate key")}
	}
	d.seen[i] = true
	f := &d.codec.fields[i]
	p := unsafe.Add(row, f.offset)
	if f.list {
		err = d.list(raw, p, f)
	} else {
		err = d.scalar(raw, p, f.kind)
	}
	if err != nil {
		return &ColumnError{Column: key, Err: err}
	}
	return nil
}

// key decodes an object key.
func (d *jsonDecoder) key(raw []byte) (string, error) {
	if s, ok := d.simpleString(raw); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", wrapError(ErrMalformed, "bad key", err)
	}
	return s, nil
}

// scalar decodes one value into the field at p.
func (d *jsonDecoder) scalar(raw []byte, p unsafe.Pointer, k fieldKind) error {
	switch k {
	case kindBool:
		v, err := parseBool(raw)
		*(*bool)(p) = v
		return err
	case kindInt8:
		v, err := parseInt(raw, 8)
		*(*int8)(p) = int8(v)
		return err
	case kindInt16:
		v, err := parseInt(raw, 16)
		*(*int16)(p) = int16(v)
		return err
	case kindInt32:
		v, err := parseInt(raw, 32)
		*(*int32)(p) = int32(v)
		return err
	case kindInt64:
		v, err := parseInt(raw, 64)
		*(*int64)(p) = v
		return err
	case kindFloat32:
		v, err := parseFloat(raw, 32)
		*(*float32)(p) = float32(v)
		return err
	case kindFloat64:
		v, err := parseFloat(raw, 64)
		*(*float64)(p) = v
		return err
	default:
		v, err := d.parseString(raw)
		*(*string)(p) = v
		return err
	}
}

// list decodes a JSON array into the slice at p, reusing its backing array.
func (d *jsonDecoder) list(raw []byte, p unsafe.Pointer, f *jsonField) error {
	if len(raw) == 0 || raw[0] != '[' {
		return wrongValue(raw, f.want())
	}
	switch f.kind {
	case kindBool:
		return decodeElems(raw, (*[]bool)(p), parseBool)
	case kindInt8:
		return decodeElems(raw, (*[]int8)(p), intParser[int8](8))
	case kindInt16:
		return decodeElems(raw, (*[]int16)(p), intParser[int16](16))
	case kindInt32:
		return decodeElems(raw, (*[]int32)(p), intParser[int32](32))
	case kindInt64:
		return decodeElems(raw, (*[]int64)(p), intParser[int64](64))
	case kindFloat32:
		return decodeElems(raw, (*[]float32)(p), func(b []byte) (float32, error) {
			v, err := parseFloat(b, 32)
			return float32(v), err
		})
	case kindFloat64:
		return decodeElems(raw, (*[]float64)(p), func(b []byte) (float64, error) { return parseFloat(b, 64) })
	default:
		return decodeElems(raw, (*[]string)(p), d.parseString)
	}
}

// decodeElems decodes the JSON array raw into *dst.
func decodeElems[E any](raw []byte, dst *[]E, parse func([]byte) (E, error)) error {
	out := (*dst)[:0]
	s := scanner{b: raw, i: 1}
	s.skipSpace()
	for i := 0; s.i < len(s.b) && s.peek() != ']'; i++ {
		v, err := parse(s.value())
		if err != nil {
			*dst = out
			return fmt.Errorf("%w at index %d", err, i)
		}
		out = append(out, v)
		s.skipSpace()
		if s.peek() == ',' {
			s.i++
			s.skipSpace()
		}
	}
	*dst = out
	return nil
}

func intParser[E int8 | int16 | int32 | int64](bits int) func([]byte) (E, error) {
	return func(b []byte) (E, error) {
		v, err := parseInt(b, bits)
		return E(v), err
	}
}

func parseBool(raw []byte) (bool, error) {
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, wrongValue(raw, "boolean")
}

func parseInt(raw []byte, bits int) (int64, error) {
	if !isNumber(raw) {
		return 0, wrongValue(raw, "integer")
	}
	v, err := strconv.ParseInt(string(raw), 10, bits)
	if errors.Is(err, strconv.ErrRange) {
		return 0, errorOf(ErrBadValue, "%s out of range for int%d", raw, bits)
	}
	if err != nil {
		return 0, wrongValue(raw, "integer")
	}
	return v, nil
}

func parseFloat(raw []byte, bits int) (float64, error) {
	if !isNumber(raw) {
		return 0, wrongValue(raw, "number")
	}
	v, err := strconv.ParseFloat(string(raw), bits)
	if err != nil {
		return 0, errorOf(ErrBadValue, "%s out of range for float%d", raw, bits)
	}
	return v, nil
}

// parseString decodes a JSON string, interning short ones.
func (d *jsonDecoder) parseString(raw []byte) (string, error) {
	if s, ok := d.simpleString(raw); ok {
		return s, nil
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", wrongValue(raw, "string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", wrapError(ErrMalformed, "bad string", err)
	}
	return s, nil
}

// simpleString decodes a JSON string without escapes that is valid UTF-8,
// interning short ones.
func (d *jsonDecoder) simpleString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	for _, c := range body {
		if c == '\\' || c == '"' || c < 0x20 {
			return "", false
		}
	}
	if !utf8.Valid(body) {
		return "", false
	}
	if s, ok := d.strs[string(body)]; ok {
		return s, true
	}
	s := string(body)
	if len(s) <= maxInternedLen && len(d.strs) < maxInterned {
		d.strs[s] = s
	}
	return s, true
}

// isNumber reports whether a valid JSON value is a number.
func isNumber(raw []byte) bool {
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

// wrongValue reports a JSON value of the wrong type.
func wrongValue(raw []byte, want string) error {
	const maxShown = 40
	shown := string(raw)
	if len(shown) > maxShown {
		shown = shown[:maxShown] + "..."
	}
	return errorOf(ErrWrongType, "wrong type: got %s, want %s", shown, want)
}

// scanner walks a JSON text already known to be valid.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// value returns the JSON value starting at the current position and moves
// past it.
func (s *scanner) value() []byte {
	start := s.i
	switch s.peek() {
	case '"':
		s.skipString()
	case '{', '[':
		s.skipNested()
	default:
		for s.i < len(s.b) && !isDelimiter(s.b[s.i]) {
			s.i++
		}
	}
	return s.b[start:s.i]
}

func (s *scanner) skipString() {
	for s.i++; s.i < len(s.b); s.i++ {
		switch s.b[s.i] {
		case '\\':
			s.i++
		case '"':
			s.i++
			return
		}
	}
}

func (s *scanner) skipNested() {
	depth := 0
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			s.skipString()
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i++
				return
			}
		}
		s.i++
	}
}

func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ':', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}
