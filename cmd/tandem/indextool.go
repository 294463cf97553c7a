package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tandemml/tandem/anntool"
)

// runIndexBuild is `tandem index build`: an HNSW graph over a vector file,
// written into an index directory (package anntool).
func runIndexBuild(_ context.Context, args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("index build", stderr)
	vectors := flags.String("vectors", "", "vectors to index: .fvecs, .bvecs or IDX, optionally .gz (required)")
	metric := flags.String("metric", "l2", "l2, ip (maximum inner product), cos, or rawip")
	out := flags.String("out", "", "index directory: index.bin and index.json are written there (required)")
	m := flags.Int("m", 0, "HNSW M (default 16; layer 0 keeps 2M)")
	efc := flags.Int("ef-construction", 0, "HNSW efConstruction (default 200)")
	threads := flags.Int("threads", 0, "build goroutines (default: all cores; 1 is deterministic)")
	seed := flags.Uint64("seed", 1, "seed of the layer draw")
	if err := parse(flags, args); err != nil {
		return err
	}
	if *vectors == "" || *out == "" {
		fmt.Fprintln(stderr, "-vectors and -out are required")
		flags.Usage()
		return errUsage
	}
	mt, err := anntool.ParseMetric(*metric)
	if err != nil {
		return fmt.Errorf("-metric: %w", err)
	}
	meta, err := anntool.Build(anntool.BuildOptions{Vectors: *vectors, Metric: mt, Out: *out, M: *m, EfConstruction: *efc,
		Threads: *threads, Seed: *seed})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "indexed %d vectors of dimension %d (%s, M %d, efConstruction %d, %d levels) in %.2fs on %d threads into %s\n",
		meta.N, meta.Dim, meta.Metric, meta.M, meta.EfConstruction, meta.Levels, meta.BuildSeconds, meta.Threads, *out)
	return nil
}

// runIndexQuery is `tandem index query`: every query of a vector file
// against an index directory; queries/s of the searches alone, recall@k
// against a ground truth file.
func runIndexQuery(_ context.Context, args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("index query", stderr)
	dir := flags.String("index", "", "index directory written by tandem index build (required)")
	queries := flags.String("queries", "", "query vectors: .fvecs, .bvecs or IDX, optionally .gz (required)")
	k := flags.Int("k", 10, "results per query")
	ef := flags.Int("ef", 0, "beam width of the search (default and minimum: k)")
	threads := flags.Int("threads", 0, "search goroutines (default: all cores)")
	out := flags.String("out", "", "write the result ids here as .ivecs (k per query, -1 past the last hit)")
	gt := flags.String("gt", "", "true neighbours of each query as .ivecs, best first: report recall@k")
	if err := parse(flags, args); err != nil {
		return err
	}
	if *dir == "" || *queries == "" {
		fmt.Fprintln(stderr, "-index and -queries are required")
		flags.Usage()
		return errUsage
	}
	rep, err := anntool.Query(anntool.QueryOptions{Index: *dir, Queries: *queries, K: *k, Ef: *ef, Threads: *threads, Out: *out, GT: *gt})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d queries, k %d, ef %d, %d threads: %.0f queries/s (%.3fs searching)\n",
		rep.Queries, rep.K, rep.Ef, rep.Threads, rep.QPS, rep.Seconds)
	if rep.HasRecall {
		fmt.Fprintf(stdout, "recall@%d %.4f\n", rep.K, rep.Recall)
	}
	if *out != "" {
		fmt.Fprintf(stdout, "wrote %s\n", *out)
	}
	return nil
}
