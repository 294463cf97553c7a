package eval

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/modeldir"
	"github.com/tandemml/tandem/train"
)

// Version is a published model version opened for evaluation: its L2
// sets (name → surface → model) and L1 sets (name → route → model). The
// product models are named "l2" and "l1", baselines "baseline_<name>".
type Version struct {
	Dir      string
	Manifest *modeldir.Manifest
	L2       map[string]map[string]*train.L2
	L1       map[string]map[string]*train.L1
}

// OpenVersion loads MODELDIR's CURRENT version and every model in it.
func OpenVersion(modelDir string) (*Version, error) {
	vdir, mf, err := modeldir.LoadCurrent(modelDir)
	if err != nil {
		return nil, err
	}
	v := &Version{Dir: vdir, Manifest: mf, L2: map[string]map[string]*train.L2{}, L1: map[string]map[string]*train.L1{}}
	l2files := map[string]map[string]string{}
	l1files := map[string]map[string][]string{}
	if len(mf.L2) > 0 {
		l2files["l2"] = map[string]string{}
		for s, a := range mf.L2 {
			l2files["l2"][s] = a.Files[0]
		}
	}
	if len(mf.L1) > 0 {
		l1files["l1"] = map[string][]string{}
		for r, a := range mf.L1 {
			l1files["l1"][r] = a.Files
		}
	}
	for b, raw := range mf.Baselines {
		var bl struct {
			Model string          `json:"model"`
			Files json.RawMessage `json:"files"`
		}
		err := json.Unmarshal(raw, &bl)
		switch {
		case err != nil:
		case bl.Model == "l2":
			var f map[string]string
			err = json.Unmarshal(bl.Files, &f)
			l2files["baseline_"+b] = f
		default:
			var f map[string][]string
			err = json.Unmarshal(bl.Files, &f)
			l1files["baseline_"+b] = f
		}
		if err != nil {
			return nil, fmt.Errorf("%s: baseline %s: %w", filepath.Join(vdir, modeldir.ManifestName), b, err)
		}
	}
	for name, set := range l2files {
		v.L2[name] = map[string]*train.L2{}
		for s, f := range set {
			m, err := train.LoadL2(filepath.Join(vdir, f))
			if err != nil {
				return nil, err
			}
			v.L2[name][s] = m
		}
	}
	for name, set := range l1files {
		v.L1[name] = map[string]*train.L1{}
		for r, f := range set {
			if len(f) != 2 {
				return nil, fmt.Errorf("%s: %s route %s lists %d files, want user and ad", filepath.Join(vdir, modeldir.ManifestName), name, r, len(f))
			}
			m, err := train.LoadL1(filepath.Join(vdir, f[0]), filepath.Join(vdir, f[1]))
			if err != nil {
				return nil, err
			}
			v.L1[name][r] = m
		}
	}
	return v, nil
}

// OpenData loads dir for evaluating v: the data's schema must be the one v
// was trained on. An events-only data set gets its synthetic requests.
func (v *Version) OpenData(dir string) (*batch.Data, error) {
	cfg, man, err := batch.DataConfig(dir, config.Default(), false)
	if err != nil {
		return nil, err
	}
	if v.Manifest.SchemaHash != man.SchemaHash {
		return nil, fmt.Errorf("model %s was trained on schema %.12s, the data has %.12s", v.Dir, v.Manifest.SchemaHash, man.SchemaHash)
	}
	d, err := batch.Load(dir, cfg, man)
	if err != nil {
		return nil, err
	}
	if len(d.Requests) == 0 {
		if err := d.SynthesizeFromEvents(train.EventNegatives, v.Manifest.Seed); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	return d, nil
}

// Names returns a map's keys sorted.
func Names[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
