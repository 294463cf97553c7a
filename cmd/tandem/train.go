package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/eval"
	"github.com/tandemml/tandem/modeldir"
	"github.com/tandemml/tandem/train"
)

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("train", stderr)
	dir := fs.String("data", "", "data directory (required)")
	out := fs.String("out", "", "model directory: a new version is written and made CURRENT (required)")
	cfgPath := fs.String("config", "", "config file (default: the embedded default); its schema must match the data's")
	model := fs.String("model", "l2", "which model to train (l2; L1 training is not built yet)")
	seed := fs.Uint64("seed", 1, "seed for initialisation, shuffling and sequence masking")
	baselines := fs.String("baselines", "", "comma-separated L2 baselines to train beside the model: logistic, per_surface, global_calib, mlp")
	resume := fs.String("resume", "", "resume checkpoint path prefix: written during training, continued from when present")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *out == "" {
		fmt.Fprintln(stderr, "need -data DIR and -out MODELDIR")
		fs.Usage()
		return errUsage
	}
	if *model != "l2" {
		return fmt.Errorf("-model %q: only l2 can be trained by this build", *model)
	}
	cfg, explicit := config.Default(), false
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		cfg, explicit = c, true
	}
	var bl []string
	if *baselines != "" {
		bl = strings.Split(*baselines, ",")
	}
	res, err := train.Run(ctx, train.RunOptions{Data: *dir, ModelDir: *out, Config: cfg, ExplicitConfig: explicit, Seed: *seed,
		Baselines: bl, Options: train.Options{Seed: *seed, Progress: stderr, ResumePath: *resume,
			Log: func(f string, a ...any) { fmt.Fprintf(stdout, f+"\n", a...) }}})
	if err != nil {
		return err
	}
	names := make([]string, 0, len(res.Reports))
	for n := range res.Reports {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := res.Reports[n]
		fmt.Fprintf(stdout, "%s: %d steps, %d epochs (best %d), %.0f examples/s\n", n, r.Steps, r.Epochs, r.BestEpoch, r.ExamplesPerS)
	}
	fmt.Fprintf(stdout, "published %s (CURRENT in %s)\n", res.Version, *out)
	return nil
}

// modelEval evaluates the CURRENT version's L2 and its baselines.
func modelEval(dir, modelDir, jsonOut, plotsDir string, stdout io.Writer) error {
	vdir, mf, err := modeldir.LoadCurrent(modelDir)
	if err != nil {
		return err
	}
	cfg, man, err := batch.DataConfig(dir, config.Default(), false)
	if err != nil {
		return err
	}
	if mf.SchemaHash != man.SchemaHash {
		return fmt.Errorf("model %s was trained on schema %.12s, the data has %.12s", vdir, mf.SchemaHash, man.SchemaHash)
	}
	d, err := batch.Load(dir, cfg, man)
	if err != nil {
		return err
	}
	oracle, err := eval.Oracle(dir, eval.OracleOptions{})
	if err != nil {
		return err
	}
	if plotsDir != "" {
		if err := os.MkdirAll(plotsDir, 0o755); err != nil {
			return err
		}
	}
	sets := map[string]map[string]string{"l2": {}}
	for s, a := range mf.L2 {
		sets["l2"][s] = a.Files[0]
	}
	for b, raw := range mf.Baselines {
		var files map[string]string
		if err := json.Unmarshal(raw, &files); err != nil {
			return fmt.Errorf("%s: baseline %s: %w", filepath.Join(vdir, modeldir.ManifestName), b, err)
		}
		sets["baseline_"+b] = files
	}
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	sort.Strings(names)
	var reports []*eval.ModelReport
	for _, name := range names {
		models := map[string]*train.L2{}
		for s, f := range sets[name] {
			m, err := train.LoadL2(filepath.Join(vdir, f))
			if err != nil {
				return err
			}
			models[s] = m
		}
		rows, probs, err := eval.L2Predictions(d, models)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rep, err := eval.ModelL2(name, d, oracle, rows, probs, plotsDir)
		if err != nil {
			return err
		}
		if err := rep.WriteText(stdout); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
		reports = append(reports, rep)
	}
	if jsonOut != "" {
		b, err := json.MarshalIndent(map[string]any{"version": mf.Version, "models": reports}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", jsonOut)
	}
	return nil
}
