package main

import (
	"bytes"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/vecfile"
)

func TestIdxPath(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "x-idx3-ubyte")
	if got := idxPath(dir, "x-idx3-ubyte"); got != plain {
		t.Errorf("idxPath without files = %s, want %s", got, plain)
	}
	os.WriteFile(plain+".gz", nil, 0o644)
	if got := idxPath(dir, "x-idx3-ubyte"); got != plain+".gz" {
		t.Errorf("idxPath = %s, want the .gz file", got)
	}
}

// TestGroundTruth compares both modes of groundTruth with index.Exact.
func TestGroundTruth(t *testing.T) {
	const nb, nq, dim, k = 700, 30, 9, 10
	rng := rand.New(rand.NewPCG(1, 2))
	base, queries := make([]float32, nb*dim), make([]float32, nq*dim)
	for i := range base {
		base[i] = float32(rng.NormFloat64()) * float32(1+i%3)
	}
	for i := range queries {
		queries[i] = float32(rng.NormFloat64())
	}
	for _, c := range []struct {
		ip     bool
		metric index.Metric
	}{{false, index.L2}, {true, index.InnerProduct}} {
		got := groundTruth(base, nb, queries, nq, dim, k, c.ip)
		for i := range nq {
			res, err := index.Exact(base, dim, c.metric, queries[i*dim:(i+1)*dim], k, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]int32, len(res))
			for j, r := range res {
				want[j] = r.ID
			}
			if !slices.Equal(got[i], want) {
				t.Errorf("%v query %d: %v, index.Exact %v", c.metric, i, got[i], want)
			}
		}
	}
}

func TestPlotCurves(t *testing.T) {
	rep := &report{Dataset: "test", Metric: "L2", Base: 10, Queries: 2, Dim: 3, K: 10, Libraries: []library{
		{Name: "a", Points: []point{{Ef: 10, Threads: 1, Recall: 0.9, QPS: 1000}, {Ef: 20, Threads: 1, Recall: 0.97, QPS: 500},
			{Ef: 10, Threads: 2, Recall: 0.9, QPS: 1900}}},
		{Name: "b", Points: []point{{Ef: 10, Threads: 1, Recall: 0.8, QPS: 3000}}},
	}}
	p := filepath.Join(t.TempDir(), "curves.png")
	if err := plotCurves(p, rep); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() < 500 {
		t.Fatalf("PNG: %v, %v", img.Bounds(), err)
	}
	if err := plotCurves(filepath.Join(t.TempDir(), "empty.png"), &report{}); err == nil {
		t.Error("a report without points: no error")
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

func TestWriteVectors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "v")
	if err := writeVectors(dir, []float32{1, 2, 3, 4}, []float32{5, 6}, 2, [][]int32{{1, 0}}, 2); err != nil {
		t.Fatal(err)
	}
	b, dim, err := vecfile.ReadFvecs(filepath.Join(dir, "base.fvecs"))
	if err != nil || dim != 2 || !slices.Equal(b, []float32{1, 2, 3, 4}) {
		t.Errorf("base: %v %d %v", b, dim, err)
	}
	gt, k, err := vecfile.ReadIvecs(filepath.Join(dir, "gt.ivecs"))
	if err != nil || k != 2 || !slices.Equal(gt, []int32{1, 0}) {
		t.Errorf("gt: %v %d %v", gt, k, err)
	}
	if err := writeVectors(dir, nil, nil, 2, [][]int32{{1}}, 2); err == nil {
		t.Error("a short truth row: no error")
	}
}
