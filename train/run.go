package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/modeldir"
)

// Baselines are the L2 variations trained through the same code by
// changing the model config (docs/MODELS.md).
var Baselines = map[string]func(*config.Config){
	"logistic":     func(c *config.Config) { c.Model.L2.Arch = config.ArchLogistic },
	"per_surface":  func(c *config.Config) { c.Model.L2.PerSurface = true },
	"global_calib": func(c *config.Config) { c.Model.L2.Calibration = config.CalibGlobal },
	"mlp":          func(c *config.Config) { c.Model.L2.Arch = config.ArchMLP },
}

// RunOptions configure a training run that publishes a model version.
type RunOptions struct {
	Data     string
	ModelDir string
	Config   *config.Config
	// ExplicitConfig: Config came from a file, so its schema must match the data's.
	ExplicitConfig bool
	Seed           uint64
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

// Run trains the L2 model (and any baselines) on opts.Data, writes a new
// version under opts.ModelDir with the exports and a manifest, and makes
// it CURRENT. L1 files of the CURRENT version, if any, are carried over.
func Run(ctx context.Context, opts RunOptions) (*RunResult, error) {
	cfg, man, err := batch.DataConfig(opts.Data, opts.Config, opts.ExplicitConfig)
	if err != nil {
		return nil, err
	}
	for _, b := range opts.Baselines {
		if Baselines[b] == nil {
			return nil, fmt.Errorf("unknown baseline %q (known: logistic, per_surface, global_calib, mlp)", b)
		}
	}
	d, err := batch.Load(opts.Data, cfg, man)
	if err != nil {
		return nil, err
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
	res := &RunResult{Version: version, VersionDir: vdir, Reports: map[string]*Report{}}
	mf := &modeldir.Manifest{Format: modeldir.FormatVersion, Version: version, CreatedAt: time.Now().UTC().Format(time.RFC3339),
		RunID: runID, Seed: opts.Seed, SchemaHash: cfg.SchemaHash(), Config: cfg.JSON(),
		L1: map[string]modeldir.Artifact{}, L2: map[string]modeldir.Artifact{}, Baselines: map[string]json.RawMessage{}}
	for _, r := range cfg.Routing {
		mf.Routing = append(mf.Routing, modeldir.Route{Surface: r.Surface, Product: r.Product, Route: r.Route})
	}
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
	for _, b := range opts.Baselines {
		bc := *cfg
		Baselines[b](&bc)
		files, err := trainL2Set(ctx, &bc, d, opts, b, vdir, res)
		if err != nil {
			return nil, err
		}
		bj, _ := json.Marshal(files)
		mf.Baselines[b] = bj
	}
	// Carry the live version's L1 routes over: this run trains only L2.
	if _, cur, err := modeldir.LoadCurrent(opts.ModelDir); err == nil {
		for route, a := range cur.L1 {
			if err := modeldir.CopyFromCurrent(opts.ModelDir, vdir, a.Files); err != nil {
				return nil, err
			}
			mf.L1[route] = a
		}
	} else if !errors.Is(err, modeldir.ErrNoCurrent) {
		return nil, err
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
		o := opts.Options
		if o.ResumePath != "" {
			o.ResumePath = fmt.Sprintf("%s.%s%s", o.ResumePath, baseline, m.Name())
		}
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
