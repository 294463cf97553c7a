package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/eval"
	"github.com/tandemml/tandem/train"
)

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("train", stderr)
	dir := fs.String("data", "", "data directory (required)")
	out := fs.String("out", "", "model directory: a new version is written and made CURRENT (required)")
	cfgPath := fs.String("config", "", "config file (default: the embedded default); its schema must match the data's")
	model := fs.String("model", "all", "which model to train: l1, l2, all, or none (only -baselines); what is not trained is copied from CURRENT")
	seed := fs.Uint64("seed", 1, "seed for initialisation, shuffling and sequence masking")
	baselines := fs.String("baselines", "", "comma-separated baselines to train beside the model: "+strings.Join(train.BaselineNames(), ", "))
	resume := fs.String("resume", "", "resume checkpoint path prefix: written during training, continued from when present")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *out == "" {
		fmt.Fprintln(stderr, "need -data DIR and -out MODELDIR")
		fs.Usage()
		return errUsage
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
		Model: *model, Baselines: bl, Options: train.Options{Seed: *seed, Progress: stderr, ResumePath: *resume,
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
func modelEval(dir, modelDir, jsonOut, plotsDir string, requests int, stdout io.Writer) error {
	v, err := eval.OpenVersion(modelDir)
	if err != nil {
		return err
	}
	d, err := v.OpenData(dir)
	if err != nil {
		return err
	}
	var oracle *eval.OracleReport
	if d.Manifest.GroundTruth {
		if oracle, err = eval.Oracle(dir, eval.OracleOptions{}); err != nil {
			return err
		}
	}
	if plotsDir != "" {
		if err := os.MkdirAll(plotsDir, 0o755); err != nil {
			return err
		}
	}
	l2sets := v.L2
	var reports []*eval.ModelReport
	if oracle == nil && len(l2sets) > 0 {
		fmt.Fprintf(stdout, "%s has no true probabilities: L2 reports need simulated data\n\n", dir)
		l2sets = nil
	}
	for _, name := range eval.Names(l2sets) {
		rows, probs, err := eval.L2Predictions(d, l2sets[name])
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
	retrieval := map[string]*eval.RetrievalReport{}
	kls := map[string]*eval.KLReport{}
	for _, name := range eval.Names(v.L1) {
		models := v.L1[name]
		var rep *eval.RetrievalReport
		var err error
		if !d.Manifest.GroundTruth {
			rep, err = eval.EventRecall(d, models, requests, []int{10, 100})
		} else {
			rep, err = eval.Retrieval(dir, d, models, eval.RetrievalOptions{Requests: requests})
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		retrieval[name] = rep
		if err := rep.WriteText(stdout, name); err != nil {
			return err
		}
		if l2 := v.L2["l2"]; l2 != nil && d.Manifest.GroundTruth {
			kl, err := eval.L1KL(dir, d, models, l2, requests)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			kls[name] = kl
			fmt.Fprintf(stdout, "  KL(L2 ‖ %s) on %d winners: %s; on %d candidates: %s\n", name, kl.Rows["winners"], fmtKL(kl.KL["winners"]), kl.Rows["candidates"], fmtKL(kl.KL["candidates"]))
		}
		fmt.Fprintln(stdout)
	}
	if jsonOut != "" {
		b, err := json.MarshalIndent(map[string]any{"version": v.Manifest.Version, "models": reports, "retrieval": retrieval, "kl_to_l2": kls}, "", "  ")
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

func fmtKL(m map[string]float64) string {
	var parts []string
	for _, t := range eval.Names(m) {
		parts = append(parts, fmt.Sprintf("%s %.4f", t, m[t]))
	}
	return strings.Join(parts, ", ")
}
