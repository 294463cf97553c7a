package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandemml/tandem/bf16"
)

// file returns a safetensors file with the given header and data.
func file(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func f32bytes(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func bf16bytes(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return b
}

// sameFile reports whether a and b hold the same tensors, bit for bit,
// and the same metadata.
func sameFile(a, b *File) bool {
	if !slices.Equal(a.Names, b.Names) || len(a.Tensors) != len(b.Tensors) || len(a.Meta) != len(b.Meta) {
		return false
	}
	for k, v := range a.Meta {
		if w, ok := b.Meta[k]; !ok || w != v {
			return false
		}
	}
	for name, ta := range a.Tensors {
		tb, ok := b.Tensors[name]
		if !ok || ta.Name != tb.Name || ta.DType != tb.DType || !slices.Equal(ta.Shape, tb.Shape) || len(ta.Data) != len(tb.Data) {
			return false
		}
		for i := range ta.Data {
			if math.Float32bits(ta.Data[i]) != math.Float32bits(tb.Data[i]) {
				return false
			}
		}
	}
	return true
}

func testTensors() []Tensor {
	w := make([]float32, 2*3*4)
	for i := range w {
		w[i] = float32(i)*0.37 - 4
	}
	return []Tensor{
		{Name: "l1.user.w", DType: F32, Shape: []int{2, 3, 4}, Data: w},
		{Name: "l1.user.b", DType: BF16, Shape: []int{5}, Data: []float32{1, -0.1, 3.14159, 1e-30, -65504}},
		{Name: "bias", DType: F32, Shape: []int{}, Data: []float32{-0.5}},
		{Name: "empty", DType: BF16, Shape: []int{0, 7}, Data: nil},
		{Name: "neg.zero", DType: F32, Shape: []int{1}, Data: []float32{float32(math.Copysign(0, -1))}},
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	in := testTensors()
	meta := map[string]string{"config": `{"dim":4}`, "run": "r1", "html": "<a&b>", "": "empty key"}
	if err := Write(path, in, meta); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != path {
		t.Errorf("Path = %q, want %q", f.Path, path)
	}
	if want := []string{"bias", "empty", "l1.user.b", "l1.user.w", "neg.zero"}; !slices.Equal(f.Names, want) {
		t.Errorf("Names = %q, want %q", f.Names, want)
	}
	for _, tin := range in {
		got := f.Tensors[tin.Name]
		if got.Name != tin.Name || got.DType != tin.DType || !slices.Equal(got.Shape, tin.Shape) || len(got.Data) != len(tin.Data) {
			t.Errorf("tensor %q = %+v, want %+v", tin.Name, got, tin)
			continue
		}
		for i, v := range tin.Data {
			want := v
			if tin.DType == BF16 {
				want = bf16.ToFloat32(bf16.FromFloat32(v))
			}
			if math.Float32bits(got.Data[i]) != math.Float32bits(want) {
				t.Errorf("tensor %q value %d = %g, want %g", tin.Name, i, got.Data[i], want)
			}
		}
	}
	if got := f.Tensors["l1.user.b"].Data[2]; got != 3.140625 {
		t.Errorf("bf16 3.14159 read back as %g", got)
	}
	for k, v := range meta {
		if f.Meta[k] != v {
			t.Errorf("Meta[%q] = %q, want %q", k, f.Meta[k], v)
		}
	}
	if len(f.Meta) != len(meta) {
		t.Errorf("Meta = %v, want %v", f.Meta, meta)
	}

	// No metadata and no tensors.
	if err := Write(path, nil, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if want := file("{}      ", nil); !bytes.Equal(b, want) {
		t.Errorf("empty file = %q, want %q", b, want)
	}
	f, err = Read(path)
	if err != nil || len(f.Names) != 0 || len(f.Tensors) != 0 || f.Meta == nil || len(f.Meta) != 0 {
		t.Errorf("empty file read as %+v, %v", f, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(ents))
	}
}

// TestExactBytes pins the layout against a file built by hand from the
// format description.
func TestExactBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.safetensors")
	err := Write(path, []Tensor{
		{Name: "b", DType: BF16, Shape: []int{}, Data: []float32{1.5}},
		{Name: "a", DType: F32, Shape: []int{2}, Data: []float32{1, -2}},
	}, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{136, 0, 0, 0, 0, 0, 0, 0} // 133 bytes of JSON + 3 spaces
	want = append(want, `{"__metadata__":{"k":"v"},`+
		`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},`+
		`"b":{"dtype":"BF16","shape":[],"data_offsets":[8,10]}}   `...)
	want = append(want,
		0x00, 0x00, 0x80, 0x3f, // a[0] = 1
		0x00, 0x00, 0x00, 0xc0, // a[1] = -2
		0xc0, 0x3f, // b = 1.5 in bfloat16
	)
	if !bytes.Equal(got, want) {
		t.Errorf("bytes:\n got %q\nwant %q", got, want)
	}
	f, err := Decode("tiny", want)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := f.Get("a", 2); !slices.Equal(a, []float32{1, -2}) {
		t.Errorf("a = %v", a)
	}
	if b, _ := f.Get("b"); !slices.Equal(b, []float32{1.5}) {
		t.Errorf("b = %v", b)
	}
}

func TestHeaderPadding(t *testing.T) {
	dir := t.TempDir()
	for n := 1; n <= 24; n++ {
		path := filepath.Join(dir, "p.safetensors")
		name := strings.Repeat("x", n)
		if err := Write(path, []Tensor{{Name: name, DType: BF16, Shape: []int{3}, Data: []float32{1, 2, 3}}}, nil); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		hlen := binary.LittleEndian.Uint64(b)
		if (8+hlen)%8 != 0 {
			t.Errorf("name length %d: header length %d, 8+N not a multiple of 8", n, hlen)
		}
		header := string(b[8 : 8+hlen])
		trimmed := strings.TrimRight(header, " ")
		if !strings.HasSuffix(trimmed, "}") || len(header)-len(trimmed) >= 8 {
			t.Errorf("name length %d: header %q is not padded with fewer than 8 spaces", n, header)
		}
		if got := uint64(len(b)) - 8 - hlen; got != 6 {
			t.Errorf("name length %d: data buffer is %d bytes, want 6", n, got)
		}
	}
}

func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	ts := testTensors()
	meta := map[string]string{"z": "1", "a": "2", "m": "3"}
	p1, p2 := filepath.Join(dir, "1.safetensors"), filepath.Join(dir, "2.safetensors")
	if err := Write(p1, ts, meta); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(ts)
	if err := Write(p2, ts, map[string]string{"m": "3", "a": "2", "z": "1"}); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(p1)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b1, b2) {
		t.Error("same tensors in another order give different bytes")
	}
	// Tensors are laid out in sorted name order.
	f, err := Decode("x", b1)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	hlen := binary.LittleEndian.Uint64(b1)
	if err := json.Unmarshal(b1[8:8+hlen], &raw); err != nil {
		t.Fatal(err)
	}
	prevEnd := int64(0)
	for _, name := range f.Names {
		var e struct {
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw[name], &e); err != nil {
			t.Fatal(err)
		}
		if e.Offsets[0] != prevEnd {
			t.Errorf("tensor %q starts at %d, want %d", name, e.Offsets[0], prevEnd)
		}
		prevEnd = e.Offsets[1]
	}
}

func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	for i := range 3 {
		if err := Write(path, []Tensor{{Name: "v", DType: F32, Shape: []int{1}, Data: []float32{float32(i)}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Get("v", 1); v[0] != 2 {
		t.Errorf("v = %v, want [2]", v)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(ents))
	}
	// A relative path in the working directory.
	t.Chdir(dir)
	if err := Write("rel.safetensors", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Read("rel.safetensors"); err != nil {
		t.Fatal(err)
	}
}

func TestWriteErrors(t *testing.T) {
	ok := Tensor{Name: "ok", DType: F32, Shape: []int{1}, Data: []float32{1}}
	tests := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    []string
	}{
		{"empty name", []Tensor{ok, {DType: F32, Shape: []int{}, Data: []float32{1}}}, nil, []string{"tensor 1", "empty name"}},
		{"duplicate", []Tensor{ok, ok}, nil, []string{`"ok"`, "duplicate"}},
		{"reserved", []Tensor{{Name: "__metadata__", DType: F32, Shape: []int{}, Data: []float32{1}}}, nil, []string{`"__metadata__"`, "reserved"}},
		{"F16", []Tensor{{Name: "h", DType: "F16", Shape: []int{1}, Data: []float32{1}}}, nil, []string{`tensor "h"`, `"F16" is not supported`}},
		{"unknown dtype", []Tensor{{Name: "q", DType: "Q4", Shape: []int{1}, Data: []float32{1}}}, nil, []string{`tensor "q"`, `unknown dtype "Q4"`}},
		{"no dtype", []Tensor{{Name: "q", Shape: []int{1}, Data: []float32{1}}}, nil, []string{`tensor "q"`, `unknown dtype ""`}},
		{"negative dim", []Tensor{{Name: "n", DType: F32, Shape: []int{2, -1}, Data: nil}}, nil, []string{`tensor "n"`, "negative"}},
		{"huge shape", []Tensor{{Name: "n", DType: F32, Shape: []int{1 << 40, 1 << 40}, Data: nil}}, nil, []string{`tensor "n"`, "too many elements"}},
		{"length", []Tensor{{Name: "w", DType: F32, Shape: []int{2, 3}, Data: make([]float32, 5)}}, nil, []string{`tensor "w"`, "[2 3] needs 6 values, data has 5"}},
		{"NaN", []Tensor{ok, {Name: "w", DType: F32, Shape: []int{2}, Data: []float32{0, float32(math.NaN())}}}, nil, []string{`tensor "w"`, "value 1 is NaN"}},
		{"Inf", []Tensor{{Name: "w", DType: BF16, Shape: []int{1}, Data: []float32{float32(math.Inf(-1))}}}, nil, []string{`tensor "w"`, "value 0 is -Inf"}},
		{"bf16 overflow", []Tensor{{Name: "w", DType: BF16, Shape: []int{1}, Data: []float32{math.MaxFloat32}}}, nil, []string{`tensor "w"`, "overflows bfloat16"}},
		{"bad utf8 name", []Tensor{{Name: "a\xff", DType: F32, Shape: []int{}, Data: []float32{1}}}, nil, []string{"UTF-8"}},
		{"bad utf8 meta", nil, map[string]string{"k": "\xff"}, []string{`metadata "k"`, "UTF-8"}},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		path := filepath.Join(dir, "bad.safetensors")
		err := Write(path, tc.tensors, tc.meta)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range append(tc.want, path) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tc.name, err, w)
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: failed Write left %d files", tc.name, len(ents))
		}
	}

	// A directory that does not exist.
	path := filepath.Join(t.TempDir(), "missing", "m.safetensors")
	if err := Write(path, nil, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Write into a missing directory: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	one := f32bytes(1)
	nanF32 := f32bytes(1, float32(math.NaN()))
	tests := []struct {
		name string
		b    []byte
		want []string
	}{
		{"empty", nil, []string{"truncated", "0 bytes"}},
		{"short", []byte{1, 0, 0}, []string{"truncated", "3 bytes"}},
		{"header past end", file("{}", nil)[:9], []string{"truncated", "header length 2", "only 1 bytes"}},
		{"header over limit", binary.LittleEndian.AppendUint64(nil, 200<<20), []string{"header length 209715200", "limit"}},
		{"header huge", binary.LittleEndian.AppendUint64(nil, math.MaxUint64), []string{"limit"}},
		{"empty header", file("", nil), []string{"header", "not JSON"}},
		{"not JSON", file(`{"a":`, nil), []string{"header", "not JSON"}},
		{"garbage", file("\x00\x01", nil), []string{"header", "not JSON"}},
		{"array", file("[1,2]", nil), []string{"header", "not a JSON object"}},
		{"string", file(`"x"`, nil), []string{"header", "not a JSON object"}},
		{"trailing", file(`{} {}`, nil), []string{"header", "after the object"}},
		{"trailing comma", file(`{"a":1,}`, nil), []string{"header", "not JSON"}},
		{"F16", file(`{"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, []byte{0, 0}),
			[]string{`tensor "w"`, `dtype "F16" is not supported`}},
		{"unknown dtype", file(`{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, `unknown dtype "F33"`}},
		{"dtype not string", file(`{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, "dtype", "not a string"}},
		{"shape mismatch", file(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, "shape [2]", "8 bytes", "data_offsets [0, 4] hold 4"}},
		{"bf16 shape mismatch", file(`{"w":{"dtype":"BF16","shape":[1],"data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, "shape [1]", "2 bytes"}},
		{"huge shape", file(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, "larger than the 4 byte data buffer"}},
		{"negative dim", file(`{"w":{"dtype":"F32","shape":[-1,-1],"data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, "negative dimension"}},
		{"fractional dim", file(`{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, "shape"}},
		{"shape null", file(`{"w":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, "shape", "not an array"}},
		{"missing shape", file(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, "missing shape"}},
		{"missing dtype", file(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, "missing dtype"}},
		{"missing offsets", file(`{"w":{"dtype":"F32","shape":[1]}}`, one),
			[]string{`tensor "w"`, "missing data_offsets"}},
		{"unknown field", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, one),
			[]string{`tensor "w"`, `unknown field "x"`}},
		{"entry not object", file(`{"w":[1]}`, nil), []string{`tensor "w"`, "not a JSON object"}},
		{"duplicate field", file(`{"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, one),
			[]string{`tensor "w"`, `duplicate field "dtype"`}},
		{"offsets out of range", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, one),
			[]string{`tensor "w"`, "out of range", "4 byte data buffer"}},
		{"offsets reversed", file(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, one),
			[]string{`tensor "w"`, "begin <= end"}},
		{"offsets negative", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, one),
			[]string{`tensor "w"`, "begin <= end"}},
		{"offsets three", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, one),
			[]string{`tensor "w"`, "[begin, end]"}},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32bytes(1, 2)),
			[]string{`tensor "b"`, `overlap tensor "a"`}},
		{"same range", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, one),
			[]string{`tensor "b"`, `overlap tensor "a"`}},
		{"gap", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, f32bytes(1, 2, 3)),
			[]string{`tensor "b"`, "gap of bytes [4, 8)"}},
		{"gap at start", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32bytes(1, 2)),
			[]string{`tensor "a"`, "gap of bytes [0, 4)"}},
		{"uncovered tail", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32bytes(1, 2)),
			[]string{"cover bytes [0, 4) of a 8 byte data buffer"}},
		{"data without tensors", file(`{}`, one), []string{"cover bytes [0, 0) of a 4 byte"}},
		{"metadata number", file(`{"__metadata__":{"k":1}}`, nil), []string{"__metadata__", `key "k"`, "not a string"}},
		{"metadata null value", file(`{"__metadata__":{"k":null}}`, nil), []string{"__metadata__", `key "k"`, "not a string"}},
		{"metadata object value", file(`{"__metadata__":{"cfg":{"a":1}}}`, nil), []string{"__metadata__", `key "cfg"`, "not a string"}},
		{"metadata not object", file(`{"__metadata__":["a"]}`, nil), []string{"__metadata__", "not a JSON object"}},
		{"metadata duplicate key", file(`{"__metadata__":{"k":"a","k":"b"}}`, nil), []string{"__metadata__", `duplicate key "k"`}},
		{"duplicate name", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, one),
			[]string{`duplicate tensor name "w"`}},
		{"empty name", file(`{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, one), []string{`tensor ""`, "empty tensor name"}},
		{"NaN", file(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, nanF32), []string{`tensor "w"`, "value 1 is NaN"}},
		{"Inf", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32bytes(float32(math.Inf(1)))), []string{`tensor "w"`, "value 0 is +Inf"}},
		{"bf16 NaN", file(`{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, bf16bytes(0x3f80, 0xffc1)), []string{`tensor "w"`, "value 1 is NaN"}},
		{"bf16 Inf", file(`{"w":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}`, bf16bytes(0xff80)), []string{`tensor "w"`, "value 0 is -Inf"}},
	}
	for _, tc := range tests {
		f, err := Decode("bad.safetensors", tc.b)
		if err == nil {
			t.Errorf("%s: no error, got %+v", tc.name, f)
			continue
		}
		if f != nil {
			t.Errorf("%s: non-nil File with an error", tc.name)
		}
		for _, w := range append(tc.want, "bad.safetensors") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tc.name, err, w)
			}
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		// Tensors in the buffer in an order other than their names'.
		{"any order", file(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"BF16","shape":[1,1],"data_offsets":[4,6]}}`, append(f32bytes(1), 0x80, 0x3f))},
		{"whitespace and no padding", file(" {\n\"a\" : {\"data_offsets\":[0,4], \"shape\":[1],\"dtype\":\"F32\"}}\t", f32bytes(2))},
		{"null metadata", file(`{"__metadata__":null}`, nil)},
		{"zero-size tensors", file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"c":{"dtype":"F32","shape":[3,0],"data_offsets":[4,4]}}`, f32bytes(2))},
	}
	for _, tc := range tests {
		if _, err := Decode("good", tc.b); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.safetensors")
	if _, err := Read(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Read(missing) = %v", err)
	}
	short := filepath.Join(dir, "short.safetensors")
	if err := os.WriteFile(short, []byte{1, 2}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(short); err == nil || !strings.Contains(err.Error(), short) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Read(short) = %v", err)
	}
	path := filepath.Join(dir, "full.safetensors")
	if err := Write(path, testTensors(), nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, b[:len(b)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Read(truncated data) = %v", err)
	}
}

func TestGet(t *testing.T) {
	b := file(`{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}`, f32bytes(1, 2, 3, 4, 5, 6))
	f, err := Decode("m.safetensors", b)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.Get("w", 2, 3); err != nil || !slices.Equal(v, []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("Get(w, 2, 3) = %v, %v", v, err)
	}
	if v, err := f.Get("w"); err != nil || len(v) != 6 {
		t.Errorf("Get(w) = %v, %v", v, err)
	}
	_, err = f.Get("w", 3, 2)
	for _, want := range []string{"m.safetensors", `tensor "w"`, "[2 3]", "[3 2]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Get(w, 3, 2) error %v does not contain %q", err, want)
		}
	}
	if _, err := f.Get("w", 6); err == nil {
		t.Error("Get(w, 6) of a [2 3] tensor: no error")
	}
	_, err = f.Get("v", 1)
	for _, want := range []string{"m.safetensors", `"v"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Get(v) error %v does not contain %q", err, want)
		}
	}
	var nilFile *File
	if _, err := nilFile.Get("w"); err == nil {
		t.Error("Get on a nil File: no error")
	}
	if err := nilFile.MetaJSON("k", new(int)); err == nil {
		t.Error("MetaJSON on a nil File: no error")
	}
}

func TestMetaJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Write(path, nil, map[string]string{"cfg": `{"dim":8,"name":"x"}`, "bad": "{"}); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Dim  int
		Name string
	}
	if err := f.MetaJSON("cfg", &cfg); err != nil || cfg.Dim != 8 || cfg.Name != "x" {
		t.Errorf("MetaJSON(cfg) = %+v, %v", cfg, err)
	}
	for _, key := range []string{"bad", "missing"} {
		err := f.MetaJSON(key, &cfg)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"`+key+`"`) {
			t.Errorf("MetaJSON(%s) = %v", key, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.safetensors")
	if err := Write(path, testTensors(), map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	f.Add(file("{}", nil))
	f.Add(file(`{"__metadata__":{"a":"b"},"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, bf16bytes(0x3f80, 0x8000)))
	f.Add(file(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, f32bytes(1)))
	f.Add(file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32bytes(1, 2)))
	f.Add(file(`{"\u00e9\ud800":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, f32bytes(1)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		f1, err := Decode("fuzz.safetensors", b)
		if err != nil {
			if f1 != nil {
				t.Fatal("non-nil File with an error")
			}
			if !strings.Contains(err.Error(), "fuzz.safetensors") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		ts := make([]Tensor, 0, len(f1.Names))
		for _, name := range f1.Names {
			ts = append(ts, f1.Tensors[name])
		}
		path := filepath.Join(t.TempDir(), "rt.safetensors")
		if err := Write(path, ts, f1.Meta); err != nil {
			t.Fatalf("Write of a decoded file: %v", err)
		}
		b2, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f2, err := Decode("fuzz.safetensors", b2)
		if err != nil {
			t.Fatalf("Decode of a rewritten file: %v", err)
		}
		if !sameFile(f1, f2) {
			t.Fatalf("round trip changed the file:\n%+v\n%+v", f1, f2)
		}
		if err := Write(path, ts, f2.Meta); err != nil {
			t.Fatal(err)
		}
		if b3, _ := os.ReadFile(path); !bytes.Equal(b2, b3) {
			t.Fatal("rewriting a rewritten file changed its bytes")
		}
	})
}

// pythonReader parses a safetensors file with json, struct and numpy only
// and prints its contents as JSON.
const pythonReader = `
import json, struct, sys
import numpy as np

with open(sys.argv[1], "rb") as f:
    buf = f.read()
(n,) = struct.unpack("<Q", buf[:8])
assert (8 + n) % 8 == 0, "header not padded"
header = json.loads(buf[8:8 + n].decode("utf-8"))
data = buf[8 + n:]
out = {"__metadata__": header.pop("__metadata__", {}), "tensors": {}}
end = 0
for name in sorted(header, key=lambda k: header[k]["data_offsets"]):
    info = header[name]
    b, e = info["data_offsets"]
    assert b == end, "not contiguous"
    end = e
    raw = data[b:e]
    if info["dtype"] == "F32":
        arr = np.frombuffer(raw, dtype="<f4")
    elif info["dtype"] == "BF16":
        arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        raise ValueError(info["dtype"])
    arr = arr.reshape(info["shape"])
    out["tensors"][name] = {
        "dtype": info["dtype"],
        "shape": list(arr.shape),
        "values": [float(v) for v in arr.reshape(-1)],
    }
assert end == len(data), "buffer not covered"
json.dump(out, sys.stdout)
`

func TestPythonReader(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
		t.Skipf("no %s with numpy: %v", python, err)
	}
	path := filepath.Join(t.TempDir(), "py.safetensors")
	in := testTensors()
	meta := map[string]string{"config": `{"dim":4}`, "note": "é<&>"}
	if err := Write(path, in, meta); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, "-c", pythonReader, path).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var got struct {
		Meta    map[string]string `json:"__metadata__"`
		Tensors map[string]struct {
			DType  string
			Shape  []int
			Values []float64
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	for k, v := range meta {
		if got.Meta[k] != v {
			t.Errorf("python metadata %q = %q, want %q", k, got.Meta[k], v)
		}
	}
	if len(got.Tensors) != len(in) {
		t.Errorf("python read %d tensors, want %d", len(got.Tensors), len(in))
	}
	for _, tin := range in {
		g, ok := got.Tensors[tin.Name]
		if !ok {
			t.Errorf("python did not read tensor %q", tin.Name)
			continue
		}
		if g.DType != string(tin.DType) || !slices.Equal(g.Shape, tin.Shape) || len(g.Values) != len(tin.Data) {
			t.Errorf("python tensor %q: %s %v with %d values, want %s %v with %d", tin.Name, g.DType, g.Shape, len(g.Values), tin.DType, tin.Shape, len(tin.Data))
			continue
		}
		for i, v := range tin.Data {
			want := v
			if tin.DType == BF16 {
				want = bf16.ToFloat32(bf16.FromFloat32(v))
			}
			if float32(g.Values[i]) != want || math.Signbit(g.Values[i]) != math.Signbit(float64(want)) {
				t.Errorf("python tensor %q value %d = %g, want %g", tin.Name, i, g.Values[i], want)
			}
		}
	}
}
