package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/tandemml/tandem/batch"
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
	Steps         int
	Epochs        int
	BestEpoch     int
	ValLogLoss    []float64 // per epoch, summed over tasks, mean per row
	TrainExamples int
	Seconds       float64
	ExamplesPerS  float64
	Interrupted   bool
}

// contextsPerBatch is U for a batch of n rows. Requests carry 3.5 rows on
// average under the default surfaces (2–4 slots), so n/3 contexts rarely
// ends a batch early, and the encoder runs on U·L rows instead of n·L.
func contextsPerBatch(n int) int { return max(1, n/3) }

// Pack groups rows (sorted so that a request's rows are adjacent) into
// batches of at most n rows over at most u contexts without splitting a
// request. A request with more than n rows is split.
func Pack(d *batch.Data, rows []batch.Row, n, u int) [][]batch.Row {
	var out [][]batch.Row
	var cur []batch.Row
	ctx := map[[2]int64]bool{}
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].Req == rows[i].Req {
			j++
		}
		k := batch.ContextKey(&d.Requests[rows[i].Req])
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

// binding lets a feeder's buffers into a graph's inputs.
type binding struct {
	g *tower.L2Graph
	f *batch.L2Feeder
}

func dense(shape []int, v []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
}

func ints(v []int) *tensor.Dense { return tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(v)) }

func (b binding) let() error {
	g, f := b.g, b.f
	in := g.In
	type kv struct {
		n *G.Node
		v *tensor.Dense
	}
	lets := []kv{
		{in.X, dense(in.X.Shape(), f.X.Data)}, {in.Ad, dense(in.Ad.Shape(), f.Ad.Data)},
		{in.Dense, dense(in.Dense.Shape(), f.Dense)}, {in.Y, dense(in.Y.Shape(), f.Y)}, {in.W, dense(in.W.Shape(), f.W)},
	}
	for i, s := range in.Surface {
		lets = append(lets, kv{s, dense(s.Shape(), f.Surface[i])})
	}
	if !g.Spec.Logistic() {
		s := in.Seq
		lets = append(lets, kv{s.Tokens, dense(s.Tokens.Shape(), f.Tok.Data)}, kv{s.Pos, dense(s.Pos.Shape(), f.Pos.Data)},
			kv{s.Mask, dense(s.Mask.Shape(), f.Mask)}, kv{s.Newest, ints(f.Newest)}, kv{s.Keep, dense(s.Keep.Shape(), f.Keep)},
			kv{s.Pool, dense(s.Pool.Shape(), f.Pool)}, kv{s.Any, dense(s.Any.Shape(), f.Any)},
			kv{in.CtxRow, ints(f.CtxRow)}, kv{in.TARows, ints(f.TARows)},
			kv{in.TAMask, dense(in.TAMask.Shape(), f.TAMask)}, kv{in.TAAny, dense(in.TAAny.Shape(), f.TAAny)})
	}
	for _, x := range lets {
		if err := G.Let(x.n, x.v); err != nil {
			return fmt.Errorf("let %s: %w", x.n.Name(), err)
		}
	}
	return nil
}

func f32(n *G.Node) []float32 {
	v, _ := n.Value().Data().([]float32)
	return v
}

// trainer holds one run's state.
type trainer struct {
	m      *L2
	d      *batch.Data
	opts   Options
	opt    *Optimizer
	g      *tower.L2Graph
	feed   *batch.L2Feeder
	n, u   int
	epoch  int // current epoch
	batchI int // next batch within the epoch
	best   *snapshot
	bad    int // epochs without improvement
	val    []float64
}

// TrainL2 trains m on d's training days with early stopping on the
// validation day, then fits the calibration on the validation day.
func TrainL2(ctx context.Context, m *L2, d *batch.Data, opts Options) (*Report, error) {
	tc := m.Cfg.Train
	t := newTrainer(m, d, opts)
	if _, err := t.build(); err != nil {
		return nil, err
	}
	defer t.g.Close()
	if opts.ResumePath != "" {
		if err := t.loadResume(); err != nil {
			return nil, err
		}
	}
	trainRows := ImpressionRows(d, d.RequestsIn(batch.Train), m.Serves)
	valRows := ImpressionRows(d, d.RequestsIn(batch.Validation), m.Serves)
	if len(trainRows) == 0 || len(valRows) == 0 {
		return nil, fmt.Errorf("train %s: %d training and %d validation impressions; need both", m.Name(), len(trainRows), len(valRows))
	}
	rep := &Report{TrainExamples: len(trainRows)}
	var bar *progress.Bar
	steps := 0
	start := time.Now()
	examples := 0
	for ; t.epoch < tc.Epochs; t.epoch++ {
		batches := t.epochBatches(trainRows)
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
		improved := t.best == nil || vl < t.best.loss
		if improved {
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
	if err := FitCalibration(m, d, valRows); err != nil {
		return nil, err
	}
	return rep, nil
}

func newTrainer(m *L2, d *batch.Data, opts Options) *trainer {
	tc := m.Cfg.Train
	return &trainer{m: m, d: d, opts: opts, opt: NewOptimizer(tc), n: tc.Batch, u: contextsPerBatch(tc.Batch)}
}

// build makes the training graph and the feeder.
func (t *trainer) build() (*tower.L2Graph, error) {
	g, err := tower.BuildL2(t.m.W, t.m.Spec, t.n, t.u, true)
	if err != nil {
		return nil, err
	}
	t.g = g
	t.feed = batch.NewL2Feeder(t.d, t.m.S, t.m.BN, t.n, t.u, t.m.Spec.Logistic())
	return g, nil
}

// epochBatches shuffles the training requests deterministically for the
// epoch (whole requests, so request-level broadcasting keeps working) and
// packs them.
func (t *trainer) epochBatches(rows []batch.Row) [][]batch.Row {
	rng := rand.New(rand.NewPCG(t.opts.Seed, uint64(t.epoch)+1))
	// Requests are contiguous in rows; shuffle the request spans.
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
	return Pack(t.d, shuf, t.n, t.u)
}

func (t *trainer) lrScale() float64 {
	tc := t.m.Cfg.Train
	s := math.Pow(tc.Decay, float64(t.epoch))
	if tc.WarmupSteps > 0 && t.opt.Step < tc.WarmupSteps {
		s *= float64(t.opt.Step+1) / float64(tc.WarmupSteps)
	}
	return s
}

// step runs one optimisation step and returns the batch's mean loss.
func (t *trainer) step(rows []batch.Row) (float64, error) {
	for i := range rows {
		rows[i].Weight = 1 / float32(len(rows))
	}
	rng := rand.New(rand.NewPCG(t.opts.Seed^0x5e9, uint64(t.epoch)<<32|uint64(t.batchI)))
	t.feed.Fill(rows, true, rng)
	if err := (binding{t.g, t.feed}).let(); err != nil {
		return 0, err
	}
	if err := t.g.Run(); err != nil {
		return 0, err
	}
	loss := float64(t.g.Loss.Value().Data().(float32))
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("train %s: loss is %v at step %d (epoch %d, batch %d)", t.m.Name(), loss, t.opt.Step, t.epoch+1, t.batchI)
	}
	t.opt.Step++
	scale := t.lrScale()
	np := len(t.g.Params)
	for i, p := range t.g.Params {
		t.opt.Dense(p.Name(), t.m.W.Get(p.Name()).Data(), f32(t.g.Grads[i]), scale)
	}
	t.feed.X.Scatter(f32(t.g.Grads[np]))
	t.feed.Ad.Scatter(f32(t.g.Grads[np+1]))
	if !t.m.Spec.Logistic() {
		t.feed.Tok.Scatter(f32(t.g.Grads[np+2]))
		t.feed.Pos.Scatter(f32(t.g.Grads[np+3]))
	}
	for _, tb := range t.m.S.Tables() {
		t.opt.Table(tb, scale)
	}
	return loss, nil
}

// valLoss is the validation log loss summed over tasks (mean per row).
func (t *trainer) valLoss(rows []batch.Row) (float64, error) {
	z, err := PredictLogits(t.m, t.d, rows)
	if err != nil {
		return 0, err
	}
	nt := len(t.m.Cfg.Tasks)
	var sum float64
	for i, r := range rows {
		s := t.d.Requests[r.Req].Surface
		for k := 0; k < nt; k++ {
			if !t.m.Spec.Trains[s][k] {
				continue
			}
			zz := float64(z[i*nt+k])
			sum += softplus(zz) - float64(r.Labels[k])*zz
		}
	}
	return sum / float64(len(rows)), nil
}

func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}

// PredictLogits returns the uncalibrated logits (rows × tasks) of rows,
// which must keep each request's rows adjacent. Dense features use the
// running statistics; sequences are never masked.
func PredictLogits(m *L2, d *batch.Data, rows []batch.Row) ([]float32, error) {
	n := m.Cfg.Train.Batch
	u := contextsPerBatch(n)
	g, err := tower.BuildL2(m.W, m.Spec, n, u, false)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	f := batch.NewL2Feeder(d, m.S, m.BN, n, u, m.Spec.Logistic())
	nt := len(m.Cfg.Tasks)
	out := make([]float32, 0, len(rows)*nt)
	for _, b := range Pack(d, rows, n, u) {
		f.Fill(b, false, nil)
		if err := (binding{g, f}).let(); err != nil {
			return nil, err
		}
		if err := g.Run(); err != nil {
			return nil, err
		}
		out = append(out, f32(g.Logits)[:len(b)*nt]...)
	}
	return out, nil
}
