package train

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/sim"
)

// tinyDir holds one tiny simulated data set shared by the tests.
var tinyDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tandem-train-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tinyDir = filepath.Join(dir, "tiny")
	if _, err := sim.Generate(context.Background(), config.Default(), sim.Options{Dir: tinyDir, Scale: "tiny", Seed: 1, Workers: 2}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tinyConfig is a small model (widths ≤ 32) that trains in seconds.
func tinyConfig() *config.Config {
	c := config.Default()
	c.Model.EmbedDim = 8
	c.Model.Seq.Dim = 16
	c.Model.Seq.Projection = 16
	c.Model.L2.Experts = 2
	c.Model.L2.ExpertDim = 32
	c.Model.L2.LowRank = 8
	c.Model.L2.ExpertMLP = []int{32}
	c.Model.L2.GateMLP = []int{8}
	c.Model.L2.TowerMLP = []int{16}
	c.Train.Batch = 32
	c.Train.WarmupSteps = 10
	return c
}

func loadTiny(t testing.TB, cfg *config.Config) *batch.Data {
	t.Helper()
	dc, man, err := batch.DataConfig(tinyDir, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	d, err := batch.Load(tinyDir, dc, man)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newTiny(t testing.TB, d *batch.Data, seed uint64) *L2 {
	t.Helper()
	m, err := NewL2(d.Cfg, d.Feat, []int{0, 1, 2}, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameWeights(t *testing.T, a, b *L2) {
	t.Helper()
	for _, p := range a.W.Params() {
		if !slices.Equal(p.Data(), b.W.Get(p.Name).Data()) {
			t.Fatalf("dense parameter %s differs", p.Name)
		}
	}
	bt := b.S.Tables()
	for i, tb := range a.S.Tables() {
		if !slices.Equal(tb.W, bt[i].W) {
			t.Fatalf("table %s differs", tb.Name)
		}
	}
	if !slices.Equal(a.BN.Mean, b.BN.Mean) || !slices.Equal(a.BN.Var, b.BN.Var) {
		t.Fatal("batch-norm statistics differ")
	}
}

// TestTrainDeterministic: the same seed gives bit-identical weights.
func TestTrainDeterministic(t *testing.T) {
	d := loadTiny(t, tinyConfig())
	var ms [2]*L2
	for i := range ms {
		ms[i] = newTiny(t, d, 3)
		rep, err := TrainL2(context.Background(), ms[i], d, Options{Seed: 3, StopAfterSteps: 6})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Interrupted || rep.Steps != 0 && rep.Steps != 6 {
			t.Fatalf("report %+v", rep)
		}
	}
	sameWeights(t, ms[0], ms[1])
	other := newTiny(t, d, 4)
	if slices.Equal(other.W.Params()[0].Data(), ms[0].W.Params()[0].Data()) {
		t.Fatal("another seed gave the same initial weights")
	}
}

// TestResumeGivesSameWeights: a run interrupted after k steps and resumed
// from its checkpoint ends with the same weights as an uninterrupted run.
func TestResumeGivesSameWeights(t *testing.T) {
	cfg := tinyConfig()
	cfg.Train.Epochs = 2
	d := loadTiny(t, cfg)
	// Few training rows per epoch keep the run short: restrict to search.
	full := newTiny(t, d, 5)
	total := 6
	if _, err := TrainL2(context.Background(), full, d, Options{Seed: 5, StopAfterSteps: total}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "resume.safetensors")
	part := newTiny(t, d, 5)
	rep, err := TrainL2(context.Background(), part, d, Options{Seed: 5, StopAfterSteps: 3, ResumePath: path})
	if err != nil || !rep.Interrupted {
		t.Fatalf("first half: %v %+v", err, rep)
	}
	resumed := newTiny(t, d, 99) // different init: everything must come from the checkpoint
	if _, err := TrainL2(context.Background(), resumed, d, Options{Seed: 5, StopAfterSteps: total - 3, ResumePath: path}); err != nil {
		t.Fatal(err)
	}
	sameWeights(t, full, resumed)
}

// TestResumeRejectsOtherConfig: a checkpoint from another config is refused.
func TestResumeRejectsOtherConfig(t *testing.T) {
	d := loadTiny(t, tinyConfig())
	path := filepath.Join(t.TempDir(), "resume.safetensors")
	if _, err := TrainL2(context.Background(), newTiny(t, d, 1), d, Options{Seed: 1, StopAfterSteps: 1, ResumePath: path}); err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig()
	cfg.Train.LR *= 2
	d2 := loadTiny(t, cfg)
	_, err := TrainL2(context.Background(), newTiny(t, d2, 1), d2, Options{Seed: 1, StopAfterSteps: 1, ResumePath: path})
	if err == nil {
		t.Fatal("resume with another config succeeded")
	}
}

// TestPackKeepsRequestsWhole checks the batch packer's invariants.
func TestPackKeepsRequestsWhole(t *testing.T) {
	d := loadTiny(t, tinyConfig())
	rows := ImpressionRows(d, d.RequestsIn(batch.Train), []int{0, 1, 2})
	const n, u = 16, 5
	batches := Pack(d, rows, n, u, false)
	got := 0
	for _, b := range batches {
		if len(b) == 0 || len(b) > n {
			t.Fatalf("batch of %d rows", len(b))
		}
		ctx := map[[2]int64]bool{}
		for _, r := range b {
			ctx[batch.ContextKey(&d.Requests[r.Req])] = true
		}
		if len(ctx) > u {
			t.Fatalf("batch spans %d contexts, cap %d", len(ctx), u)
		}
		got += len(b)
	}
	if got != len(rows) {
		t.Fatalf("packed %d rows of %d", got, len(rows))
	}
	// No request is split across batches (every request has ≤ n rows).
	seen := map[int32]int{}
	for bi, b := range batches {
		for _, r := range b {
			if prev, ok := seen[r.Req]; ok && prev != bi {
				t.Fatalf("request %d split across batches %d and %d", r.Req, prev, bi)
			}
			seen[r.Req] = bi
		}
	}
}

// TestExportRoundTrip: a saved surface export loads back to the same
// logits and calibration.
func TestExportRoundTrip(t *testing.T) {
	d := loadTiny(t, tinyConfig())
	m := newTiny(t, d, 2)
	if _, err := TrainL2(context.Background(), m, d, Options{Seed: 2, StopAfterSteps: 3}); err != nil {
		t.Fatal(err)
	}
	val := ImpressionRows(d, d.RequestsIn(batch.Validation), m.Serves)
	if err := FitCalibration(m, d, val); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for s, sf := range d.Cfg.Surfaces {
		path := filepath.Join(dir, "l2_"+sf.Name+".safetensors")
		if err := SaveL2(path, m, s, map[string]int{"steps": 3}); err != nil {
			t.Fatal(err)
		}
		back, err := LoadL2(path)
		if err != nil {
			t.Fatal(err)
		}
		rows := ImpressionRows(d, d.RequestsIn(batch.Test), []int{s})
		rows = rows[:min(len(rows), 100)]
		z1, err := PredictLogits(m, d, rows)
		if err != nil {
			t.Fatal(err)
		}
		z2, err := PredictLogits(back, d, rows)
		if err != nil {
			t.Fatal(err)
		}
		nt := len(d.Cfg.Tasks)
		for i := range rows {
			for k := 0; k < nt; k++ {
				if !m.Spec.Trains[s][k] {
					continue
				}
				a, b := z1[i*nt+k], z2[i*nt+k]
				if d := a - b; d > 1e-4 || d < -1e-4 {
					t.Fatalf("%s row %d task %d: logit %v before save, %v after", sf.Name, i, k, a, b)
				}
			}
		}
		for _, v := range sf.ViewTypes {
			for _, task := range sf.Tasks {
				if m.Calib.Lookup(sf.Name, v.Name, task) != back.Calib.Lookup(sf.Name, v.Name, task) {
					p, q := m.Calib.Lookup(sf.Name, v.Name, task), back.Calib.Lookup(sf.Name, v.Name, task)
					if float32(p.A) != float32(q.A) || float32(p.B) != float32(q.B) {
						t.Fatalf("calibration %s/%s/%s: %v vs %v", sf.Name, v.Name, task, p, q)
					}
				}
			}
		}
	}
}

// TestAdagradTrains: the Adagrad optimiser moves dense weights and table
// rows and keeps the loss finite.
func TestAdagradTrains(t *testing.T) {
	cfg := tinyConfig()
	cfg.Train.Optimizer = config.OptAdagrad
	d := loadTiny(t, cfg)
	m := newTiny(t, d, 8)
	before := m.W.Clone()
	tables := map[string][]float32{}
	for _, tb := range m.S.Tables() {
		tables[tb.Name] = slices.Clone(tb.W)
	}
	if _, err := TrainL2(context.Background(), m, d, Options{Seed: 8, StopAfterSteps: 4}); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, p := range m.W.Params() {
		if !slices.Equal(p.Data(), before.Get(p.Name).Data()) {
			moved++
		}
	}
	if moved < len(m.W.Params())/2 {
		t.Fatalf("only %d of %d dense parameters moved", moved, len(m.W.Params()))
	}
	if slices.Equal(tables["l2.emb.campaign"], m.S.AdCat[1].W) {
		t.Fatal("the campaign table did not move")
	}
}

// TestRunFailureLeavesNoVersion: a run that fails after creating its
// version directory removes it and leaves CURRENT alone.
func TestRunFailureLeavesNoVersion(t *testing.T) {
	md := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, RunOptions{Data: tinyDir, ModelDir: md, Config: tinyConfig(), Model: "l2", Seed: 1, Options: Options{Seed: 1}})
	if err == nil {
		t.Fatal("a cancelled run succeeded")
	}
	entries, _ := os.ReadDir(md)
	if len(entries) != 0 {
		t.Fatalf("a failed run left %v behind", entries)
	}
}
