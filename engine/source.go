package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tandemml/tandem/checkpoint"
	"github.com/tandemml/tandem/config"
)

// source reads an export's tensors under a prefix, keeping the first error
// and which tensors were used, so a file with tensors the plan does not
// read (another architecture, a corrupt name) is refused instead of
// silently half-used.
type source struct {
	f      *checkpoint.File
	prefix string
	used   map[string]bool
	err    error
}

func newSource(f *checkpoint.File, prefix string) *source {
	return &source{f: f, prefix: prefix, used: map[string]bool{}}
}

func (s *source) get(name string, shape ...int) []float32 {
	if s.err != nil {
		return nil
	}
	full := s.prefix + name
	v, err := s.f.Get(full, shape...)
	if err != nil {
		s.err = err
		return nil
	}
	s.used[full] = true
	return v
}

func (s *source) has(name string) bool {
	_, ok := s.f.Tensors[s.prefix+name]
	return ok
}

// table reads an embedding table [rows, dim] whose row count the config
// fixes.
func (s *source) table(name string, rows, dim int) []float32 { return s.get(name, rows, dim) }

// linear reads name.weight [out, in] and name.bias [out].
func (s *source) linear(name string, out, in int) *linear {
	w := s.get(name+".weight", out, in)
	b := s.get(name+".bias", out)
	if s.err != nil {
		return nil
	}
	return newLinear(w, b, out, in)
}

// mlp reads name.0 … name.(k−1) of the given widths.
func (s *source) mlp(name string, in int, widths []int) []*linear {
	out := make([]*linear, len(widths))
	for i, w := range widths {
		out[i] = s.linear(fmt.Sprintf("%s.%d", name, i), w, in)
		in = w
	}
	return out
}

// done reports the first error, or names tensors the plan never read.
func (s *source) done() error {
	if s.err != nil {
		return s.err
	}
	var extra []string
	for _, n := range s.f.Names {
		if !s.used[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		if len(extra) > 5 {
			extra = append(extra[:5], "…")
		}
		return fmt.Errorf("%s: tensors the model does not use: %s", s.f.Path, strings.Join(extra, ", "))
	}
	return nil
}

// exportMeta is the "tandem.model" metadata of an export.
type exportMeta struct {
	Kind      string   `json:"kind"`
	Surface   string   `json:"surface"`
	Route     string   `json:"route"`
	ViewTypes []string `json:"view_types"`
	Tasks     []string `json:"tasks"`
	OutDim    int      `json:"out_dim"`
}

// readExport opens path and decodes its config and model metadata,
// checking the kind.
func readExport(path, kind string) (*checkpoint.File, *config.Config, *exportMeta, error) {
	f, err := checkpoint.Read(path)
	if err != nil {
		return nil, nil, nil, err
	}
	return exportOf(f, path, kind)
}

// exportOf reads the metadata of a decoded export named path.
func exportOf(f *checkpoint.File, path, kind string) (*checkpoint.File, *config.Config, *exportMeta, error) {
	var cfg config.Config
	if err := f.MetaJSON("tandem.config", &cfg); err != nil {
		return nil, nil, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: tandem.config: %w", path, err)
	}
	var meta exportMeta
	if err := f.MetaJSON("tandem.model", &meta); err != nil {
		return nil, nil, nil, err
	}
	if meta.Kind != kind {
		return nil, nil, nil, fmt.Errorf("%s: a %q export, want %q", path, meta.Kind, kind)
	}
	if !slices.Equal(meta.Tasks, cfg.Tasks) {
		return nil, nil, nil, fmt.Errorf("%s: tandem.model tasks %v differ from the config's %v", path, meta.Tasks, cfg.Tasks)
	}
	return f, &cfg, &meta, nil
}
