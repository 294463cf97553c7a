package train

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/modeldir"
)

// InitExports writes freshly initialised models of cfg (seed) as exports
// into dir: l2_<surface>.safetensors for every surface and
// l1/all/{user,ad}.safetensors. Batch-norm statistics are the identity
// (mean 0, variance 1) and the calibration is the identity map. For
// benchmarks and inference tests that need a model of a given shape, not a
// trained one.
func InitExports(cfg *config.Config, dir string, seed uint64) error {
	f, err := batch.ResolveFeatures(cfg)
	if err != nil {
		return err
	}
	all := make([]int, len(cfg.Surfaces))
	for i := range all {
		all[i] = i
	}
	l2, err := NewL2(cfg, f, all, seed)
	if err != nil {
		return err
	}
	unitBN(l2.BN)
	for s, sf := range cfg.Surfaces {
		if err := SaveL2(filepath.Join(dir, "l2_"+sf.Name+".safetensors"), l2, s, nil); err != nil {
			return err
		}
	}
	var pairs [][2]int
	for s := range cfg.Surfaces {
		for p := range cfg.Products {
			pairs = append(pairs, [2]int{s, p})
		}
	}
	l1, err := NewL1(cfg, f, "all", pairs, seed+1)
	if err != nil {
		return err
	}
	unitBN(l1.UBN)
	unitBN(l1.ABN)
	rd := filepath.Join(dir, "l1", "all")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		return err
	}
	return SaveL1(filepath.Join(rd, "user.safetensors"), filepath.Join(rd, "ad.safetensors"), l1, nil)
}

func unitBN(b *batch.BN) {
	for i := range b.Var {
		b.Mean[i], b.Var[i] = 0, 1
	}
	b.Seen = true
}

// PublishInit publishes freshly initialised models of cfg (seed) as a new
// version of modelDir, with the config's routing map and one L1 route
// "all", and makes it CURRENT. For tests and benchmarks of what consumes
// a model directory (the refresh job, serving), not for serving users.
func PublishInit(cfg *config.Config, modelDir string, seed uint64) (string, error) {
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		return "", err
	}
	runID := fmt.Sprintf("init%d", seed)
	version := modeldir.NewVersionName(time.Now().UTC(), runID)
	vdir, err := modeldir.Create(modelDir, version)
	if err != nil {
		return "", err
	}
	if err := InitExports(cfg, vdir, seed); err != nil {
		os.RemoveAll(vdir)
		return "", err
	}
	mf := &modeldir.Manifest{Format: modeldir.FormatVersion, Version: version, CreatedAt: time.Now().UTC().Format(time.RFC3339),
		RunID: runID, Seed: seed, SchemaHash: cfg.SchemaHash(), Config: cfg.JSON(),
		L1: map[string]modeldir.Artifact{}, L2: map[string]modeldir.Artifact{}}
	for _, s := range cfg.Surfaces {
		for _, p := range cfg.Products {
			mf.Routing = append(mf.Routing, modeldir.Route{Surface: s.Name, Product: p, Route: "all"})
		}
		a, err := modeldir.NewArtifact(vdir, runID, []string{modeldir.L2File(s.Name)})
		if err != nil {
			return "", err
		}
		mf.L2[s.Name] = a
	}
	a, err := modeldir.NewArtifact(vdir, runID, modeldir.L1Files("all"))
	if err != nil {
		return "", err
	}
	mf.L1["all"] = a
	if err := modeldir.WriteManifest(vdir, mf); err != nil {
		return "", err
	}
	return version, modeldir.Publish(modelDir, version)
}
