package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/vecfile"
)

func writeRandomFvecs(t *testing.T, path string, n, dim int, seed uint64) []float32 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, n*dim)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	if err := vecfile.WriteFvecs(path, v, dim); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestIndexBuildQueryRoundTrip builds an index with the command, queries
// it with a ground truth from index.Exact, and checks the reported recall
// against the written result ids.
func TestIndexBuildQueryRoundTrip(t *testing.T) {
	const n, nq, dim, k = 2000, 100, 12, 10
	dir := t.TempDir()
	bp, qp := filepath.Join(dir, "base.fvecs"), filepath.Join(dir, "queries.fvecs")
	base := writeRandomFvecs(t, bp, n, dim, 1)
	queries := writeRandomFvecs(t, qp, nq, dim, 2)
	idx := filepath.Join(dir, "idx")
	code, out, stderr := runCLI(t, "index", "build", "--vectors", bp, "--metric", "l2", "--out", idx, "--m", "8",
		"--ef-construction", "100", "--threads", "2", "--seed", "4")
	if code != 0 {
		t.Fatalf("index build: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "indexed 2000 vectors of dimension 12") || !regexp.MustCompile(`in \d+\.\d+s`).MatchString(out) {
		t.Errorf("index build output: %q", out)
	}
	for _, f := range []string{"index.bin", "index.json"} {
		if _, err := os.Stat(filepath.Join(idx, f)); err != nil {
			t.Error(err)
		}
	}
	var truth []int32
	for i := range nq {
		res, err := index.Exact(base, dim, index.L2, queries[i*dim:(i+1)*dim], k, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			truth = append(truth, r.ID)
		}
	}
	gt := filepath.Join(dir, "gt.ivecs")
	if err := vecfile.WriteIvecs(gt, truth, k); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "res.ivecs")
	code, out, stderr = runCLI(t, "index", "query", "--index", idx, "--queries", qp, "--k", "10", "--ef", "80",
		"--threads", "2", "--out", res, "--gt", gt)
	if code != 0 {
		t.Fatalf("index query: exit %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`recall@10 (\d\.\d+)`).FindStringSubmatch(out)
	if !strings.Contains(out, "100 queries, k 10, ef 80, 2 threads:") || !strings.Contains(out, "queries/s") || m == nil {
		t.Fatalf("index query output: %q", out)
	}
	reported, _ := strconv.ParseFloat(m[1], 64)
	ids, kd, err := vecfile.ReadIvecs(res)
	if err != nil || kd != k || len(ids) != nq*k {
		t.Fatalf("results: %d ids of %d, %v", len(ids), kd, err)
	}
	hits := 0
	for i := range nq {
		for _, id := range ids[i*k : (i+1)*k] {
			for _, x := range truth[i*k : (i+1)*k] {
				if id == x {
					hits++
				}
			}
		}
	}
	got := float64(hits) / float64(nq*k)
	if strconv.FormatFloat(got, 'f', 4, 64) != m[1] || reported < 0.95 {
		t.Errorf("recall from the results file %.4f, reported %s; want equal and ≥ 0.95", got, m[1])
	}
	// Without --gt there is no recall line.
	code, out, _ = runCLI(t, "index", "query", "--index", idx, "--queries", qp, "--k", "5")
	if code != 0 || strings.Contains(out, "recall") || !strings.Contains(out, "k 5, ef 5") {
		t.Errorf("query without -gt: exit %d, %q", code, out)
	}
}

func TestIndexBuildQueryRejectBadInput(t *testing.T) {
	dir := t.TempDir()
	bp := filepath.Join(dir, "base.fvecs")
	writeRandomFvecs(t, bp, 60, 6, 1)
	q5 := filepath.Join(dir, "q5.fvecs")
	writeRandomFvecs(t, q5, 4, 5, 2)
	corrupt := filepath.Join(dir, "corrupt.fvecs")
	raw, _ := os.ReadFile(bp)
	os.WriteFile(corrupt, raw[:len(raw)-1], 0o644)
	idx := filepath.Join(dir, "idx")
	if code, _, stderr := runCLI(t, "index", "build", "-vectors", bp, "-out", idx, "-threads", "1"); code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	missing := filepath.Join(dir, "missing.fvecs")
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"index", "build", "-out", idx}, 2, []string{"-vectors and -out are required"}},
		{[]string{"index", "query", "-index", idx}, 2, []string{"-index and -queries are required"}},
		{[]string{"index", "build", "-vectors", bp, "-out", idx, "-metric", "manhattan"}, 1, []string{"-metric", `"manhattan"`}},
		{[]string{"index", "build", "-vectors", missing, "-out", idx}, 1, []string{"missing.fvecs", "no such file"}},
		{[]string{"index", "build", "-vectors", corrupt, "-out", idx}, 1, []string{"corrupt.fvecs", "vector 59 at byte offset"}},
		{[]string{"index", "build", "-vectors", filepath.Join(dir, "base.txt"), "-out", idx}, 1, []string{"base.txt", "unknown vector format"}},
		{[]string{"index", "query", "-index", idx, "-queries", q5}, 1, []string{"q5.fvecs", "dimension 5", "has 6"}},
		{[]string{"index", "query", "-index", idx, "-queries", corrupt}, 1, []string{"corrupt.fvecs", "vector 59"}},
		{[]string{"index", "query", "-index", idx, "-queries", missing}, 1, []string{"missing.fvecs"}},
		{[]string{"index", "query", "-index", filepath.Join(dir, "noidx"), "-queries", bp}, 1, []string{filepath.Join("noidx", "index.json")}},
		{[]string{"index", "query", "-index", idx, "-queries", bp, "-gt", corrupt}, 1, []string{"ground truth", "corrupt.fvecs"}},
		{[]string{"index", "query", "-index", idx, "-queries", bp, "-k", "0"}, 1, []string{"k = 0"}},
		{[]string{"index", "frob"}, 2, []string{"usage: tandem index ls|rollback", "tandem index build", "tandem index query"}},
	} {
		code, out, stderr := runCLI(t, c.args...)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d: %s%s", c.args, code, c.code, out, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr %q lacks %q", c.args, stderr, w)
			}
		}
	}
	// A damaged index.bin is refused with its path.
	blob := filepath.Join(idx, "index.bin")
	b, _ := os.ReadFile(blob)
	b[len(b)-5] ^= 1
	os.WriteFile(blob, b, 0o644)
	code, _, stderr := runCLI(t, "index", "query", "-index", idx, "-queries", bp)
	if code != 1 || !strings.Contains(stderr, blob) || !strings.Contains(stderr, "checksum") {
		t.Errorf("damaged index: exit %d, %q", code, stderr)
	}
}
