package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/modeldir"
)

// Baseline is a model variation trained through the same code by changing
// the model config (docs/MODELS.md).
type Baseline struct {
	Model string // "l1" or "l2"
	Apply func(*config.Config)
}

// Baselines by name.
var Baselines = map[string]Baseline{
	"logistic":    {"l2", func(c *config.Config) { c.Model.L2.Arch = config.ArchLogistic }},
	"per_surface": {"l2", func(c *config.Config) { c.Model.L2.PerSurface = true }},
	// global_calib re-fits only the calibration of this version's L2 (one map
	// per task), so it differs from the model in nothing else.
	"global_calib":  {"l2", func(c *config.Config) { c.Model.L2.Calibration = config.CalibGlobal }},
	"mlp":           {"l2", func(c *config.Config) { c.Model.L2.Arch = config.ArchMLP }},
	"l1_mlp":        {"l1", func(c *config.Config) { c.Model.L1.User.Arch, c.Model.L1.AdArch = config.ArchMLP, config.ArchMLP }},
	"l1_by_product": {"l1", func(c *config.Config) { c.Model.L1.ByProduct = true }},
	"l1_no_distill": {"l1", func(c *config.Config) { c.Model.L1.Distill = false }},
}

// BaselineNames lists the known baselines, sorted.
func BaselineNames() []string {
	var out []string
	for n := range Baselines {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// EventNegatives is the number of uniformly drawn ads paired with each
// engagement when an events-only data set is turned into training rows.
const EventNegatives = 4

// RunOptions configure a training run that publishes a model version.
type RunOptions struct {
	Data     string
	ModelDir string
	Config   *config.Config
	// ExplicitConfig: Config came from a file, so its schema must match the data's.
	ExplicitConfig bool
	Seed           uint64
	// Model is "l1", "l2" or "all"; the version copies what it does not
	// train from the CURRENT one.
	Model string
	// Baselines names entries of Baselines to train beside the model.
	Baselines []string
	Options
}

// RunResult says what a run published.
type RunResult struct {
	Version    string
	VersionDir string
	Reports    map[string]*Report // by model name ("l2", "l2[search]", "baseline/logistic", ...)
}

// Run trains the models opts.Model names (and any baselines) on opts.Data,
// writes a new version under opts.ModelDir with the exports and a
// manifest, and makes it CURRENT. What it does not train is carried over
// from the CURRENT version, if any.
func Run(ctx context.Context, opts RunOptions) (_ *RunResult, err error) {
	cfg, man, err := batch.DataConfig(opts.Data, opts.Config, opts.ExplicitConfig)
	if err != nil {
		return nil, err
	}
	if opts.Model == "" {
		opts.Model = "all"
	}
	if opts.Model != "l1" && opts.Model != "l2" && opts.Model != "all" && opts.Model != "none" {
		return nil, fmt.Errorf("model %q: want l1, l2, all or none (baselines only)", opts.Model)
	}
	for _, b := range opts.Baselines {
		if Baselines[b].Apply == nil {
			return nil, fmt.Errorf("unknown baseline %q (known: %s)", b, strings.Join(BaselineNames(), ", "))
		}
	}
	d, err := batch.Load(opts.Data, cfg, man)
	if err != nil {
		return nil, err
	}
	if len(d.Requests) == 0 {
		// An events-only data set (MovieLens): only L1 without distillation
		// can learn from it, on engagements with sampled negatives.
		if opts.Model != "l1" {
			return nil, fmt.Errorf("%s has no logged requests: train it with -model l1 (L1 without distillation)", opts.Data)
		}
		if err := d.SynthesizeFromEvents(EventNegatives, opts.Seed); err != nil {
			return nil, fmt.Errorf("%s: %w", opts.Data, err)
		}
		cfg.Model.L1.Distill = false // no logged requests, no teacher
	}
	if err := os.MkdirAll(opts.ModelDir, 0o755); err != nil {
		return nil, err
	}
	runID := fmt.Sprintf("s%d", opts.Seed)
	version := modeldir.NewVersionName(time.Now().UTC(), runID)
	vdir, err := modeldir.Create(opts.ModelDir, version)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil { // never leave a half-written, unlisted version behind
			os.RemoveAll(vdir)
		}
	}()
	res := &RunResult{Version: version, VersionDir: vdir, Reports: map[string]*Report{}}
	mf := &modeldir.Manifest{Format: modeldir.FormatVersion, Version: version, CreatedAt: time.Now().UTC().Format(time.RFC3339),
		RunID: runID, Seed: opts.Seed, SchemaHash: cfg.SchemaHash(), Config: cfg.JSON(),
		L1: map[string]modeldir.Artifact{}, L2: map[string]modeldir.Artifact{}, Baselines: map[string]json.RawMessage{}}
	for _, r := range cfg.Routing {
		mf.Routing = append(mf.Routing, modeldir.Route{Surface: r.Surface, Product: r.Product, Route: r.Route})
	}
	if cfg.Model.L1.ByProduct {
		mf.Routing = nil
		for _, p := range cfg.Products {
			mf.Routing = append(mf.Routing, modeldir.Route{Surface: "*", Product: p, Route: p})
		}
	}
	doL1, doL2 := opts.Model == "l1" || opts.Model == "all", opts.Model == "l2" || opts.Model == "all"
	var ds *distillSet // the teacher-labelled rows, made once for every distilled L1
	if doL2 {
		files, err := trainL2Set(ctx, cfg, d, opts, "", vdir, res)
		if err != nil {
			return nil, err
		}
		for s, f := range files {
			a, err := modeldir.NewArtifact(vdir, runID, []string{f})
			if err != nil {
				return nil, err
			}
			mf.L2[s] = a
		}
	}
	if doL1 {
		routes, err := trainL1Set(ctx, cfg, d, opts, "", vdir, res, &ds)
		if err != nil {
			return nil, err
		}
		for route, files := range routes {
			a, err := modeldir.NewArtifact(vdir, runID, files)
			if err != nil {
				return nil, err
			}
			mf.L1[route] = a
		}
	}
	// Carry over from the live version what this run did not train.
	if _, cur, err := modeldir.LoadCurrent(opts.ModelDir); err == nil {
		if !doL1 {
			for route, a := range cur.L1 {
				if err := modeldir.CopyFromCurrent(opts.ModelDir, vdir, a.Files); err != nil {
					return nil, err
				}
				mf.L1[route] = a
			}
			mf.Routing = cur.Routing
		}
		if !doL2 {
			for s, a := range cur.L2 {
				if err := modeldir.CopyFromCurrent(opts.ModelDir, vdir, a.Files); err != nil {
					return nil, err
				}
				mf.L2[s] = a
			}
		}
	} else if !errors.Is(err, modeldir.ErrNoCurrent) {
		return nil, err
	}
	for _, b := range opts.Baselines {
		bl := Baselines[b]
		bc := *cfg
		bl.Apply(&bc)
		var files any
		var err error
		switch {
		case b == "global_calib":
			files, err = refitGlobal(cfg, d, vdir, mf, res)
		case bl.Model == "l2":
			files, err = trainL2Set(ctx, &bc, d, opts, b, vdir, res)
		default:
			files, err = trainL1Set(ctx, &bc, d, opts, b, vdir, res, &ds)
		}
		if err != nil {
			return nil, err
		}
		bj, _ := json.Marshal(map[string]any{"model": bl.Model, "files": files})
		mf.Baselines[b] = bj
	}
	mj, _ := json.Marshal(res.Reports)
	mf.Metrics = mj
	if err := modeldir.WriteManifest(vdir, mf); err != nil {
		return nil, err
	}
	if err := modeldir.Publish(opts.ModelDir, version); err != nil {
		return nil, err
	}
	return res, nil
}

// trainL2Set trains the unified model (or one model per surface when the
// config says so) and writes one export per surface; it returns surface →
// file relative to vdir.
func trainL2Set(ctx context.Context, cfg *config.Config, d *batch.Data, opts RunOptions, baseline, vdir string, res *RunResult) (map[string]string, error) {
	var groups [][]int
	if cfg.Model.L2.PerSurface {
		for s := range cfg.Surfaces {
			groups = append(groups, []int{s})
		}
	} else {
		all := make([]int, len(cfg.Surfaces))
		for s := range all {
			all[s] = s
		}
		groups = [][]int{all}
	}
	prefix := ""
	if baseline != "" {
		prefix = modeldir.BaselineDir(baseline)
	}
	files := map[string]string{}
	dd := *d
	dd.Cfg = cfg
	for _, g := range groups {
		m, err := NewL2(cfg, d.Feat, g, opts.Seed)
		if err != nil {
			return nil, err
		}
		o := withBaseline(opts.Options, baseline, m.Name())
		rep, err := TrainL2(ctx, m, &dd, o)
		if err != nil {
			return nil, err
		}
		name := m.Name()
		if baseline != "" {
			name = "baseline/" + baseline + "/" + name
		}
		res.Reports[name] = rep
		for _, s := range g {
			rel := filepath.Join(prefix, modeldir.L2File(cfg.Surfaces[s].Name))
			if err := os.MkdirAll(filepath.Dir(filepath.Join(vdir, rel)), 0o755); err != nil {
				return nil, err
			}
			if err := SaveL2(filepath.Join(vdir, rel), m, s, rep); err != nil {
				return nil, err
			}
			files[cfg.Surfaces[s].Name] = rel
		}
	}
	return files, nil
}

// trainL1Set trains one L1 per route and writes l1/<route>/{user,ad}; it
// returns route → files relative to vdir.
func trainL1Set(ctx context.Context, cfg *config.Config, d *batch.Data, opts RunOptions, baseline, vdir string, res *RunResult, ds **distillSet) (map[string][]string, error) {
	routes, err := RoutePairs(cfg, cfg.Model.L1.ByProduct)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(routes))
	for r := range routes {
		names = append(names, r)
	}
	sort.Strings(names)
	prefix := ""
	if baseline != "" {
		prefix = modeldir.BaselineDir(baseline)
	}
	dd := *d
	dd.Cfg = cfg
	out := map[string][]string{}
	for _, route := range names {
		m, err := NewL1(cfg, d.Feat, route, routes[route], opts.Seed)
		if err != nil {
			return nil, err
		}
		o := withBaseline(opts.Options, baseline, m.Name())
		var rep *Report
		if cfg.Model.L1.Distill {
			if *ds == nil {
				if *ds, err = newDistillSet(ctx, cfg, d, opts.Data, opts.Options, res); err != nil {
					return nil, err
				}
			}
			rep, err = TrainL1Distilled(ctx, m, &dd, (*ds).train, (*ds).val, o)
		} else {
			rep, err = TrainL1(ctx, m, &dd, o)
		}
		if err != nil {
			return nil, err
		}
		name := m.Name()
		if baseline != "" {
			name = "baseline/" + baseline + "/" + name
		}
		res.Reports[name] = rep
		files := modeldir.L1Files(route)
		for i := range files {
			files[i] = filepath.Join(prefix, files[i])
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(vdir, files[0])), 0o755); err != nil {
			return nil, err
		}
		if err := SaveL1(filepath.Join(vdir, files[0]), filepath.Join(vdir, files[1]), m, rep); err != nil {
			return nil, err
		}
		out[route] = files
	}
	return out, nil
}

// refitGlobal writes the "one global calibration" baseline: the version's
// L2 exports with their calibration re-fitted as one map per task over the
// validation day of every surface.
func refitGlobal(cfg *config.Config, d *batch.Data, vdir string, mf *modeldir.Manifest, res *RunResult) (map[string]string, error) {
	if len(mf.L2) == 0 {
		return nil, fmt.Errorf("baseline global_calib needs an L2 model in this run or in CURRENT")
	}
	models := map[string]*L2{}
	for s, a := range mf.L2 {
		m, err := LoadL2(filepath.Join(vdir, a.Files[0]))
		if err != nil {
			return nil, err
		}
		models[s] = m
	}
	if err := FitCalibrationSet(models, d, true); err != nil {
		return nil, err
	}
	files := map[string]string{}
	for s, m := range models {
		rel := filepath.Join(modeldir.BaselineDir("global_calib"), modeldir.L2File(s))
		if err := os.MkdirAll(filepath.Dir(filepath.Join(vdir, rel)), 0o755); err != nil {
			return nil, err
		}
		if err := SaveL2(filepath.Join(vdir, rel), m, cfg.SurfaceIndex(s), map[string]string{"derived_from": "l2"}); err != nil {
			return nil, err
		}
		files[s] = rel
	}
	return files, nil
}

// withBaseline labels a baseline's log lines and gives it its own resume
// file.
func withBaseline(o Options, baseline, model string) Options {
	if o.ResumePath != "" {
		o.ResumePath = fmt.Sprintf("%s.%s%s", o.ResumePath, baseline, model)
	}
	if baseline != "" && o.Log != nil {
		log := o.Log
		o.Log = func(f string, a ...any) { log("baseline "+baseline+": "+f, a...) }
	}
	return o
}
