package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/calib"
	"github.com/tandemml/tandem/checkpoint"
	"github.com/tandemml/tandem/config"
)

// Checkpoint tensor names (docs/CHECKPOINT.md): dense graph parameters are
// "l2.<graph name>", tables keep their own "l2.emb.*" / "l2.seq.emb.*"
// names, and the dense features' statistics are "l2.bn.running_mean",
// "l2.bn.running_var" and "l2.bn.config" = [c, v_min].
const densePrefix = "l2."

// weightTensors lists the model's weights; keep says which dense
// parameters to include (nil: all).
func (m *L2) weightTensors(keep func(name string) bool) []checkpoint.Tensor {
	var out []checkpoint.Tensor
	for _, p := range m.W.Params() {
		if keep != nil && !keep(p.Name) {
			continue
		}
		out = append(out, checkpoint.Tensor{Name: densePrefix + p.Name, DType: checkpoint.F32, Shape: p.Shape, Data: p.Data()})
	}
	for _, t := range m.S.Tables() {
		out = append(out, checkpoint.Tensor{Name: t.Name, DType: checkpoint.F32, Shape: []int{t.Rows, t.Dim}, Data: t.W})
	}
	return out
}

func f64to32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// stateTensors lists a model's trainable state for a resume checkpoint:
// dense parameters as "dense.<name>", tables under their own names.
func stateTensors(m net) []checkpoint.Tensor {
	var out []checkpoint.Tensor
	for _, p := range m.weights().Params() {
		out = append(out, checkpoint.Tensor{Name: "dense." + p.Name, DType: checkpoint.F32, Shape: p.Shape, Data: p.Data()})
	}
	for _, t := range m.tables() {
		out = append(out, checkpoint.Tensor{Name: t.Name, DType: checkpoint.F32, Shape: []int{t.Rows, t.Dim}, Data: t.W})
	}
	return out
}

// snapshot is a copy of the weights kept for early stopping.
type snapshot struct {
	loss   float64
	epoch  int
	dense  map[string][]float32
	tables map[string][]float32
	mean   [][]float64 // per BN
	vr     [][]float64
	seen   []bool
}

func (t *trainer) snap(loss float64, epoch int) *snapshot {
	m := t.m
	s := &snapshot{loss: loss, epoch: epoch, dense: map[string][]float32{}, tables: map[string][]float32{}}
	s.mean, s.vr, s.seen = bnState(m.norms())
	for _, p := range m.weights().Params() {
		s.dense[p.Name] = slices.Clone(p.Data())
	}
	for _, tb := range m.tables() {
		s.tables[tb.Name] = slices.Clone(tb.W)
	}
	return s
}

func bnState(bns []*batch.BN) (mean, vr [][]float64, seen []bool) {
	for _, b := range bns {
		mean = append(mean, slices.Clone(b.Mean))
		vr = append(vr, slices.Clone(b.Var))
		seen = append(seen, b.Seen)
	}
	return mean, vr, seen
}

func setBN(bns []*batch.BN, mean, vr [][]float64, seen []bool) {
	for i, b := range bns {
		copy(b.Mean, mean[i])
		copy(b.Var, vr[i])
		b.Seen = seen[i]
	}
}

func (s *snapshot) restore(m net) {
	for _, p := range m.weights().Params() {
		copy(p.Data(), s.dense[p.Name])
	}
	for _, tb := range m.tables() {
		copy(tb.W, s.tables[tb.Name])
	}
	setBN(m.norms(), s.mean, s.vr, s.seen)
}

// resumeMeta is the non-tensor state of a resume checkpoint. Float64
// statistics travel as JSON numbers, which round-trip exactly.
type resumeMeta struct {
	Step      int         `json:"step"`
	Epoch     int         `json:"epoch"`
	Batch     int         `json:"batch"`
	Bad       int         `json:"bad"`
	Val       []float64   `json:"val"`
	BNMean    [][]float64 `json:"bn_mean"`
	BNVar     [][]float64 `json:"bn_var"`
	BNSeen    []bool      `json:"bn_seen"`
	HasBest   bool        `json:"has_best"`
	BestLoss  float64     `json:"best_loss"`
	BestEpoch int         `json:"best_epoch"`
	BestMean  [][]float64 `json:"best_bn_mean"`
	BestVar   [][]float64 `json:"best_bn_var"`
	BestSeen  []bool      `json:"best_bn_seen"`
	Config    string      `json:"config_hash"`
}

// saveResume writes weights, optimiser moments, the best snapshot and the
// data cursor (epoch, next batch): the batch order and the sequence masking
// are derived from (seed, epoch, batch), so no generator state is needed.
func (t *trainer) saveResume() error {
	m := t.m
	ts := stateTensors(m)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range t.opt.M {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range names {
		ts = append(ts, checkpoint.Tensor{Name: "opt.m." + k, DType: checkpoint.F32, Shape: []int{len(t.opt.M[k])}, Data: t.opt.M[k]})
		if v, ok := t.opt.V[k]; ok {
			ts = append(ts, checkpoint.Tensor{Name: "opt.v." + k, DType: checkpoint.F32, Shape: []int{len(v)}, Data: v})
		}
	}
	meta := resumeMeta{Step: t.opt.Step, Epoch: t.epoch, Batch: t.batchI, Bad: t.bad, Val: t.val, Config: configHash(m.config())}
	meta.BNMean, meta.BNVar, meta.BNSeen = bnState(m.norms())
	if b := t.best; b != nil {
		meta.HasBest, meta.BestLoss, meta.BestEpoch = true, b.loss, b.epoch
		meta.BestMean, meta.BestVar, meta.BestSeen = b.mean, b.vr, b.seen
		for _, k := range slices.Sorted(mapKeys(b.dense)) {
			ts = append(ts, checkpoint.Tensor{Name: "best.dense." + k, DType: checkpoint.F32, Shape: []int{len(b.dense[k])}, Data: b.dense[k]})
		}
		for _, k := range slices.Sorted(mapKeys(b.tables)) {
			ts = append(ts, checkpoint.Tensor{Name: "best.table." + k, DType: checkpoint.F32, Shape: []int{len(b.tables[k])}, Data: b.tables[k]})
		}
	}
	mj, _ := json.Marshal(meta)
	return checkpoint.Write(t.opts.ResumePath, ts, map[string]string{"tandem.resume": string(mj)})
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// configHash identifies the whole config (schema, model and training
// settings): a resume checkpoint only continues the run it came from.
func configHash(c *config.Config) string {
	h := sha256.Sum256(c.JSON())
	return hex.EncodeToString(h[:])
}

// loadResume continues from ResumePath when it exists.
func (t *trainer) loadResume() error {
	f, err := checkpoint.Read(t.opts.ResumePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var meta resumeMeta
	if err := f.MetaJSON("tandem.resume", &meta); err != nil {
		return err
	}
	if meta.Config != configHash(t.m.config()) {
		return fmt.Errorf("%s: resume checkpoint was written with another config", f.Path)
	}
	m := t.m
	for _, p := range m.weights().Params() {
		v, err := f.Get("dense."+p.Name, p.Shape...)
		if err != nil {
			return err
		}
		copy(p.Data(), v)
	}
	for _, tb := range m.tables() {
		v, err := f.Get(tb.Name, tb.Rows, tb.Dim)
		if err != nil {
			return err
		}
		copy(tb.W, v)
	}
	for _, name := range f.Names {
		tn := f.Tensors[name]
		switch {
		case len(name) > 6 && name[:6] == "opt.m.":
			t.opt.M[name[6:]] = slices.Clone(tn.Data)
		case len(name) > 6 && name[:6] == "opt.v.":
			t.opt.V[name[6:]] = slices.Clone(tn.Data)
		}
	}
	t.opt.Step, t.epoch, t.batchI, t.bad, t.val = meta.Step, meta.Epoch, meta.Batch, meta.Bad, meta.Val
	if len(meta.BNMean) != len(m.norms()) {
		return fmt.Errorf("%s: %d batch-norm states, the model has %d", f.Path, len(meta.BNMean), len(m.norms()))
	}
	setBN(m.norms(), meta.BNMean, meta.BNVar, meta.BNSeen)
	if meta.HasBest {
		b := &snapshot{loss: meta.BestLoss, epoch: meta.BestEpoch, dense: map[string][]float32{}, tables: map[string][]float32{},
			mean: meta.BestMean, vr: meta.BestVar, seen: meta.BestSeen}
		for _, name := range f.Names {
			switch {
			case len(name) > 11 && name[:11] == "best.dense.":
				b.dense[name[11:]] = slices.Clone(f.Tensors[name].Data)
			case len(name) > 11 && name[:11] == "best.table.":
				b.tables[name[11:]] = slices.Clone(f.Tensors[name].Data)
			}
		}
		t.best = b
	}
	return nil
}

// FitCalibration fits the post-hoc calibration on rows (the validation
// day) from the model's logits at their logged positions.
func FitCalibration(m *L2, d *batch.Data, rows []batch.Row) error {
	z, err := PredictLogits(m, d, rows)
	if err != nil {
		return err
	}
	var cols calib.Columns
	appendColumns(&cols, map[calib.Key]int32{}, m, d, rows, z)
	t, err := calib.FitTable(cols, calib.Options{GlobalOnly: m.Cfg.Model.L2.Calibration == config.CalibGlobal})
	if err != nil {
		return fmt.Errorf("calibrate %s: %w", m.Name(), err)
	}
	m.Calib = t
	return nil
}

// FitCalibrationSet fits one calibration table over the validation day of
// every surface, each surface's rows scored by its own model (surface name
// → model), and gives it to all of them. global fits one map per task.
func FitCalibrationSet(models map[string]*L2, d *batch.Data, global bool) error {
	var cols calib.Columns
	keys := map[calib.Key]int32{}
	for s, sf := range d.Cfg.Surfaces {
		m := models[sf.Name]
		if m == nil {
			return fmt.Errorf("no L2 model for surface %s", sf.Name)
		}
		rows := ImpressionRows(d, d.RequestsIn(batch.Validation), []int{s})
		z, err := PredictLogits(m, d, rows)
		if err != nil {
			return err
		}
		appendColumns(&cols, keys, m, d, rows, z)
	}
	t, err := calib.FitTable(cols, calib.Options{GlobalOnly: global})
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	for _, m := range models {
		m.Calib = t
	}
	return nil
}

func appendColumns(cols *calib.Columns, keyIdx map[calib.Key]int32, m *L2, d *batch.Data, rows []batch.Row, z []float32) {
	views := m.Cfg.ViewTypes()
	nt := len(m.Cfg.Tasks)
	for i, r := range rows {
		req := &d.Requests[r.Req]
		for k, task := range m.Cfg.Tasks {
			if !m.Spec.Trains[req.Surface][k] {
				continue
			}
			key := calib.Key{Surface: m.Cfg.Surfaces[req.Surface].Name, ViewType: views[req.View], Task: task}
			ki, ok := keyIdx[key]
			if !ok {
				ki = int32(len(cols.Keys))
				keyIdx[key] = ki
				cols.Keys = append(cols.Keys, key)
			}
			cols.Slice = append(cols.Slice, ki)
			cols.Z = append(cols.Z, z[i*nt+k])
			cols.Y = append(cols.Y, r.Labels[k])
		}
	}
}
