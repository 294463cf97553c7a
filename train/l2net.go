package train

import (
	"context"
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/tower"
)

func (m *L2) config() *config.Config  { return m.Cfg }
func (m *L2) weights() *tower.Weights { return m.W }
func (m *L2) tables() []*batch.Table  { return m.S.Tables() }
func (m *L2) norms() []*batch.BN      { return []*batch.BN{m.BN} }
func (m *L2) trains() [][]bool        { return m.Spec.Trains }
func (m *L2) byRequest() bool         { return false }
func (m *L2) contexts(n int) int      { return contextsPerBatch(n) }

// TrainL2 trains m on d's training-day impressions of its surfaces with
// early stopping on the validation day, then fits the calibration on the
// validation day.
func TrainL2(ctx context.Context, m *L2, d *batch.Data, opts Options) (*Report, error) {
	trainRows := ImpressionRows(d, d.RequestsIn(batch.Train), m.Serves)
	valRows := ImpressionRows(d, d.RequestsIn(batch.Validation), m.Serves)
	rep, err := fit(ctx, m, d, trainRows, valRows, opts)
	if err != nil || rep.Interrupted {
		return rep, err
	}
	if err := FitCalibration(m, d, valRows); err != nil {
		return nil, err
	}
	return rep, nil
}

// PredictLogits returns m's uncalibrated logits (rows × tasks).
func PredictLogits(m *L2, d *batch.Data, rows []batch.Row) ([]float32, error) {
	return predictLogits(m, d, rows)
}

// l2Runner binds an L2 graph to its feeder.
type l2Runner struct {
	m *L2
	g *tower.L2Graph
	f *batch.L2Feeder
}

func (m *L2) newRunner(d *batch.Data, n, u int, train bool) (runner, error) {
	g, err := tower.BuildL2(m.W, m.Spec, n, u, train)
	if err != nil {
		return nil, err
	}
	return &l2Runner{m: m, g: g, f: batch.NewL2Feeder(d, m.S, m.BN, n, u, m.Spec.Logistic())}, nil
}

func (r *l2Runner) fill(rows []batch.Row, train bool, rng *rand.Rand) error {
	return r.f.Fill(rows, train, rng)
}
func (r *l2Runner) close()            { r.g.Close() }
func (r *l2Runner) loss() float64     { return float64(r.g.Loss.Value().Data().(float32)) }
func (r *l2Runner) logits() []float32 { return f32(r.g.Logits) }

func (r *l2Runner) run() error {
	g, f := r.g, r.f
	in := g.In
	lets := []kv{
		{in.X, dense(in.X.Shape(), f.X.Data)}, {in.Ad, dense(in.Ad.Shape(), f.Ad.Data)},
		{in.Dense, dense(in.Dense.Shape(), f.Dense)}, {in.Y, dense(in.Y.Shape(), f.Y)}, {in.W, dense(in.W.Shape(), f.W)},
	}
	for i, s := range in.Surface {
		lets = append(lets, kv{s, dense(s.Shape(), f.Surface[i])})
	}
	if !g.Spec.Logistic() {
		lets = append(lets, seqLets(in.Seq, f.Seq)...)
		lets = append(lets, kv{in.CtxRow, ints(f.CtxRow)}, kv{in.TARows, ints(f.TARows)},
			kv{in.TAMask, dense(in.TAMask.Shape(), f.TAMask)}, kv{in.TAAny, dense(in.TAAny.Shape(), f.TAAny)})
	}
	if err := letAll(lets); err != nil {
		return err
	}
	return g.Run()
}

func (r *l2Runner) apply(opt *Optimizer, scale float64) {
	g := r.g
	np := len(g.Params)
	stepDense(opt, r.m.W, g.Params, g.Grads, scale)
	r.f.X.Scatter(f32(g.Grads[np]))
	r.f.Ad.Scatter(f32(g.Grads[np+1]))
	if !g.Spec.Logistic() {
		r.f.Tok.Scatter(f32(g.Grads[np+2]))
		r.f.Pos.Scatter(f32(g.Grads[np+3]))
	}
}

// kv is one input binding.
type kv struct {
	n *G.Node
	v *tensor.Dense
}

// bind pairs an optional float input with its buffer (nil node: skipped).
func bind(n *G.Node, v []float32) kv {
	if n == nil {
		return kv{}
	}
	return kv{n, dense(n.Shape(), v)}
}

func letAll(lets []kv) error {
	for _, x := range lets {
		if x.n == nil { // an input the model does not have (no features of that kind)
			continue
		}
		if err := G.Let(x.n, x.v); err != nil {
			return fmt.Errorf("let %s: %w", x.n.Name(), err)
		}
	}
	return nil
}

// seqLets binds the sequence inputs.
func seqLets(s tower.SeqInputs, f *batch.Seq) []kv {
	return []kv{{s.Tokens, dense(s.Tokens.Shape(), f.Tok.Data)}, {s.Pos, dense(s.Pos.Shape(), f.Pos.Data)},
		{s.Mask, dense(s.Mask.Shape(), f.Mask)}, {s.Newest, ints(f.Newest)}, {s.Keep, dense(s.Keep.Shape(), f.Keep)},
		{s.Pool, dense(s.Pool.Shape(), f.Pool)}, {s.Any, dense(s.Any.Shape(), f.Any)}}
}

func dense(shape []int, v []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
}

func ints(v []int) *tensor.Dense { return tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(v)) }
