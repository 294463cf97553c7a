package train

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/calib"
	"github.com/tandemml/tandem/checkpoint"
	"github.com/tandemml/tandem/config"
)

// l2Meta is the "tandem.model" metadata of an L2 export.
type l2Meta struct {
	Kind      string   `json:"kind"` // "l2"
	Surface   string   `json:"surface"`
	Serves    []int    `json:"serves"`
	ViewTypes []string `json:"view_types"`
	Tasks     []string `json:"tasks"`
}

// SaveL2 writes the model for one surface: shared weights, that surface's
// towers, the statistics and its calibration as "l2.calibration" [views, tasks, 2]
// (A, B) over the surface's view types and the config's tasks.
func SaveL2(path string, m *L2, surface int, metrics any) error {
	sname := m.Cfg.Surfaces[surface].Name
	keep := func(name string) bool {
		if !strings.HasPrefix(name, "tower.") {
			return true
		}
		return strings.HasPrefix(name, "tower."+sname+".")
	}
	ts := m.weightTensors(keep)
	ts = append(ts,
		checkpoint.Tensor{Name: "l2.bn.running_mean", DType: checkpoint.F32, Shape: []int{len(m.BN.Mean)}, Data: f64to32(m.BN.Mean)},
		checkpoint.Tensor{Name: "l2.bn.running_var", DType: checkpoint.F32, Shape: []int{len(m.BN.Var)}, Data: f64to32(m.BN.Var)},
		checkpoint.Tensor{Name: "l2.bn.config", DType: checkpoint.F32, Shape: []int{2}, Data: []float32{float32(m.BN.Clamp), float32(m.BN.VarMin)}})
	views := m.Cfg.Surfaces[surface].ViewTypes
	cal := make([]float32, 0, len(views)*len(m.Cfg.Tasks)*2)
	for _, v := range views {
		for _, task := range m.Cfg.Tasks {
			p := m.Calib.Lookup(sname, v.Name, task)
			cal = append(cal, float32(p.A), float32(p.B))
		}
	}
	ts = append(ts, checkpoint.Tensor{Name: "l2.calibration", DType: checkpoint.F32, Shape: []int{len(views), len(m.Cfg.Tasks), 2}, Data: cal})
	vn := make([]string, len(views))
	for i, v := range views {
		vn[i] = v.Name
	}
	mj, _ := json.Marshal(l2Meta{Kind: "l2", Surface: sname, Serves: m.Serves, ViewTypes: vn, Tasks: m.Cfg.Tasks})
	xj, _ := json.Marshal(metrics)
	return checkpoint.Write(path, ts, map[string]string{
		"tandem.config":  string(m.Cfg.JSON()),
		"tandem.model":   string(mj),
		"tandem.metrics": string(xj),
	})
}

// LoadL2 reads an export written by SaveL2. The model can score rows of
// its surface only (other surfaces' towers are not in the file).
func LoadL2(path string) (*L2, error) {
	f, err := checkpoint.Read(path)
	if err != nil {
		return nil, err
	}
	var cfg config.Config
	if err := f.MetaJSON("tandem.config", &cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: tandem.config: %w", path, err)
	}
	var meta l2Meta
	if err := f.MetaJSON("tandem.model", &meta); err != nil {
		return nil, err
	}
	s := cfg.SurfaceIndex(meta.Surface)
	if meta.Kind != "l2" || s < 0 {
		return nil, fmt.Errorf("%s: not an L2 export of a known surface (kind %q, surface %q)", path, meta.Kind, meta.Surface)
	}
	feat, err := batch.ResolveFeatures(&cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := NewL2(&cfg, feat, []int{s}, 0)
	if err != nil {
		return nil, err
	}
	for _, p := range m.W.Params() {
		v, err := f.Get(densePrefix+p.Name, p.Shape...)
		if err != nil {
			return nil, err
		}
		copy(p.Data(), v)
	}
	for _, t := range m.S.Tables() {
		v, err := f.Get(t.Name, t.Rows, t.Dim)
		if err != nil {
			return nil, err
		}
		copy(t.W, v)
	}
	nd := len(m.BN.Mean)
	mean, err := f.Get("l2.bn.running_mean", nd)
	if err != nil {
		return nil, err
	}
	vr, err := f.Get("l2.bn.running_var", nd)
	if err != nil {
		return nil, err
	}
	for i := range mean {
		m.BN.Mean[i], m.BN.Var[i] = float64(mean[i]), float64(vr[i])
	}
	m.BN.Seen = true
	views := cfg.Surfaces[s].ViewTypes
	cal, err := f.Get("l2.calibration", len(views), len(cfg.Tasks), 2)
	if err != nil {
		return nil, err
	}
	m.Calib = &calib.Table{Slices: map[calib.Key]calib.Params{}}
	for i, v := range views {
		for k, task := range cfg.Tasks {
			o := (i*len(cfg.Tasks) + k) * 2
			m.Calib.Slices[calib.Key{Surface: meta.Surface, ViewType: v.Name, Task: task}] = calib.Params{A: float64(cal[o]), B: float64(cal[o+1])}
		}
	}
	return m, nil
}
