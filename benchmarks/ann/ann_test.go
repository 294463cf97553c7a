package main

import (
	"bytes"
	"compress/gzip"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestIDX(t *testing.T) {
	// Two 2×3 "images".
	raw := []byte{0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255}
	dir := t.TempDir()
	plain := filepath.Join(dir, "x-idx3-ubyte")
	if err := os.WriteFile(plain, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(raw)
	zw.Close()
	gz := plain + ".gz"
	if err := os.WriteFile(gz, zb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plain, gz} {
		rows, n, dim, err := readIDXImages(p)
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 || dim != 6 || rows[0] != 0 || rows[5] != 5 || rows[11] != 255 {
			t.Errorf("%s: n=%d dim=%d rows=%v", p, n, dim, rows)
		}
	}
	if got := idxPath(dir, "x-idx3-ubyte"); got != gz {
		t.Errorf("idxPath = %s, want the .gz file", got)
	}
	for _, bad := range [][]byte{
		raw[:3],                                 // short header
		raw[:20],                                // short data
		append([]byte{1}, raw[1:]...),           // magic
		{0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0}, // float type
	} {
		if _, _, _, err := decodeIDX(bytes.NewReader(bad)); err == nil {
			t.Errorf("decodeIDX(%v): no error", bad)
		}
	}
}

func TestVecsFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.fvecs")
	if err := writeFvecs(p, []float32{1, 2, 3, 4, 5, 6}, 3); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if len(b) != 2*16 || b[0] != 3 {
		t.Errorf("fvecs bytes %v", b)
	}
	// An ivecs file is the same layout with int32 values.
	ids, err := readIvecs(p, 3)
	if err != nil || len(ids) != 2 || ids[1][0] != int32(math.Float32bits(4)) {
		t.Errorf("readIvecs = %v, %v", ids, err)
	}
	if _, err := readIvecs(p, 2); err == nil {
		t.Error("readIvecs with the wrong k: no error")
	}
}

func TestQPSAt(t *testing.T) {
	pts := []point{{Ef: 10, Recall: 0.9, QPS: 1000}, {Ef: 20, Recall: 0.95, QPS: 600}, {Ef: 40, Recall: 0.99, QPS: 200},
		{Ef: 80, Recall: 0.985, QPS: 100}} // dominated by ef 40
	for _, tc := range []struct {
		r    float64
		want float64
		ok   bool
	}{
		{0.9, 1000, true}, {0.925, 800, true}, {0.97, 400, true}, {0.99, 200, true}, {0.995, 0, false}, {0.8, 0, false},
	} {
		got, ok := qpsAt(pts, tc.r)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("qpsAt(%v) = %v, %v; want %v, %v", tc.r, got, ok, tc.want, tc.ok)
		}
	}
	if got := recall([][]int32{{1, 2}, {3, 9}}, [][]int32{{2, 1}, {3, 4}}); got != 0.75 {
		t.Errorf("recall = %v, want 0.75", got)
	}
}
