package engine_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/sim"
	"github.com/tandemml/tandem/train"
)

// tinyDir holds one tiny simulated data set shared by the tests.
var tinyDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tandem-engine-")
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

// smallConfig is a model small enough for gorgonia to run quickly, with
// every structural feature (2 experts, a gate MLP, a low-rank layer, two
// heads, one encoder layer).
func smallConfig(arch string) *config.Config {
	c := config.Default()
	c.Model.EmbedDim = 8
	c.Model.Seq.Dim = 16
	c.Model.Seq.Projection = 16
	c.Model.L2.Arch = arch
	c.Model.L2.Experts = 2
	c.Model.L2.ExpertDim = 32
	c.Model.L2.LowRank = 8
	c.Model.L2.ExpertMLP = []int{32}
	c.Model.L2.GateMLP = []int{8}
	c.Model.L2.TowerMLP = []int{16}
	c.Model.L1.User = c.Model.L2.Trunk
	c.Model.L1.User.Arch = config.ArchMMoEDCN
	if arch == config.ArchMLP {
		c.Model.L1.User.Arch = arch
		c.Model.L1.AdArch = arch
	}
	c.Model.L1.AdMLP = []int{32}
	c.Model.L1.OutDim = 8
	c.Train.Batch = 64
	return c
}

func loadData(t testing.TB, cfg *config.Config) *batch.Data {
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

// setStats gives a batch norm the data's own mean and variance (an
// untrained model has none).
func setStats(bn *batch.BN, x []float32) {
	n := len(bn.Mean)
	rows := len(x) / n
	for j := 0; j < n; j++ {
		var s, ss float64
		for r := 0; r < rows; r++ {
			v := float64(x[r*n+j])
			s += v
			ss += v * v
		}
		bn.Mean[j] = s / float64(rows)
		bn.Var[j] = ss/float64(rows) - bn.Mean[j]*bn.Mean[j]
	}
	bn.Seen = true
}

// testRows returns up to n test-day impression rows of surface s.
func testRows(d *batch.Data, s, n int) []batch.Row {
	rows := train.ImpressionRows(d, d.RequestsIn(batch.Test), []int{s})
	return rows[:min(n, len(rows))]
}

// relClose reports whether got is within tol of want, relative to
// max(|want|, 1).
func relClose(got, want float32, tol float64) bool {
	return math.Abs(float64(got)-float64(want)) <= tol*max(math.Abs(float64(want)), 1)
}

// TestL2MatchesGorgonia: the engine's logits and calibrated probabilities
// equal the training graph's forward pass within 1e-5 relative, for every
// surface's export of each architecture.
func TestL2MatchesGorgonia(t *testing.T) {
	for _, arch := range []string{config.ArchMMoEDCN, config.ArchMLP, config.ArchLogistic} {
		t.Run(arch, func(t *testing.T) {
			d := loadData(t, smallConfig(arch))
			m, err := train.NewL2(d.Cfg, d.Feat, []int{0, 1, 2}, 7)
			if err != nil {
				t.Fatal(err)
			}
			setDense(m.BN, d)
			if err := train.FitCalibration(m, d, train.ImpressionRows(d, d.RequestsIn(batch.Validation), m.Serves)); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			for s, sf := range d.Cfg.Surfaces {
				path := filepath.Join(dir, "l2_"+sf.Name+".safetensors")
				if err := train.SaveL2(path, m, s, nil); err != nil {
					t.Fatal(err)
				}
				em, err := engine.LoadL2(path, engine.Options{})
				if err != nil {
					t.Fatal(err)
				}
				rows := testRows(d, s, 200)
				want, err := train.PredictLogits(m, d, rows)
				if err != nil {
					t.Fatal(err)
				}
				var b engine.Batch
				d.EngineBatch(&b, rows, false)
				nt := len(d.Cfg.Tasks)
				logits, probs := make([]float32, len(rows)*nt), make([]float32, len(rows)*nt)
				if err := em.Run(engine.NewWorker(), &b, logits, probs); err != nil {
					t.Fatal(err)
				}
				worst := 0.0
				for r, row := range rows {
					req := &d.Requests[row.Req]
					for k, task := range d.Cfg.Tasks {
						if !batch.TrainsMatrix(d.Cfg)[s][k] {
							continue
						}
						g, w := logits[r*nt+k], want[r*nt+k]
						worst = max(worst, math.Abs(float64(g-w))/max(math.Abs(float64(w)), 1))
						if !relClose(g, w, 1e-5) {
							t.Fatalf("%s row %d task %s: engine logit %v, gorgonia %v", sf.Name, r, task, g, w)
						}
						p := m.Calib.Lookup(sf.Name, d.Cfg.ViewTypes()[req.View], task).Apply(w)
						if !relClose(probs[r*nt+k], p, 1e-5) {
							t.Fatalf("%s row %d task %s: engine p %v, gorgonia %v", sf.Name, r, task, probs[r*nt+k], p)
						}
					}
				}
				t.Logf("%s: %d rows over %d contexts, worst relative logit difference %.2g", sf.Name, len(rows), b.U, worst)
			}
		})
	}
}

// setDense sets an L2 batch norm's statistics from the data's user and ad
// dense columns.
func setDense(bn *batch.BN, d *batch.Data) {
	nu, na := len(d.Feat.UserDense), len(d.Feat.AdDense)
	u := &batch.BN{Mean: make([]float64, nu), Var: make([]float64, nu)}
	a := &batch.BN{Mean: make([]float64, na), Var: make([]float64, na)}
	setStats(u, d.UserDense)
	setStats(a, d.AdDense)
	copy(bn.Mean, append(u.Mean, a.Mean...))
	copy(bn.Var, append(u.Var, a.Var...))
	bn.Seen = true
}

func relDiff(got, want float32) float64 {
	return math.Abs(float64(got)-float64(want)) / max(math.Abs(float64(want)), 1)
}
