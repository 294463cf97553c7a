package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/gpu"
	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/refresh"
	"github.com/tandemml/tandem/snapshot"
	"github.com/tandemml/tandem/store"
)

func runRefresh(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "embed", "build", "publish":
			return runRefreshTask(ctx, args[0], args[1:], stdout, stderr)
		}
	}
	flags := newFlagSet("refresh", stderr)
	dataDir := flags.String("data", "", "data directory with the ads and items tables (required)")
	modelDir := flags.String("model", "", "model directory; its CURRENT version's L1 ad towers embed the ads (required)")
	db := flags.String("db", "", "snapshot directory DBDIR: a new version DBDIR/<V>/ is written and made CURRENT (required)")
	version := flags.String("version", "", "name of the new version (default: the UTC time)")
	threads := flags.Int("threads", 0, "cores for the ad tower and the index build (default: all)")
	m := flags.Int("m", 0, "HNSW M (default 16)")
	efc := flags.Int("ef-construction", 0, "HNSW efConstruction (default 200)")
	jsonOut := flags.String("json", "", "write the run's report as JSON here")
	device := flags.String("device", "auto", "where the ad towers run: auto (the GPU when one is usable, else the CPU with one log line saying why), cpu or gpu")
	precision := flags.String("precision", "fp32", "GPU GEMM precision: fp32, tf32 or bf16")
	if err := parse(flags, args); err != nil {
		return err
	}
	if *dataDir == "" || *modelDir == "" || *db == "" {
		fmt.Fprintln(stderr, "-data, -model and -db are required")
		flags.Usage()
		return errUsage
	}
	prec, err := gpu.ParsePrecision(*precision)
	if err != nil {
		return err
	}
	dev, err := gpu.Select(*device, gpu.Options{Paths: cuda.PathsFromEnv(), Precision: prec}, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	o := refresh.Options{Data: *dataDir, ModelDir: *modelDir, DBDir: *db, Version: *version,
		Threads: *threads, M: *m, EfConstruction: *efc, Log: stdout}
	if dev != nil {
		defer dev.Close()
		o.AdTower = func(m *engine.L1Ad) (refresh.AdRunner, error) { return dev.NewAdTower(m) }
	}
	rep, err := refresh.Run(ctx, o)
	if err != nil {
		return err
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		return os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// runRefreshTask is `tandem refresh embed|build|publish`: one task of the
// job, handing its artifacts to the others through --store
// (docs/REFRESH_TASKS.md).
func runRefreshTask(ctx context.Context, task string, args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("refresh "+task, stderr)
	dataDir := flags.String("data", "", "data directory with the ads and items tables (required)")
	modelDir := flags.String("model", "", "model directory; its CURRENT version is the run's model (required)")
	storeURL := flags.String("store", "", "where the tasks' artifacts live: a directory, file:///DIR, s3://BUCKET?region=R[&endpoint=URL&use_path_style=true&prefix=RUN/] or mem:// (required)")
	threads := flags.Int("threads", 0, "cores (default: all)")
	var part, shardFlag *string
	var parts, shards *int
	var m, efc *int
	var db, version, jsonOut, device, precision *string
	switch task {
	case "embed":
		part = flags.String("part", "", "the part to embed, 0 ≤ i < parts (default: $JOB_COMPLETION_INDEX)")
		parts = flags.Int("parts", 1, "number of parts: part i embeds the ad rows [⌊i·n/parts⌋, ⌊(i+1)·n/parts⌋)")
		device = flags.String("device", "auto", "where the ad towers run: auto, cpu or gpu")
		precision = flags.String("precision", "fp32", "GPU GEMM precision: fp32, tf32 or bf16")
	case "build":
		shardFlag = flags.String("shard", "", "the shard to build, 0 ≤ s < shards (default: $JOB_COMPLETION_INDEX)")
		shards = flags.Int("shards", 1, "number of shards (1: the whole-route index)")
	case "publish":
		db = flags.String("db", "", "snapshot directory DBDIR: a new version DBDIR/<V>/ is written and made CURRENT (required)")
		version = flags.String("version", "", "name of the new version (default: the UTC time at publish); a rerun under the same name finishes or accepts it")
		jsonOut = flags.String("json", "", "write the run's report as JSON here")
	}
	if task != "embed" {
		m = flags.Int("m", 0, "HNSW M (default 16); build and publish must agree")
		efc = flags.Int("ef-construction", 0, "HNSW efConstruction (default 200); build and publish must agree")
	}
	if err := parse(flags, args); err != nil {
		return err
	}
	if *dataDir == "" || *modelDir == "" || *storeURL == "" || (task == "publish" && *db == "") {
		if task == "publish" {
			fmt.Fprintln(stderr, "-data, -model, -store and -db are required")
		} else {
			fmt.Fprintln(stderr, "-data, -model and -store are required")
		}
		flags.Usage()
		return errUsage
	}
	o := refresh.Options{Data: *dataDir, ModelDir: *modelDir, Threads: *threads, Log: stdout}
	if m != nil {
		o.M, o.EfConstruction = *m, *efc
	}
	var idx int
	var err error
	switch task {
	case "embed":
		idx, err = refresh.TaskIndex("--part", *part)
	case "build":
		idx, err = refresh.TaskIndex("--shard", *shardFlag)
	}
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer st.Close()
	switch task {
	case "embed":
		prec, err := gpu.ParsePrecision(*precision)
		if err != nil {
			return err
		}
		dev, err := gpu.Select(*device, gpu.Options{Paths: cuda.PathsFromEnv(), Precision: prec}, slog.New(slog.NewTextHandler(stderr, nil)))
		if err != nil {
			return err
		}
		if dev != nil {
			defer dev.Close()
			o.AdTower = func(m *engine.L1Ad) (refresh.AdRunner, error) { return dev.NewAdTower(m) }
		}
		return refresh.Embed(ctx, o, st, idx, *parts)
	case "build":
		return refresh.Build(ctx, o, st, idx, *shards)
	}
	o.DBDir, o.Version = *db, *version
	rep, err := refresh.Publish(ctx, o, st)
	if err != nil {
		return err
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		return os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// runIndex is `tandem index ls|rollback|build|query`. ls and rollback read
// DBDIR and replace CURRENT only, so they work while a server has the live
// version open; build and query work on a standalone index directory over
// vector files (indextool.go).
func runIndex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "build":
			return runIndexBuild(ctx, args[1:], stdout, stderr)
		case "query":
			return runIndexQuery(ctx, args[1:], stdout, stderr)
		}
	}
	if len(args) == 0 || (args[0] != "ls" && args[0] != "rollback") {
		fmt.Fprintln(stderr, "usage: tandem index ls|rollback -db DBDIR [-to VERSION]\n"+
			"       tandem index build -vectors FILE -out DIR [-metric l2|ip|cos|rawip] [-m M] [-ef-construction N] [-threads T] [-seed S]\n"+
			"       tandem index query -index DIR -queries FILE [-k K] [-ef EF] [-threads T] [-out RESULTS.ivecs] [-gt TRUTH.ivecs]")
		return errUsage
	}
	sub := args[0]
	flags := newFlagSet("index "+sub, stderr)
	db := flags.String("db", "", "snapshot directory (required)")
	to := flags.String("to", "", "rollback: the version to make live (default: the one before the live one)")
	if err := parse(flags, args[1:]); err != nil {
		return err
	}
	if *db == "" {
		fmt.Fprintln(stderr, "-db is required")
		flags.Usage()
		return errUsage
	}
	if sub == "rollback" {
		v, err := snapshot.Rollback(*db, *to)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is live\n", v)
		return nil
	}
	vs, err := snapshot.List(*db)
	if err != nil {
		return err
	}
	prev, _ := snapshot.Previous(*db)
	for _, v := range vs {
		state := "complete"
		switch {
		case v.Live:
			state = "LIVE"
		case v.Version == prev:
			state = "previous (rollback target)"
		case !v.Complete:
			state = v.Problem
		}
		fmt.Fprintf(stdout, "%-28s %s\n", v.Version, state)
	}
	return nil
}
