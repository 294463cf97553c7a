package train

import (
	"os"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
)

// BenchmarkL2TrainStep measures one optimisation step of the default L2
// (L = 32, batch 256) on tiny-scale rows; examples/s is reported.
// TANDEM_BENCH_ARCH=mlp|logistic measures a baseline's trunk instead.
func BenchmarkL2TrainStep(b *testing.B) {
	c := config.Default()
	if a := os.Getenv("TANDEM_BENCH_ARCH"); a != "" {
		c.Model.L2.Arch = a
	}
	d := loadTiny(b, c)
	m := newTiny(b, d, 1)
	tr := newTrainer(m, d, Options{Seed: 1})
	if err := tr.build(); err != nil {
		b.Fatal(err)
	}
	defer tr.r.close()
	rows := ImpressionRows(d, d.RequestsIn(batch.Train), m.Serves)
	batches := Pack(d, rows, tr.n, tr.u, false)
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		bt := batches[i%len(batches)]
		if _, err := tr.step(bt); err != nil {
			b.Fatal(err)
		}
		n += len(bt)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "examples/s")
}

// BenchmarkL1TrainStep measures one optimisation step of the default L1
// (impression labels, L = 32, batch 256) on tiny-scale rows.
func BenchmarkL1TrainStep(b *testing.B) {
	d := loadTiny(b, config.Default())
	pairs, err := RoutePairs(d.Cfg, false)
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewL1(d.Cfg, d.Feat, "all", pairs["all"], 1)
	if err != nil {
		b.Fatal(err)
	}
	tr := newTrainer(m, d, Options{Seed: 1})
	if err := tr.build(); err != nil {
		b.Fatal(err)
	}
	defer tr.r.close()
	batches := Pack(d, m.L1Rows(d, d.RequestsIn(batch.Train)), tr.n, tr.u, true)
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		bt := batches[i%len(batches)]
		if _, err := tr.step(bt); err != nil {
			b.Fatal(err)
		}
		n += len(bt)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "examples/s")
}
