package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/eval"
	"github.com/tandemml/tandem/progress"
	"github.com/tandemml/tandem/refresh"
	"github.com/tandemml/tandem/sim"
	"github.com/tandemml/tandem/train"
)

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("simulate", stderr)
	out := fs.String("out", "", "output directory (required)")
	scale := fs.String("scale", "demo", "scale: tiny, demo or quality (or any scale in the config)")
	seed := fs.Uint64("seed", 1, "random seed; the same seed gives byte-identical files")
	format := fs.String("format", "parquet", "table format: parquet or jsonl")
	cfgPath := fs.String("config", "", "config file (default: the built-in default)")
	users := fs.Int("users", 0, "override the scale's number of users (0 keeps it)")
	workers := fs.Int("workers", 0, "parallel workers (default: all cores)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(stderr, "-out is required")
		fs.Usage()
		return errUsage
	}
	f, err := data.ParseFormat(*format)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	_, err = simulate(ctx, cfg, sim.Options{Dir: *out, Format: f, Scale: *scale, Seed: *seed, Users: *users, Workers: *workers}, stdout, stderr)
	return err
}

// simulate runs the simulator with a progress bar and prints a summary.
func simulate(ctx context.Context, cfg *config.Config, opts sim.Options, stdout, stderr io.Writer) (*data.Manifest, error) {
	var bar *progress.Bar
	opts.Progress = func(done, total int) {
		if bar == nil {
			bar = progress.New(stderr, "simulate", int64(total), "users")
		}
		bar.Set(int64(done), "")
	}
	fmt.Fprintf(stderr, "simulate: building the %s catalog (items, ads, users), then user timelines\n", opts.Scale)
	t0 := time.Now()
	m, err := sim.Generate(ctx, cfg, opts)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "simulated %s scale (seed %d) into %s in %s\n", opts.Scale, opts.Seed, opts.Dir, time.Since(t0).Round(time.Millisecond))
	for _, t := range data.Tables {
		fmt.Fprintf(stdout, "  %-12s %12d rows\n", t, m.Rows[t])
	}
	return m, nil
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", stderr)
	dir := fs.String("data", "", "data directory (required)")
	oracle := fs.Bool("oracle", false, "report the Bayes-optimal oracle on the test days")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	expected := fs.Bool("expected", false, "with -oracle: log losses as expectations under p_true instead of over drawn labels")
	model := fs.String("model", "", "model directory: report its CURRENT L2 and baselines against the oracle")
	plotsDir := fs.String("plots", "", "with -model: write reliability diagrams (PNG) into this directory")
	requests := fs.Int("requests", 1000, "with -model: test requests sampled for L1 retrieval recall")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || (!*oracle && *model == "") {
		fmt.Fprintln(stderr, "need -data DIR and -oracle or -model MODELDIR")
		fs.Usage()
		return errUsage
	}
	if *model != "" {
		return modelEval(*dir, *model, *jsonOut, *plotsDir, *requests, stdout)
	}
	return oracleReport(*dir, *jsonOut, *expected, stdout)
}

func oracleReport(dir, jsonOut string, expected bool, stdout io.Writer) error {
	rep, err := eval.Oracle(dir, eval.OracleOptions{Expected: expected})
	if err != nil {
		return err
	}
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if jsonOut == "" {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s\n", jsonOut)
	return nil
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	dir := fs.String("dir", "", "keep what the demo makes in this directory (default: a temporary one, removed)")
	scale := fs.String("scale", "demo", "simulator scale")
	seed := fs.Uint64("seed", 1, "random seed")
	steps := fs.Int("steps", 300, "training steps per model (the demo trains briefly; `tandem train` trains to convergence)")
	if err := parse(fs, args); err != nil {
		return err
	}
	work := *dir
	if work == "" {
		tmp, err := os.MkdirTemp("", "tandem-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		work = tmp
	}
	dataDir := filepath.Join(work, "data")
	fmt.Fprintf(stdout, "== 1/6 simulate (%s scale) ==\n", *scale)
	if _, err := simulate(ctx, config.Default(), sim.Options{Dir: dataDir, Scale: *scale, Seed: *seed}, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\n== 2/6 oracle report (test days): what a perfect model would score ==")
	jsonOut := ""
	if *dir != "" {
		jsonOut = filepath.Join(work, "oracle.json")
	}
	if err := oracleReport(dataDir, jsonOut, false, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n== 3/6 train L2 and L1 (%d steps each; L1 on impression labels, without the 2-fold teacher) and publish a model version ==\n", *steps)
	cfg := config.Default()
	cfg.Train.Epochs, cfg.Train.MaxSteps = 1, *steps
	cfg.Model.L1.Distill = false // the teacher's two extra L2s and ≈30 rows per request do not fit the demo's minutes
	modelDir := filepath.Join(work, "models")
	res, err := train.Run(ctx, train.RunOptions{Data: dataDir, ModelDir: modelDir, Config: cfg, Seed: *seed, Model: "all",
		Options: train.Options{Seed: *seed, Progress: stderr, Log: func(f string, a ...any) { fmt.Fprintf(stdout, f+"\n", a...) }}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published %s\n", res.Version)
	fmt.Fprintln(stdout, "\n== 4/6 evaluate the trained models on the test days ==")
	if *dir != "" {
		jsonOut = filepath.Join(work, "models.json")
	}
	if err := modelEval(dataDir, modelDir, jsonOut, "", 200, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\n== 5/6 refresh: embed every ad with the L1 ad tower, build the HNSW index, write and flip a snapshot ==")
	dbDir := filepath.Join(work, "db")
	if _, err := refresh.Run(ctx, refresh.Options{Data: dataDir, ModelDir: modelDir, DBDir: dbDir, Log: stdout}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\n== 6/6 serve: L1 Retrieve and L2 Rank over gRPC on 127.0.0.1, a few test-day requests ==")
	if err := demoServe(ctx, cfg, dataDir, modelDir, dbDir, stdout); err != nil {
		return err
	}
	if *dir != "" {
		fmt.Fprintf(stdout, "\nkept everything in %s\n", work)
	}
	return nil
}
