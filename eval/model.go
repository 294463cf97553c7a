package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/metric"
	"github.com/tandemml/tandem/plots"
	"github.com/tandemml/tandem/train"
)

// ModelSlice is one slice of a model report: the oracle's yardsticks plus
// the model's numbers on the same test impressions.
type ModelSlice struct {
	Slice
	ModelLogLoss float64 `json:"model_log_loss"`
	// CapturedShare = (base − model)/(base − Bayes): 1 is Bayes-optimal.
	CapturedShare float64 `json:"captured_share"`
	NE            float64 `json:"ne"` // model / base log loss
	ModelAUC      float64 `json:"model_auc"`
	// CalibrationRatio = Σp/Σy; CalibrationRatioTrue = Σp/Σp_true.
	CalibrationRatio     float64 `json:"calibration_ratio"`
	CalibrationRatioTrue float64 `json:"calibration_ratio_true"`
	ECE                  float64 `json:"ece"` // 15 equal-mass bins
}

// MarshalJSON writes the oracle fields and the model's, with undefined
// numbers (a slice with one class has no AUC) as null. Without it the
// embedded Slice's MarshalJSON would be promoted and drop the model fields.
func (s ModelSlice) MarshalJSON() ([]byte, error) {
	base, err := s.Slice.MarshalJSON()
	if err != nil {
		return nil, err
	}
	extra, err := json.Marshal(struct {
		ModelLogLoss         *float64 `json:"model_log_loss"`
		CapturedShare        *float64 `json:"captured_share"`
		NE                   *float64 `json:"ne"`
		ModelAUC             *float64 `json:"model_auc"`
		CalibrationRatio     *float64 `json:"calibration_ratio"`
		CalibrationRatioTrue *float64 `json:"calibration_ratio_true"`
		ECE                  *float64 `json:"ece"`
	}{finite(s.ModelLogLoss), finite(s.CapturedShare), finite(s.NE), finite(s.ModelAUC),
		finite(s.CalibrationRatio), finite(s.CalibrationRatioTrue), finite(s.ECE)})
	if err != nil {
		return nil, err
	}
	// Both are JSON objects: splice the second's fields into the first.
	return append(append(base[:len(base)-1], ','), extra[1:]...), nil
}

// ModelReport evaluates one model (a set of per-surface L2 exports).
type ModelReport struct {
	Model  string       `json:"model"`
	Slices []ModelSlice `json:"slices"`
}

// L2Predictions scores the test-day impressions of d with the per-surface
// models (surface name → model) and returns calibrated probabilities
// (rows × tasks) beside the rows.
func L2Predictions(d *batch.Data, models map[string]*train.L2) ([]batch.Row, []float64, error) {
	cfg := d.Cfg
	views := cfg.ViewTypes()
	nt := len(cfg.Tasks)
	var rows []batch.Row
	var probs []float64
	for s, sf := range cfg.Surfaces {
		m := models[sf.Name]
		if m == nil {
			return nil, nil, fmt.Errorf("no L2 model for surface %s", sf.Name)
		}
		r := train.ImpressionRows(d, d.RequestsIn(batch.Test), []int{s})
		z, err := train.PredictLogits(m, d, r)
		if err != nil {
			return nil, nil, err
		}
		for i, row := range r {
			req := &d.Requests[row.Req]
			for k, task := range cfg.Tasks {
				p := m.Calib.Lookup(sf.Name, views[req.View], task).Apply(z[i*nt+k])
				probs = append(probs, float64(p))
			}
		}
		rows = append(rows, r...)
	}
	return rows, probs, nil
}

// ModelL2 builds the model report of calibrated predictions against the
// oracle report of the same data (drawn labels, not expectations), and
// writes reliability diagrams into plotsDir when it is not empty.
func ModelL2(name string, d *batch.Data, oracle *OracleReport, rows []batch.Row, probs []float64, plotsDir string) (*ModelReport, error) {
	cfg := d.Cfg
	views := cfg.ViewTypes()
	nt := len(cfg.Tasks)
	type acc struct {
		p, pt []float64
		y     []int8
	}
	accs := map[[3]string]*acc{}
	get := func(k [3]string) *acc {
		a := accs[k]
		if a == nil {
			a = &acc{}
			accs[k] = a
		}
		return a
	}
	for i, r := range rows {
		req := &d.Requests[r.Req]
		sf := cfg.Surfaces[req.Surface].Name
		for k, task := range cfg.Tasks {
			p := probs[i*nt+k]
			for _, v := range []string{views[req.View], "*"} {
				a := get([3]string{sf, v, task})
				a.p = append(a.p, p)
				a.y = append(a.y, int8(r.Labels[k]))
				a.pt = append(a.pt, d.Imps[r.Imp].PTrue[k])
			}
		}
	}
	rep := &ModelReport{Model: name}
	for _, or := range oracle.Slices {
		a := accs[[3]string{or.Surface, or.ViewType, or.Task}]
		s := cfg.SurfaceIndex(or.Surface)
		if a == nil || s < 0 || !batch.TrainsMatrix(cfg)[s][cfg.TaskIndex(or.Task)] {
			continue
		}
		if int64(len(a.p)) != or.Count {
			return nil, fmt.Errorf("slice %s/%s/%s: %d model rows, oracle counted %d", or.Surface, or.ViewType, or.Task, len(a.p), or.Count)
		}
		ms := ModelSlice{Slice: or}
		ms.ModelLogLoss = metric.LogLoss(a.p, a.y)
		ms.CapturedShare = (or.BaseLogLoss - ms.ModelLogLoss) / (or.BaseLogLoss - or.BayesLogLoss)
		ms.NE = ms.ModelLogLoss / or.BaseLogLoss
		ms.ModelAUC = metric.AUC(a.p, a.y)
		yf := make([]float64, len(a.y))
		var sp, spt float64
		for i, y := range a.y {
			yf[i] = float64(y)
			sp += a.p[i]
			spt += a.pt[i]
		}
		ms.CalibrationRatio = metric.CalibrationRatio(a.p, yf)
		ms.CalibrationRatioTrue = sp / spt
		ece, err := metric.ECE(a.p, yf, 15)
		if err != nil {
			ece = math.NaN()
		}
		ms.ECE = ece
		rep.Slices = append(rep.Slices, ms)
		if plotsDir != "" {
			bins, err := metric.Reliability(a.p, yf, 15)
			if err == nil {
				v := or.ViewType
				if v == "*" {
					v = "all"
				}
				path := filepath.Join(plotsDir, fmt.Sprintf("%s_%s_%s_%s.png", name, or.Surface, v, or.Task))
				if err := plots.Reliability(path, fmt.Sprintf("%s %s/%s %s", name, or.Surface, v, or.Task), bins); err != nil {
					return nil, err
				}
			}
		}
	}
	return rep, nil
}

// WriteText prints the report as a table.
func (r *ModelReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "model %s (test days)\n", r.Model)
	fmt.Fprintf(w, "%-10s %-8s %-11s %8s %6s %8s %8s %8s %8s %6s %6s %6s %6s\n",
		"surface", "view", "task", "count", "pos", "base", "bayes", "model", "captured", "ne", "Σp/Σy", "Σp/Σpt", "ece")
	for _, s := range r.Slices {
		if _, err := fmt.Fprintf(w, "%-10s %-8s %-11s %8d %6d %8.5f %8.5f %8.5f %8.3f %6.3f %6.3f %6.3f %6.4f\n",
			s.Surface, s.ViewType, s.Task, s.Count, s.Positives, s.BaseLogLoss, s.BayesLogLoss, s.ModelLogLoss,
			s.CapturedShare, s.NE, s.CalibrationRatio, s.CalibrationRatioTrue, s.ECE); err != nil {
			return err
		}
	}
	return nil
}
