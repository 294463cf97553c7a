// Package anntool builds HNSW indexes from vector files and queries them:
// the library behind `tandem index build` and `tandem index query`.
//
// An index directory holds index.bin, the graph in package index's binary
// format, and index.json, the build parameters and the build time (Meta).
// Query loads both, runs every query of a vector file on a number of
// goroutines (each with its own index.Searcher, queries handed out in
// blocks), and times the searches alone, not the loading. With a ground
// truth file (.ivecs, the true neighbours of each query, best first) it
// reports recall@k: the mean share of each query's true k nearest found
// among its k results.
package anntool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/internal/atomicfile"
	"github.com/tandemml/tandem/vecfile"
)

// Files of an index directory.
const (
	IndexFile = "index.bin"
	MetaFile  = "index.json"
)

// metaFormat is the version of index.json.
const metaFormat = 1

// ParseMetric maps a metric's command-line name to index.Metric: l2, ip
// (maximum inner product through the norm-augmentation transform), cos,
// and rawip (inner product as a distance, for comparison). The names
// index.Metric.String gives (cosine, raw-ip) are accepted as well.
func ParseMetric(s string) (index.Metric, error) {
	switch strings.ToLower(s) {
	case "l2":
		return index.L2, nil
	case "ip":
		return index.InnerProduct, nil
	case "cos", "cosine":
		return index.Cosine, nil
	case "rawip", "raw-ip":
		return index.RawIP, nil
	}
	return 0, fmt.Errorf("unknown metric %q: want l2, ip, cos or rawip", s)
}

// BuildOptions are the inputs of Build.
type BuildOptions struct {
	Vectors        string // .fvecs, .bvecs or IDX file (see vecfile.Read)
	Metric         index.Metric
	Out            string // the index directory, created if missing
	M              int    // 0: index.DefaultM
	EfConstruction int    // 0: index.DefaultEfConstruction
	Threads        int    // ≤ 0: GOMAXPROCS; 1 builds deterministically
	Seed           uint64
}

// Meta is index.json: what built the graph and how long it took.
type Meta struct {
	Format         int       `json:"format"`
	Vectors        string    `json:"vectors"`
	N              int       `json:"n"`
	Dim            int       `json:"dim"`
	Metric         string    `json:"metric"`
	M              int       `json:"m"`
	EfConstruction int       `json:"ef_construction"`
	Seed           uint64    `json:"seed"`
	Threads        int       `json:"threads"`
	Levels         int       `json:"levels"`
	BuildSeconds   float64   `json:"build_seconds"`
	Created        time.Time `json:"created"`
}

// Build reads o.Vectors, builds the graph and writes o.Out/index.bin and
// o.Out/index.json, each replaced atomically.
func Build(o BuildOptions) (*Meta, error) {
	vecs, dim, err := vecfile.Read(o.Vectors)
	if err != nil {
		return nil, fmt.Errorf("build index: %w", err)
	}
	if dim == 0 {
		return nil, fmt.Errorf("build index: %s holds no vectors", o.Vectors)
	}
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	cfg := index.Config{M: o.M, EfConstruction: o.EfConstruction, Metric: o.Metric, Seed: o.Seed}
	t0 := time.Now()
	g, err := index.Build(vecs, dim, cfg, threads)
	if err != nil {
		return nil, fmt.Errorf("build index from %s: %w", o.Vectors, err)
	}
	el := time.Since(t0)
	blob, err := g.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode index: %w", err)
	}
	gc := g.Config()
	meta := &Meta{Format: metaFormat, Vectors: o.Vectors, N: g.Len(), Dim: dim, Metric: o.Metric.String(), M: gc.M,
		EfConstruction: gc.EfConstruction, Seed: o.Seed, Threads: threads, Levels: g.Levels(), BuildSeconds: el.Seconds(),
		Created: time.Now().UTC().Truncate(time.Second)}
	js, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create index directory: %w", err)
	}
	for name, b := range map[string][]byte{IndexFile: blob, MetaFile: append(js, '\n')} {
		p := filepath.Join(o.Out, name)
		if err := atomicfile.Write(p, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
			return nil, fmt.Errorf("write %s: %w", p, err)
		}
	}
	return meta, nil
}

// Load reads an index directory written by Build. index.json must agree
// with the graph.
func Load(dir string) (*index.Graph, *Meta, error) {
	bp, mp := filepath.Join(dir, IndexFile), filepath.Join(dir, MetaFile)
	js, err := os.ReadFile(mp)
	if err != nil {
		return nil, nil, fmt.Errorf("load index: %w", err)
	}
	var meta Meta
	if err := json.Unmarshal(js, &meta); err != nil {
		return nil, nil, fmt.Errorf("load index: %s: %w", mp, err)
	}
	if meta.Format != metaFormat {
		return nil, nil, fmt.Errorf("load index: %s: format %d, this code reads %d", mp, meta.Format, metaFormat)
	}
	blob, err := os.ReadFile(bp)
	if err != nil {
		return nil, nil, fmt.Errorf("load index: %w", err)
	}
	g, err := index.Unmarshal(blob)
	if err != nil {
		return nil, nil, fmt.Errorf("load index: %s: %w", bp, err)
	}
	if g.Len() != meta.N || g.Dim() != meta.Dim || g.Metric().String() != meta.Metric {
		return nil, nil, fmt.Errorf("load index: %s says %d vectors of dimension %d (%s), %s holds %d of dimension %d (%s)",
			mp, meta.N, meta.Dim, meta.Metric, bp, g.Len(), g.Dim(), g.Metric())
	}
	return g, &meta, nil
}

// QueryOptions are the inputs of Query.
type QueryOptions struct {
	Index   string // the index directory
	Queries string // vector file of the queries
	K, Ef   int    // results per query; beam width (values below K mean K)
	Threads int    // ≤ 0: GOMAXPROCS
	Out     string // when set, the result ids are written here as .ivecs
	GT      string // when set, an .ivecs file of true neighbours for recall@K
}

// QueryReport is what Query measured.
type QueryReport struct {
	Queries int     `json:"queries"`
	K       int     `json:"k"`
	Ef      int     `json:"ef"`
	Threads int     `json:"threads"`
	Seconds float64 `json:"seconds"` // the searches alone
	QPS     float64 `json:"qps"`
	// Recall is recall@K against the ground truth; HasRecall says whether
	// one was given.
	Recall    float64 `json:"recall,omitempty"`
	HasRecall bool    `json:"has_recall"`
}

// Query loads the index, runs the queries and, as asked, writes the
// results and computes recall. The ground truth is read before the
// searches so that a bad file fails fast.
func Query(o QueryOptions) (*QueryReport, error) {
	if o.K <= 0 {
		return nil, fmt.Errorf("query index: k = %d, want > 0", o.K)
	}
	if o.Ef < 0 {
		return nil, fmt.Errorf("query index: ef = %d, want ≥ 0", o.Ef)
	}
	g, _, err := Load(o.Index)
	if err != nil {
		return nil, err
	}
	qs, dim, err := vecfile.Read(o.Queries)
	if err != nil {
		return nil, fmt.Errorf("query index: %w", err)
	}
	if dim == 0 {
		return nil, fmt.Errorf("query index: %s holds no queries", o.Queries)
	}
	if dim != g.Dim() {
		return nil, fmt.Errorf("query index: queries %s have dimension %d, the index in %s has %d", o.Queries, dim, o.Index, g.Dim())
	}
	nq := len(qs) / dim
	var truth []int32
	var tdim int
	if o.GT != "" {
		if truth, tdim, err = vecfile.ReadIvecs(o.GT); err != nil {
			return nil, fmt.Errorf("query index: ground truth: %w", err)
		}
		if n := len(truth) / max(tdim, 1); n != nq || tdim < o.K {
			return nil, fmt.Errorf("query index: ground truth %s has %d rows of %d ids, want %d rows (one per query in %s) of at least k = %d",
				o.GT, n, tdim, nq, o.Queries, o.K)
		}
	}
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	t0 := time.Now()
	ids, err := SearchAll(g, qs, o.K, o.Ef, threads)
	el := time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("query index with %s: %w", o.Queries, err)
	}
	rep := &QueryReport{Queries: nq, K: o.K, Ef: max(o.Ef, o.K), Threads: threads, Seconds: el.Seconds(), QPS: float64(nq) / el.Seconds()}
	if truth != nil {
		if rep.Recall, err = Recall(ids, o.K, truth, tdim); err != nil {
			return nil, err
		}
		rep.HasRecall = true
	}
	if o.Out != "" {
		if err := vecfile.WriteIvecs(o.Out, ids, o.K); err != nil {
			return nil, fmt.Errorf("query index: results: %w", err)
		}
	}
	return rep, nil
}

// block is the number of queries a goroutine takes at a time.
const block = 64

// SearchAll searches g for every row-major query (len(queries)/g.Dim() of
// them) on threads goroutines and returns k ids per query, best first;
// when the graph holds fewer than k vectors the rows are padded with −1.
// The first error stops the run; it names the query.
func SearchAll(g *index.Graph, queries []float32, k, ef, threads int) ([]int32, error) {
	dim := g.Dim()
	if dim == 0 || len(queries)%dim != 0 {
		return nil, fmt.Errorf("search: %d query values are not a whole number of queries of dimension %d", len(queries), dim)
	}
	nq := len(queries) / dim
	out := make([]int32, nq*k)
	threads = max(1, min(threads, (nq+block-1)/block))
	var next atomic.Int64
	var failed atomic.Bool
	errs := make([]error, threads)
	var wg sync.WaitGroup
	for w := range threads {
		wg.Go(func() {
			s := index.NewSearcher()
			for !failed.Load() {
				lo := int(next.Add(block)) - block
				if lo >= nq {
					return
				}
				for i := lo; i < min(lo+block, nq); i++ {
					res, err := g.Search(queries[i*dim:(i+1)*dim], k, ef, nil, s)
					if err != nil {
						errs[w] = fmt.Errorf("query %d: %w", i, err)
						failed.Store(true)
						return
					}
					row := out[i*k : (i+1)*k]
					for j := range row {
						row[j] = -1
						if j < len(res) {
							row[j] = res[j].ID
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Recall returns recall@k: got holds k ids per query, truth tdim ≥ k per
// query, best first; each query scores the share of its first k true ids
// found among its k results, and the scores are averaged. Shapes that do
// not match are an error.
func Recall(got []int32, k int, truth []int32, tdim int) (float64, error) {
	if k <= 0 || tdim < k || len(got)%k != 0 || len(truth) != len(got)/k*tdim || len(got) == 0 {
		return 0, fmt.Errorf("recall: %d result ids in rows of k = %d against %d true ids in rows of %d", len(got), k, len(truth), tdim)
	}
	nq := len(got) / k
	s := 0.0
	for i := range nq {
		t := truth[i*tdim : i*tdim+k]
		hit := 0
		for _, id := range got[i*k : (i+1)*k] {
			for _, x := range t {
				if id == x && id >= 0 {
					hit++
					break
				}
			}
		}
		s += float64(hit) / float64(k)
	}
	return s / float64(nq), nil
}
