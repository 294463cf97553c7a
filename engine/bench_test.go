package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/train"
)

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

// benchExports writes freshly initialised exports of the committed
// benchmark config (benchmarks/engine/config.yaml) once per process.
func benchExports(b *testing.B) string {
	b.Helper()
	benchOnce.Do(func() {
		cfg, err := config.Load(filepath.Join("..", "benchmarks", "engine", "config.yaml"))
		if err != nil {
			benchErr = err
			return
		}
		benchDir, benchErr = os.MkdirTemp("", "tandem-engine-bench-")
		if benchErr == nil {
			benchErr = train.InitExports(cfg, benchDir, 1)
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDir
}

// BenchmarkL1User: the user tower over full-length (L = 32) sequences.
func BenchmarkL1User(b *testing.B) {
	m, err := engine.LoadL1User(filepath.Join(benchExports(b), "l1", "all", "user.safetensors"), engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 64, 512, 2048} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			in := engine.RandomBatch(m.Dims(), n, 0, true, 1)
			out := make([]float32, n*len(m.Tasks)*m.OutDim)
			w := engine.NewWorker()
			m.Run(w, in, out) // grow the worker's buffers
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := m.Run(w, in, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "users/s")
		})
	}
}

// BenchmarkL2: U users × 500 candidates each, request-level broadcasting.
func BenchmarkL2(b *testing.B) {
	m, err := engine.LoadL2(filepath.Join(benchExports(b), "l2_home_feed.safetensors"), engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range []int{1, 8} {
		b.Run(fmt.Sprintf("%dx500", u), func(b *testing.B) {
			in := engine.RandomBatch(m.Dims(), u, u*500, true, 2)
			nt := len(m.Tasks)
			logits, probs := make([]float32, in.N*nt), make([]float32, in.N*nt)
			w := engine.NewWorker()
			m.Run(w, in, logits, probs)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := m.Run(w, in, logits, probs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(in.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkL1Ad: the ad tower (the refresh job's inner loop).
func BenchmarkL1Ad(b *testing.B) {
	m, err := engine.LoadL1Ad(filepath.Join(benchExports(b), "l1", "all", "ad.safetensors"), engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	in := engine.RandomBatch(m.Dims(), 0, 1024, true, 3)
	out := make([]float32, in.N*len(m.Tasks)*m.OutDim)
	w := engine.NewWorker()
	m.Run(w, in, out)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := m.Run(w, in, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*float64(in.N)/b.Elapsed().Seconds(), "ads/s")
}
