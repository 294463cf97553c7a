// Command compare runs the paired comparisons of docs/MODELS.md on the
// CURRENT version of a model directory: for two models of the version it
// reports each one's metric on the test days and the difference with a
// 95% interval from a paired bootstrap over test users (both models are
// scored on the same resampled users).
//
//	go run ./benchmarks/compare -data DIR -models MODELDIR -a l2 -b baseline_per_surface -metric captured
//	go run ./benchmarks/compare -data DIR -models MODELDIR -a l2 -b baseline_global_calib -metric ece
//	go run ./benchmarks/compare -data DIR -models MODELDIR -a l1 -b baseline_l1_mlp -metric recall
//
// captured: captured share (LL_base − LL)/(LL_base − LL_Bayes) per surface
// for -task (default click); ece: 15-bin equal-mass ECE per surface for
// -task; recall: retrieval recall@100 of the true top-100.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/eval"
	"github.com/tandemml/tandem/metric"
)

func main() {
	dataDir := flag.String("data", "", "simulated data directory")
	models := flag.String("models", "", "model directory (its CURRENT version)")
	a := flag.String("a", "l2", "first model (l2, l1 or baseline_<name>)")
	b := flag.String("b", "", "second model")
	what := flag.String("metric", "captured", "captured, ece or recall")
	task := flag.String("task", "click", "task for captured and ece")
	resamples := flag.Int("resamples", 1000, "bootstrap resamples")
	requests := flag.Int("requests", 1000, "test requests for recall")
	flag.Parse()
	if err := run(*dataDir, *models, *a, *b, *what, *task, *resamples, *requests); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

// unit is one user's contribution to a slice: sums over their rows.
type unit struct {
	llA, llB, llBayes float64
	n, y              float64
	pA, pB, ys        []float64 // for ECE
}

func run(dataDir, modelDir, a, b, what, task string, resamples, requests int) error {
	if dataDir == "" || modelDir == "" || b == "" {
		return fmt.Errorf("need -data, -models and -b")
	}
	v, err := eval.OpenVersion(modelDir)
	if err != nil {
		return err
	}
	d, err := v.OpenData(dataDir)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	if what == "recall" {
		return recall(dataDir, d, v, a, b, resamples, requests, rng)
	}
	k := d.Cfg.TaskIndex(task)
	if k < 0 {
		return fmt.Errorf("unknown task %q", task)
	}
	ma, mb := v.L2[a], v.L2[b]
	if ma == nil || mb == nil {
		return fmt.Errorf("version %s has L2 sets %v", v.Manifest.Version, eval.Names(v.L2))
	}
	rowsA, pA, err := eval.L2Predictions(d, ma)
	if err != nil {
		return err
	}
	rowsB, pB, err := eval.L2Predictions(d, mb)
	if err != nil {
		return err
	}
	if len(rowsA) != len(rowsB) {
		return fmt.Errorf("the two models scored %d and %d rows", len(rowsA), len(rowsB))
	}
	nt := len(d.Cfg.Tasks)
	trains := batch.TrainsMatrix(d.Cfg)
	fmt.Printf("%s: %s vs %s, task %s, %d resamples over test users (paired)\n", what, a, b, task, resamples)
	for s, sf := range d.Cfg.Surfaces {
		if !trains[s][k] {
			continue
		}
		users := map[int64]*unit{}
		var order []int64
		for i, r := range rowsA {
			req := &d.Requests[r.Req]
			if int(req.Surface) != s {
				continue
			}
			u := users[req.UserID]
			if u == nil {
				u = &unit{}
				users[req.UserID] = u
				order = append(order, req.UserID)
			}
			y := float64(r.Labels[k])
			u.llA += metric.CrossEntropy(y, pA[i*nt+k])
			u.llB += metric.CrossEntropy(y, pB[i*nt+k])
			u.llBayes += metric.CrossEntropy(y, d.Imps[r.Imp].PTrue[k])
			u.n++
			u.y += y
			u.pA, u.pB, u.ys = append(u.pA, pA[i*nt+k]), append(u.pB, pB[i*nt+k]), append(u.ys, y)
		}
		stat := func(sample []*unit) (float64, float64) {
			var la, lb, lbay, n, y float64
			var xa, xb, ys []float64
			for _, u := range sample {
				la, lb, lbay, n, y = la+u.llA, lb+u.llB, lbay+u.llBayes, n+u.n, y+u.y
				if what == "ece" {
					xa, xb, ys = append(xa, u.pA...), append(xb, u.pB...), append(ys, u.ys...)
				}
			}
			if what == "ece" {
				ea, _ := metric.ECE(xa, ys, 15)
				eb, _ := metric.ECE(xb, ys, 15)
				return ea, eb
			}
			m := y / n
			base := metric.CrossEntropy(m, m)
			return (base - la/n) / (base - lbay/n), (base - lb/n) / (base - lbay/n)
		}
		all := make([]*unit, len(order))
		for i, id := range order {
			all[i] = users[id]
		}
		va, vb := stat(all)
		diffs := make([]float64, resamples)
		sample := make([]*unit, len(all))
		for i := range diffs {
			for j := range sample {
				sample[j] = all[rng.IntN(len(all))]
			}
			x, y := stat(sample)
			diffs[i] = x - y
		}
		lo, hi := interval(diffs)
		fmt.Printf("  %-10s %s %.4f  %s %.4f  Δ %+.4f  95%% [%+.4f, %+.4f]  users %d%s\n", sf.Name, a, va, b, vb, va-vb, lo, hi, len(all), excludes(lo, hi))
	}
	return nil
}

func recall(dataDir string, d *batch.Data, v *eval.Version, a, b string, resamples, requests int, rng *rand.Rand) error {
	ma, mb := v.L1[a], v.L1[b]
	if ma == nil || mb == nil {
		return fmt.Errorf("version %s has L1 sets %v", v.Manifest.Version, eval.Names(v.L1))
	}
	opts := eval.RetrievalOptions{Requests: requests, Ks: []int{100}}
	ra, err := eval.Retrieval(dataDir, d, ma, opts)
	if err != nil {
		return err
	}
	rb, err := eval.Retrieval(dataDir, d, mb, opts)
	if err != nil {
		return err
	}
	per := map[int64][2]float64{}
	var order []int64
	for i, u := range ra.Users {
		if _, ok := per[u]; !ok {
			order = append(order, u)
		}
		x := per[u]
		x[0] += ra.PerRequest["model"][0][i] - rb.PerRequest["model"][0][i]
		x[1]++
		per[u] = x
	}
	diffs := make([]float64, resamples)
	for i := range diffs {
		var s, n float64
		for range order {
			x := per[order[rng.IntN(len(order))]]
			s, n = s+x[0], n+x[1]
		}
		diffs[i] = s / n
	}
	lo, hi := interval(diffs)
	va, vb := ra.Recall["model"]["@100"], rb.Recall["model"]["@100"]
	fmt.Printf("recall@100: %s %.4f  %s %.4f  Δ %+.4f  95%% [%+.4f, %+.4f]  (%d requests, %d users, paired)%s\n",
		a, va, b, vb, va-vb, lo, hi, ra.Requests, len(order), excludes(lo, hi))
	return nil
}

func interval(x []float64) (float64, float64) {
	s := slices.Clone(x)
	slices.Sort(s)
	at := func(q float64) float64 { return s[int(math.Round(q*float64(len(s)-1)))] }
	return at(0.025), at(0.975)
}

func excludes(lo, hi float64) string {
	if lo > 0 || hi < 0 {
		return "  (interval excludes 0)"
	}
	return ""
}
