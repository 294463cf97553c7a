package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	G "gorgonia.org/gorgonia"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/progress"
	"github.com/tandemml/tandem/tower"
)

// Options steer one training run.
type Options struct {
	Seed uint64
	// Progress receives a progress bar (nil: none).
	Progress io.Writer
	// Log receives one line per epoch (nil: none).
	Log func(format string, args ...any)
	// ResumePath, when set, is where resume checkpoints are written and
	// read: an existing file continues the run it came from.
	ResumePath string
	// StopAfterSteps ends the run early after this many steps, with a
	// resume checkpoint written (tests use it to simulate an interruption).
	StopAfterSteps int
}

// Report summarises a run.
type Report struct {
	Steps         int       `json:"steps"`
	Epochs        int       `json:"epochs"`
	BestEpoch     int       `json:"best_epoch"`
	ValLogLoss    []float64 `json:"validation_log_loss"` // per epoch, summed over tasks, mean per row
	TrainExamples int       `json:"train_examples"`
	Seconds       float64   `json:"seconds"`
	ExamplesPerS  float64   `json:"examples_per_s"`
	Interrupted   bool      `json:"interrupted,omitempty"`
}

// contextsPerBatch is U for a batch of n rows. Requests carry 3.5 rows on
// average under the default surfaces (2–4 slots), so n/3 contexts rarely
// ends a batch early, and the encoder runs on U·L rows instead of n·L.
func contextsPerBatch(n int) int { return max(1, n/3) }

// Pack groups rows (sorted so that a request's rows are adjacent) into
// batches of at most n rows over at most u contexts without splitting a
// request. A request with more than n rows is split. Contexts are
// (user, request time) pairs, or requests when byRequest (L1's user tower
// also sees the surface and view type).
func Pack(d *batch.Data, rows []batch.Row, n, u int, byRequest bool) [][]batch.Row {
	var out [][]batch.Row
	var cur []batch.Row
	ctx := map[[2]int64]bool{}
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].Req == rows[i].Req {
			j++
		}
		k := batch.ContextKey(&d.Requests[rows[i].Req])
		if byRequest {
			k = [2]int64{int64(rows[i].Req), -1}
		}
		need := 0
		if !ctx[k] {
			need = 1
		}
		if len(cur) > 0 && (len(cur)+(j-i) > n || len(ctx)+need > u) {
			out = append(out, cur)
			cur, ctx = nil, map[[2]int64]bool{}
		}
		for i < j {
			take := min(j-i, n-len(cur))
			cur = append(cur, rows[i:i+take]...)
			ctx[k] = true
			i += take
			if len(cur) == n && i < j {
				out = append(out, cur)
				cur, ctx = nil, map[[2]int64]bool{}
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// ImpressionRows returns the impression rows of the given requests whose
// surface is in serves.
func ImpressionRows(d *batch.Data, reqs []int32, serves []int) []batch.Row {
	ok := make([]bool, len(d.Cfg.Surfaces))
	for _, s := range serves {
		ok[s] = true
	}
	var rows []batch.Row
	for _, ri := range reqs {
		r := &d.Requests[ri]
		if !ok[r.Surface] {
			continue
		}
		for k := r.First; k < r.First+r.Count; k++ {
			im := &d.Imps[k]
			rows = append(rows, batch.Row{Req: ri, Imp: k, AdRow: im.AdRow, Position: im.Position, Labels: im.Labels, Weight: 1})
		}
	}
	return rows
}

func f32(n *G.Node) []float32 {
	v, _ := n.Value().Data().([]float32)
	return v
}

// net is what the trainer needs of a model (L2 or L1).
type net interface {
	Name() string
	config() *config.Config
	weights() *tower.Weights
	tables() []*batch.Table
	norms() []*batch.BN
	// trains[s][t]: rows of surface s carry task t's loss.
	trains() [][]bool
	byRequest() bool
	// contexts is U for a batch of n rows.
	contexts(n int) int
	newRunner(d *batch.Data, n, u int, train bool) (runner, error)
}

// runner is one built graph with its feeder.
type runner interface {
	fill(rows []batch.Row, train bool, rng *rand.Rand) error
	run() error
	loss() float64
	logits() []float32 // N × T
	// apply steps the dense parameters and scatters the gathered inputs'
	// gradients into the tables.
	apply(opt *Optimizer, scale float64)
	close()
}

// stepDense applies one optimiser step to every parameter of a graph from
// the gradient nodes that follow the same order.
func stepDense(opt *Optimizer, w *tower.Weights, params, grads G.Nodes, scale float64) {
	for i, p := range params {
		opt.Dense(p.Name(), w.Get(p.Name()).Data(), f32(grads[i]), scale)
	}
}

// trainer holds one run's state.
type trainer struct {
	m      net
	d      *batch.Data
	opts   Options
	opt    *Optimizer
	r      runner
	n, u   int
	epoch  int // current epoch
	batchI int // next batch within the epoch
	best   *snapshot
	bad    int // epochs without improvement
	val    []float64
}

func newTrainer(m net, d *batch.Data, opts Options) *trainer {
	tc := m.config().Train
	return &trainer{m: m, d: d, opts: opts, opt: NewOptimizer(tc), n: tc.Batch, u: m.contexts(tc.Batch)}
}

// build makes the training graph and its feeder.
func (t *trainer) build() error {
	r, err := t.m.newRunner(t.d, t.n, t.u, true)
	if err != nil {
		return err
	}
	t.r = r
	return nil
}

// fit trains m on trainRows with early stopping on valRows and leaves the
// best epoch's weights in m.
func fit(ctx context.Context, m net, d *batch.Data, trainRows, valRows []batch.Row, opts Options) (*Report, error) {
	tc := m.config().Train
	t := newTrainer(m, d, opts)
	if err := t.build(); err != nil {
		return nil, err
	}
	defer t.r.close()
	if opts.ResumePath != "" {
		if err := t.loadResume(); err != nil {
			return nil, err
		}
	}
	if len(trainRows) == 0 || len(valRows) == 0 {
		return nil, fmt.Errorf("train %s: %d training and %d validation rows; need both", m.Name(), len(trainRows), len(valRows))
	}
	rep := &Report{TrainExamples: len(trainRows)}
	var bar *progress.Bar
	steps := 0
	start := time.Now()
	examples := 0
	for ; t.epoch < tc.Epochs; t.epoch++ {
		batches := t.epochBatches(trainRows)
		if ms := tc.MaxSteps; ms > 0 && len(batches) > ms {
			batches = batches[:ms]
		}
		if opts.Progress != nil {
			bar = progress.New(opts.Progress, fmt.Sprintf("%s epoch %d/%d", m.Name(), t.epoch+1, tc.Epochs), int64(len(batches)), "batches")
		}
		var run, runN float64
		for ; t.batchI < len(batches); t.batchI++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			loss, err := t.step(batches[t.batchI])
			if err != nil {
				return nil, err
			}
			examples += len(batches[t.batchI])
			steps++
			run, runN = run*0.98+loss, runN*0.98+1
			if bar != nil {
				bar.Set(int64(t.batchI+1), fmt.Sprintf("loss %.4f", run/runN))
			}
			if ce := tc.CheckpointEvery; opts.ResumePath != "" && ce > 0 && t.opt.Step%ce == 0 {
				t.batchI++
				err := t.saveResume()
				t.batchI--
				if err != nil {
					return nil, err
				}
			}
			if opts.StopAfterSteps > 0 && steps >= opts.StopAfterSteps {
				t.batchI++
				rep.Interrupted = true
				rep.Steps = t.opt.Step
				if opts.ResumePath != "" {
					if err := t.saveResume(); err != nil {
						return nil, err
					}
				}
				return rep, nil
			}
		}
		if bar != nil {
			bar.Done()
		}
		vl, err := t.valLoss(valRows)
		if err != nil {
			return nil, err
		}
		t.val = append(t.val, vl)
		t.batchI = 0
		if t.best == nil || vl < t.best.loss {
			t.best = t.snap(vl, t.epoch)
			t.bad = 0
		} else {
			t.bad++
		}
		if opts.Log != nil {
			opts.Log("%s epoch %d: validation log loss %.5f (best %.5f, epoch %d)", m.Name(), t.epoch+1, vl, t.best.loss, t.best.epoch+1)
		}
		stop := t.bad >= tc.Patience
		if opts.ResumePath != "" {
			t.epoch++
			err := t.saveResume()
			t.epoch--
			if err != nil {
				return nil, err
			}
		}
		if stop {
			t.epoch++
			break
		}
	}
	t.best.restore(t.m)
	rep.Steps, rep.Epochs, rep.BestEpoch = t.opt.Step, t.epoch, t.best.epoch+1
	rep.ValLogLoss = t.val
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.ExamplesPerS = float64(examples) / rep.Seconds
	}
	return rep, nil
}

// epochBatches shuffles the training requests deterministically for the
// epoch (whole requests, so request-level broadcasting keeps working) and
// packs them.
func (t *trainer) epochBatches(rows []batch.Row) [][]batch.Row {
	rng := rand.New(rand.NewPCG(t.opts.Seed, uint64(t.epoch)+1))
	var spans [][2]int
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].Req == rows[i].Req {
			j++
		}
		spans = append(spans, [2]int{i, j})
		i = j
	}
	rng.Shuffle(len(spans), func(a, b int) { spans[a], spans[b] = spans[b], spans[a] })
	shuf := make([]batch.Row, 0, len(rows))
	for _, s := range spans {
		shuf = append(shuf, rows[s[0]:s[1]]...)
	}
	return Pack(t.d, shuf, t.n, t.u, t.m.byRequest())
}

func (t *trainer) lrScale() float64 {
	tc := t.m.config().Train
	s := math.Pow(tc.Decay, float64(t.epoch))
	if tc.WarmupSteps > 0 && t.opt.Step < tc.WarmupSteps {
		s *= float64(t.opt.Step+1) / float64(tc.WarmupSteps)
	}
	return s
}

// step runs one optimisation step and returns the batch's mean loss. Rows
// keep their relative weights (distillation rows may weigh less); the
// weights are normalised to sum to 1 over the batch.
func (t *trainer) step(rows []batch.Row) (float64, error) {
	var sum float32
	for _, r := range rows {
		sum += r.Weight
	}
	if sum <= 0 {
		return 0, fmt.Errorf("train %s: batch %d of epoch %d has no weight", t.m.Name(), t.batchI, t.epoch+1)
	}
	scaled := make([]batch.Row, len(rows))
	for i, r := range rows {
		r.Weight /= sum
		scaled[i] = r
	}
	rng := rand.New(rand.NewPCG(t.opts.Seed^0x5e9, uint64(t.epoch)<<32|uint64(t.batchI)))
	if err := t.r.fill(scaled, true, rng); err != nil {
		return 0, err
	}
	if err := t.r.run(); err != nil {
		return 0, err
	}
	loss := t.r.loss()
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("train %s: loss is %v at step %d (epoch %d, batch %d)", t.m.Name(), loss, t.opt.Step, t.epoch+1, t.batchI)
	}
	t.opt.Step++
	scale := t.lrScale()
	t.r.apply(t.opt, scale)
	for _, tb := range t.m.tables() {
		t.opt.Table(tb, scale)
	}
	return loss, nil
}

// valLoss is the validation log loss summed over trained tasks (mean per row).
func (t *trainer) valLoss(rows []batch.Row) (float64, error) {
	z, err := predictLogits(t.m, t.d, rows)
	if err != nil {
		return 0, err
	}
	nt := len(t.m.config().Tasks)
	tr := t.m.trains()
	var sum, wsum float64
	for i, r := range rows {
		s := t.d.Requests[r.Req].Surface
		w := float64(r.Weight)
		for k := 0; k < nt; k++ {
			if !tr[s][k] {
				continue
			}
			zz := float64(z[i*nt+k])
			sum += w * (softplus(zz) - float64(r.Labels[k])*zz)
		}
		wsum += w
	}
	return sum / wsum, nil
}

func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}

// predictLogits returns the logits (rows × tasks) of rows, which must keep
// each request's rows adjacent. Dense features use the running
// statistics; sequences are never masked.
func predictLogits(m net, d *batch.Data, rows []batch.Row) ([]float32, error) {
	n := m.config().Train.Batch
	u := m.contexts(n)
	r, err := m.newRunner(d, n, u, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	nt := len(m.config().Tasks)
	out := make([]float32, 0, len(rows)*nt)
	for _, b := range Pack(d, rows, n, u, m.byRequest()) {
		if err := r.fill(b, false, nil); err != nil {
			return nil, err
		}
		if err := r.run(); err != nil {
			return nil, err
		}
		out = append(out, r.logits()[:len(b)*nt]...)
	}
	return out, nil
}
