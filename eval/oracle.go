package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"

	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/metric"
	"github.com/tandemml/tandem/sim"
)

// AllViewTypes marks a slice pooled over a surface's view types (its base
// rate predictor stays per view type).
const AllViewTypes = "*"

// Slice is one row of the oracle report: a surface × view type × task on
// the test days.
type Slice struct {
	Surface   string `json:"surface"`
	ViewType  string `json:"view_type"`
	Task      string `json:"task"`
	Count     int64  `json:"count"`
	Positives int64  `json:"positives"`
	// BaseLogLoss is the log loss of the per surface × view type base rate.
	BaseLogLoss float64 `json:"base_log_loss"`
	// BayesLogLoss is the log loss of the true probabilities.
	BayesLogLoss float64 `json:"bayes_log_loss"`
	// NEBayes = BayesLogLoss / BaseLogLoss.
	NEBayes  float64 `json:"ne_bayes"`
	BayesAUC float64 `json:"bayes_auc"`
	// Ablated maps each named component to the oracle's log loss when that
	// component is replaced by its mean over the surface × view type.
	Ablated map[string]float64 `json:"ablated_log_loss"`
}

// OracleReport is the Bayes-optimal yardstick of a simulated data set.
type OracleReport struct {
	Dir        string `json:"dir"`
	SchemaHash string `json:"schema_hash"`
	TestFromMs int64  `json:"test_from_ms"`
	// Expected says log losses are expectations under p_true.
	Expected bool    `json:"expected"`
	Slices   []Slice `json:"slices"`
}

// row is one test impression's truth and labels.
type row struct {
	slice  int // index into keys (surface × view type)
	terms  sim.Terms
	labels [sim.NumTasks]int8
}

type sliceKey struct{ surface, view int }

// OracleOptions tune Oracle.
type OracleOptions struct {
	// Expected reports log losses as expectations under the true
	// probabilities rather than over the drawn labels (same means, no
	// label noise; useful on small data sets).
	Expected bool
}

// Oracle computes the oracle report of the simulated data set in dir over
// its test days. It re-derives every impression's truth from the world and
// the events table and fails if a stored p_true differs from it.
func Oracle(dir string, opts OracleOptions) (*OracleReport, error) {
	tr, err := sim.Open(dir)
	if err != nil {
		return nil, err
	}
	from := tr.Manifest.TestStartMs
	reqs := map[int64]data.Request{}
	err = data.ForEach(dir, data.TableRequests, 8192, func(rs []data.Request) error {
		for _, r := range rs {
			if r.TsMs >= from {
				reqs[r.RequestID] = r
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var keys []sliceKey
	keyIndex := map[sliceKey]int{}
	var rows []row
	var impRow int64
	err = data.ForEach(dir, data.TableImpressions, 8192, func(is []data.Impression) error {
		for _, im := range is {
			impRow++
			r, ok := reqs[im.RequestID]
			if !ok {
				continue
			}
			q, err := tr.Req(&r)
			if err != nil {
				return err
			}
			tm, err := tr.Terms(&r, im.AdID, im.Position)
			if err != nil {
				return fmt.Errorf("impressions: row %d: %w", impRow-1, err)
			}
			p := tm.Probs()
			if p != (sim.Probs{im.PTrueClick, im.PTrueSave, im.PTrueLongClick, im.PTrueHide}) {
				return fmt.Errorf("impressions: row %d: stored p_true %v differs from the simulator's %v (data and world disagree)",
					impRow-1, []float64{im.PTrueClick, im.PTrueSave, im.PTrueLongClick, im.PTrueHide}, p[:])
			}
			k := sliceKey{q.Surface, q.ViewType}
			ki, ok := keyIndex[k]
			if !ok {
				ki = len(keys)
				keyIndex[k] = ki
				keys = append(keys, k)
			}
			rows = append(rows, row{slice: ki, terms: tm, labels: [sim.NumTasks]int8{im.Click, im.Save, im.LongClick, im.Hide}})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("eval: %s has no impressions on its test days", dir)
	}
	rep := &OracleReport{Dir: dir, SchemaHash: tr.Manifest.SchemaHash, TestFromMs: from, Expected: opts.Expected}
	rep.Slices = oracleSlices(tr, keys, rows, opts.Expected)
	return rep, nil
}

// oracleSlices computes per-slice and per-surface rows.
func oracleSlices(tr *sim.Truth, keys []sliceKey, rows []row, expected bool) []Slice {
	cfg := tr.Config
	// Slice means of every task's component parts, for the ablations.
	means := make([][sim.NumTasks][sim.NumComponents]float64, len(keys))
	counts := make([]float64, len(keys))
	for i := range rows {
		r := &rows[i]
		counts[r.slice]++
		for t := range sim.NumTasks {
			for c := range sim.NumComponents {
				means[r.slice][t][c] += r.terms.Part[t][c]
			}
		}
	}
	for k := range means {
		for t := range sim.NumTasks {
			for c := range sim.NumComponents {
				means[k][t][c] /= counts[k]
			}
		}
	}
	var out []Slice
	for si, sf := range cfg.Surfaces {
		for _, task := range sf.Tasks {
			t := slices.Index(sim.TaskNames[:], task)
			var pooled []int
			for ki, k := range keys {
				if k.surface == si {
					pooled = append(pooled, ki)
				}
			}
			slices.SortFunc(pooled, func(a, b int) int { return keys[a].view - keys[b].view })
			for _, ki := range pooled {
				s := sliceStats(rows, []int{ki}, means, t, expected)
				s.Surface, s.ViewType, s.Task = sf.Name, sf.ViewTypes[keys[ki].view].Name, task
				out = append(out, s)
			}
			if len(pooled) > 0 {
				s := sliceStats(rows, pooled, means, t, expected)
				s.Surface, s.ViewType, s.Task = sf.Name, AllViewTypes, task
				out = append(out, s)
			}
		}
	}
	return out
}

// sliceStats computes one report row over the rows of the given slice keys.
// The base predictor is each key's own base rate. With expected set, log
// losses are expectations under the true probabilities (soft labels)
// instead of averages over the drawn labels: the same quantities without
// label noise. AUC always uses the drawn labels.
func sliceStats(rows []row, keys []int, means [][sim.NumTasks][sim.NumComponents]float64, t int, expected bool) Slice {
	in := make(map[int]bool, len(keys))
	for _, k := range keys {
		in[k] = true
	}
	type keySum struct{ n, y float64 }
	per := map[int]*keySum{}
	var n, pos, bayes float64
	var ablated [sim.NumComponents]float64
	var score []float64
	var ys []int8
	loss := func(p, y, q float64) float64 {
		if expected {
			return metric.CrossEntropy(p, q)
		}
		return metric.CrossEntropy(y, q)
	}
	for i := range rows {
		r := &rows[i]
		if !in[r.slice] {
			continue
		}
		y := r.labels[t]
		p := r.terms.Probs()[t]
		target := float64(y)
		if expected {
			target = p
		}
		ks := per[r.slice]
		if ks == nil {
			ks = &keySum{}
			per[r.slice] = ks
		}
		ks.n++
		ks.y += target
		n++
		pos += float64(y)
		bayes += loss(p, float64(y), p)
		score = append(score, p)
		ys = append(ys, y)
		for c := range sim.NumComponents {
			tm := r.terms
			for tt := range sim.NumTasks {
				tm.Part[tt][c] = means[r.slice][tt][c]
			}
			ablated[c] += loss(p, float64(y), tm.Probs()[t])
		}
	}
	// Base: each key predicts its own mean label (its entropy).
	var base float64
	for _, ks := range per {
		m := ks.y / ks.n
		base += ks.n * metric.CrossEntropy(m, m)
	}
	s := Slice{
		Count: int64(n), Positives: int64(pos),
		BaseLogLoss: base / n, BayesLogLoss: bayes / n,
		BayesAUC: metric.AUC(score, ys), Ablated: map[string]float64{},
	}
	s.NEBayes = s.BayesLogLoss / s.BaseLogLoss
	for c, name := range sim.ComponentNames {
		s.Ablated[name] = ablated[c] / n
	}
	return s
}

// MarshalJSON writes undefined numbers (a slice with one class has no AUC
// and no NE) as null, which encoding/json cannot do for NaN.
func (s Slice) MarshalJSON() ([]byte, error) {
	type plain Slice
	out := struct {
		plain
		NEBayes  *float64 `json:"ne_bayes"`
		BayesAUC *float64 `json:"bayes_auc"`
	}{plain: plain(s), NEBayes: finite(s.NEBayes), BayesAUC: finite(s.BayesAUC)}
	return json.Marshal(out)
}

func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// WriteText prints the report as an aligned table: every slice with its
// NE and, per component, the relative rise in log loss when it is ablated.
func (r *OracleReport) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "surface\tview\ttask\tcount\tpos\tbase LL\tbayes LL\tNE\tAUC\t"
	for _, c := range sim.ComponentNames {
		head += "-" + c + "\t"
	}
	fmt.Fprintln(tw, head)
	for _, s := range r.Slices {
		line := fmt.Sprintf("%s\t%s\t%s\t%d\t%d\t%.4f\t%.4f\t%.3f\t%.3f\t", s.Surface, s.ViewType, s.Task,
			s.Count, s.Positives, s.BaseLogLoss, s.BayesLogLoss, s.NEBayes, s.BayesAUC)
		for _, c := range sim.ComponentNames {
			line += fmt.Sprintf("%+.1f%%\t", 100*(s.Ablated[c]/s.BayesLogLoss-1))
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "(-component: rise in the oracle's log loss when that component is replaced by its slice mean; view * pools view types)")
	return err
}
