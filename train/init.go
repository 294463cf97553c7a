package train

import (
	"os"
	"path/filepath"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
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
