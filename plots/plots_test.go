package plots

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandemml/tandem/metric"
)

// checkPNG checks that path holds a w×h PNG image and returns its bytes.
func checkPNG(t *testing.T, path string, w, h int) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decoding %s: %v", filepath.Base(path), err)
	}
	if got := img.Bounds().Size(); got.X != w || got.Y != h {
		t.Errorf("%s is %v, want %dx%d", filepath.Base(path), got, w, h)
	}
	return b
}

func TestReliability(t *testing.T) {
	p := []float64{0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.35, 0.5, 0.6, 0.8}
	y := []float64{0, 0, 0, 1, 0, 0, 1, 1, 0, 1}
	bins, err := metric.Reliability(p, y, 5)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "reliability.png")
	if err := Reliability(path, "test model", bins); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 576, 576)
}

func TestReliabilityErrors(t *testing.T) {
	dir := t.TempDir()
	ok := []metric.ReliabilityBin{{Count: 3, MeanP: 0.2, MeanY: 0.3}}
	tests := []struct {
		name string
		path string
		bins []metric.ReliabilityBin
	}{
		{"no bins", filepath.Join(dir, "a.png"), nil},
		{"empty bins", filepath.Join(dir, "b.png"), []metric.ReliabilityBin{{Count: 0, MeanP: 0.1}}},
		{"NaN mean", filepath.Join(dir, "c.png"), []metric.ReliabilityBin{{Count: 1, MeanP: math.NaN()}}},
		{"Inf mean", filepath.Join(dir, "d.png"), []metric.ReliabilityBin{{Count: 1, MeanY: math.Inf(1)}}},
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "e.png"), ok},
	}
	for _, tc := range tests {
		if err := Reliability(tc.path, "t", tc.bins); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	// Failed calls leave no file behind.
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("after failed calls the directory holds %d entries (%v), want 0", len(entries), err)
	}
}

func TestCurves(t *testing.T) {
	series := map[string][]Point{
		"train": {{0, 0.7}, {1, 0.5}, {2, 0.45}, {3, 0.43}},
		"eval":  {{0, 0.72}, {1, 0.55}, {2, 0.5}, {3, 0.49}},
		"best":  {{3, 0.49}},
		"a":     {{0, 0.6}, {3, 0.6}},
		"b":     {{0, 0.65}, {3, 0.65}},
		"c":     {{0, 0.66}, {3, 0.66}},
		"d":     {{0, 0.67}, {3, 0.67}},
		"e":     {{0, 0.68}, {3, 0.68}},
	}
	dir := t.TempDir()
	first := filepath.Join(dir, "first.png")
	if err := Curves(first, "loss", "epoch", "log loss", series); err != nil {
		t.Fatal(err)
	}
	want := checkPNG(t, first, 768, 480)
	// Map order varies from run to run; the image does not.
	again := filepath.Join(dir, "again.png")
	if err := Curves(again, "loss", "epoch", "log loss", series); err != nil {
		t.Fatal(err)
	}
	if got := checkPNG(t, again, 768, 480); !bytes.Equal(got, want) {
		t.Fatal("a second rendering differs from the first")
	}
	// Writing over an existing file replaces it.
	if err := Curves(again, "other", "epoch", "log loss", map[string][]Point{"x": {{0, 0}, {1, 1}}}); err != nil {
		t.Fatal(err)
	}
	if got := checkPNG(t, again, 768, 480); bytes.Equal(got, want) {
		t.Fatal("the file was not replaced")
	}
}

func TestCurvesErrors(t *testing.T) {
	dir := t.TempDir()
	ok := map[string][]Point{"s": {{0, 1}, {1, 2}}}
	tests := []struct {
		name   string
		path   string
		series map[string][]Point
	}{
		{"nil series", filepath.Join(dir, "a.png"), nil},
		{"no series", filepath.Join(dir, "b.png"), map[string][]Point{}},
		{"empty series", filepath.Join(dir, "c.png"), map[string][]Point{"s": {{0, 1}}, "t": nil}},
		{"NaN", filepath.Join(dir, "d.png"), map[string][]Point{"s": {{0, math.NaN()}}}},
		{"Inf", filepath.Join(dir, "e.png"), map[string][]Point{"s": {{math.Inf(-1), 0}}}},
		{"missing directory", filepath.Join(dir, "no", "f.png"), ok},
		{"path is a directory", dir, ok},
	}
	for _, tc := range tests {
		if err := Curves(tc.path, "t", "x", "y", tc.series); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("after failed calls the directory holds %d entries (%v), want 0", len(entries), err)
	}
}
