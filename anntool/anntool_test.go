package anntool

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/vecfile"
)

func randomVectors(n, dim int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, n*dim)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// exactTruth is the k best base rows of every query by index.Exact.
func exactTruth(t *testing.T, base []float32, queries []float32, dim, k int, m index.Metric) []int32 {
	t.Helper()
	var out []int32
	for i := 0; i < len(queries); i += dim {
		res, err := index.Exact(base, dim, m, queries[i:i+dim], k, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			out = append(out, r.ID)
		}
	}
	return out
}

func TestBuildQueryRecallAgainstExact(t *testing.T) {
	const n, nq, dim, k = 3000, 200, 16, 10
	dir := t.TempDir()
	base, queries := randomVectors(n, dim, 1), randomVectors(nq, dim, 2)
	bp, qp := filepath.Join(dir, "base.fvecs"), filepath.Join(dir, "q.fvecs")
	if err := vecfile.WriteFvecs(bp, base, dim); err != nil {
		t.Fatal(err)
	}
	if err := vecfile.WriteFvecs(qp, queries, dim); err != nil {
		t.Fatal(err)
	}
	for _, m := range []index.Metric{index.L2, index.InnerProduct, index.Cosine} {
		t.Run(m.String(), func(t *testing.T) {
			out := filepath.Join(dir, "idx-"+m.String())
			meta, err := Build(BuildOptions{Vectors: bp, Metric: m, Out: out, M: 8, EfConstruction: 64, Threads: 2, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			if meta.N != n || meta.Dim != dim || meta.M != 8 || meta.EfConstruction != 64 || meta.BuildSeconds <= 0 {
				t.Errorf("meta %+v", meta)
			}
			truth := exactTruth(t, base, queries, dim, k, m)
			gt := filepath.Join(dir, "gt-"+m.String()+".ivecs")
			if err := vecfile.WriteIvecs(gt, truth, k); err != nil {
				t.Fatal(err)
			}
			res := filepath.Join(dir, "res-"+m.String()+".ivecs")
			var recalls []float64
			for _, ef := range []int{10, 100} {
				rep, err := Query(QueryOptions{Index: out, Queries: qp, K: k, Ef: ef, Threads: 3, Out: res, GT: gt})
				if err != nil {
					t.Fatal(err)
				}
				if !rep.HasRecall || rep.Queries != nq || rep.QPS <= 0 {
					t.Fatalf("report %+v", rep)
				}
				ids, kd, err := vecfile.ReadIvecs(res)
				if err != nil || kd != k || len(ids) != nq*k {
					t.Fatalf("results file: %d ids of %d, %v", len(ids), kd, err)
				}
				if got, err := Recall(ids, k, truth, k); err != nil || got != rep.Recall {
					t.Errorf("recall of the written results %v, reported %v", got, rep.Recall)
				}
				recalls = append(recalls, rep.Recall)
			}
			// Inner product over Gaussian vectors is the hard case (hubs).
			floor := 0.97
			if m == index.InnerProduct {
				floor = 0.9
			}
			if recalls[1] < floor || recalls[1] < recalls[0] {
				t.Errorf("recall@10 at ef 10 and 100: %v; want ≥ %v at ef 100 and not below ef 10", recalls, floor)
			}
			// The serial build is deterministic and Load gives back the same graph.
			g, _, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			one, err := SearchAll(g, queries, k, 100, 1)
			if err != nil {
				t.Fatal(err)
			}
			many, _ := SearchAll(g, queries, k, 100, 4)
			if !slices.Equal(one, many) {
				t.Error("results differ between 1 and 4 search goroutines")
			}
		})
	}
}

func TestSearchAllPadsShortResults(t *testing.T) {
	g, err := index.Build([]float32{0, 0, 1, 1, 2, 2}, 2, index.Config{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := SearchAll(g, []float32{2.1, 2, 0, 0.1}, 5, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{2, 1, 0, -1, -1, 0, 1, 2, -1, -1}
	if !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	if _, err := SearchAll(g, []float32{1, 2, float32(math.NaN()), 0}, 1, 0, 2); err == nil || !strings.Contains(err.Error(), "query 1") {
		t.Errorf("NaN query: %v", err)
	}
	if _, err := SearchAll(g, []float32{1, 2, 3}, 1, 0, 1); err == nil {
		t.Error("3 values for dimension 2: no error")
	}
}

func TestRecall(t *testing.T) {
	got := []int32{1, 2, 3, 9, -1, -1}
	truth := []int32{2, 1, 7, 3, 4, 5, 8, 8, 8}
	if r, err := Recall(got, 2, truth, 3); err != nil || r != 0.5 {
		t.Errorf("Recall = %v, %v; want 0.5 (query 0: 2 of 2, query 1: 1 of 2, query 2: 0)", r, err)
	}
	for _, c := range []struct {
		truth   []int32
		k, tdim int
	}{{truth[:6], 2, 3}, {truth, 2, 1}, {truth, 4, 3}, {truth, 0, 3}} {
		if _, err := Recall(got, c.k, c.truth, c.tdim); err == nil {
			t.Errorf("Recall(k %d, %d true ids in rows of %d): no error", c.k, len(c.truth), c.tdim)
		}
	}
}

func TestParseMetric(t *testing.T) {
	for s, want := range map[string]index.Metric{"l2": index.L2, "ip": index.InnerProduct, "cos": index.Cosine, "RawIP": index.RawIP} {
		if m, err := ParseMetric(s); err != nil || m != want {
			t.Errorf("ParseMetric(%q) = %v, %v", s, m, err)
		}
	}
	for _, m := range []index.Metric{index.L2, index.Cosine, index.InnerProduct, index.RawIP} {
		if got, err := ParseMetric(m.String()); err != nil || got != m {
			t.Errorf("ParseMetric(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMetric("hamming"); err == nil || !strings.Contains(err.Error(), `"hamming"`) {
		t.Errorf("ParseMetric(hamming): %v", err)
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	const dim = 4
	bp := filepath.Join(dir, "base.fvecs")
	vecfile.WriteFvecs(bp, randomVectors(50, dim, 1), dim)
	out := filepath.Join(dir, "idx")
	if _, err := Build(BuildOptions{Vectors: bp, Out: out, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	q3 := filepath.Join(dir, "q3.fvecs")
	vecfile.WriteFvecs(q3, randomVectors(5, 3, 2), 3)
	q4 := filepath.Join(dir, "q4.fvecs")
	vecfile.WriteFvecs(q4, randomVectors(5, dim, 2), dim)
	corrupt := filepath.Join(dir, "corrupt.fvecs")
	raw, _ := os.ReadFile(q4)
	os.WriteFile(corrupt, raw[:len(raw)-3], 0o644)
	nan := filepath.Join(dir, "nan.fvecs")
	v := randomVectors(5, dim, 3)
	v[9] = float32(math.NaN())
	vecfile.WriteFvecs(nan, v, dim)
	gtShort := filepath.Join(dir, "gt.ivecs")
	vecfile.WriteIvecs(gtShort, make([]int32, 4*10), 10)
	badIdx := filepath.Join(dir, "badidx")
	os.MkdirAll(badIdx, 0o755)
	blob, _ := os.ReadFile(filepath.Join(out, IndexFile))
	blob[len(blob)/2] ^= 0xff
	os.WriteFile(filepath.Join(badIdx, IndexFile), blob, 0o644)
	meta, _ := os.ReadFile(filepath.Join(out, MetaFile))
	os.WriteFile(filepath.Join(badIdx, MetaFile), meta, 0o644)

	for _, c := range []struct {
		name string
		err  func() error
		want []string
	}{
		{"missing vectors", func() error {
			_, err := Build(BuildOptions{Vectors: filepath.Join(dir, "nope.fvecs"), Out: out})
			return err
		},
			[]string{"nope.fvecs", "no such file"}},
		{"corrupt vectors", func() error { _, err := Build(BuildOptions{Vectors: corrupt, Out: out}); return err },
			[]string{"corrupt.fvecs", "vector 4 at byte offset 80"}},
		{"NaN vector", func() error { _, err := Build(BuildOptions{Vectors: nan, Out: out}); return err },
			[]string{"nan.fvecs", "vector 2 column 1"}},
		{"bad M", func() error { _, err := Build(BuildOptions{Vectors: bp, Out: out, M: 1}); return err },
			[]string{"base.fvecs", "Config.M"}},
		{"dimension mismatch", func() error { _, err := Query(QueryOptions{Index: out, Queries: q3, K: 3}); return err },
			[]string{"q3.fvecs", "dimension 3", "has 4"}},
		{"missing index", func() error {
			_, err := Query(QueryOptions{Index: filepath.Join(dir, "none"), Queries: q4, K: 3})
			return err
		},
			[]string{filepath.Join(dir, "none", MetaFile)}},
		{"corrupt index", func() error { _, err := Query(QueryOptions{Index: badIdx, Queries: q4, K: 3}); return err },
			[]string{filepath.Join(badIdx, IndexFile), "checksum"}},
		{"corrupt queries", func() error { _, err := Query(QueryOptions{Index: out, Queries: corrupt, K: 3}); return err },
			[]string{"corrupt.fvecs", "vector 4"}},
		{"NaN query", func() error { _, err := Query(QueryOptions{Index: out, Queries: nan, K: 3}); return err },
			[]string{"nan.fvecs", "query 2"}},
		{"ground truth rows", func() error { _, err := Query(QueryOptions{Index: out, Queries: q4, K: 3, GT: gtShort}); return err },
			[]string{"gt.ivecs", "4 rows", "want 5 rows"}},
		{"ground truth narrower than k", func() error {
			_, err := Query(QueryOptions{Index: out, Queries: q4, K: 11, GT: gtShort})
			return err
		}, []string{"gt.ivecs", "k = 11"}},
		{"ground truth file", func() error { _, err := Query(QueryOptions{Index: out, Queries: q4, K: 3, GT: corrupt}); return err },
			[]string{"ground truth", "corrupt.fvecs"}},
		{"k", func() error { _, err := Query(QueryOptions{Index: out, Queries: q4}); return err }, []string{"k = 0"}},
	} {
		err := c.err()
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v; want it to contain %q", c.name, err, w)
			}
		}
	}
}
