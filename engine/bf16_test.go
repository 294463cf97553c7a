package engine_test

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/train"
)

// TestBF16WithinBudget: bf16 storage of the big matmul blocks moves L2
// logits by at most 0.05 at the 99th percentile (SYSTEM.md §2) on
// simulator rows, and holds less memory.
func TestBF16WithinBudget(t *testing.T) {
	d := loadData(t, smallConfig(config.ArchMMoEDCN))
	dir := t.TempDir()
	if err := train.InitExports(d.Cfg, dir, 31); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "l2_home_feed.safetensors")
	f32, err := engine.LoadL2(path, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b16, err := engine.LoadL2(path, engine.Options{BF16: true})
	if err != nil {
		t.Fatal(err)
	}
	if b16.WeightBytes() >= f32.WeightBytes()*3/4 {
		t.Errorf("bf16 weights take %d bytes, fp32 %d", b16.WeightBytes(), f32.WeightBytes())
	}
	var b engine.Batch
	d.EngineBatch(&b, testRows(d, 0, 500), false)
	nt := len(f32.Tasks)
	w := engine.NewWorker()
	z32, p := make([]float32, b.N*nt), make([]float32, b.N*nt)
	z16 := make([]float32, b.N*nt)
	if err := f32.Run(w, &b, z32, p); err != nil {
		t.Fatal(err)
	}
	if err := b16.Run(w, &b, z16, p); err != nil {
		t.Fatal(err)
	}
	diff := make([]float64, len(z32))
	same := 0
	for i := range z32 {
		diff[i] = math.Abs(float64(z16[i] - z32[i]))
		if z16[i] == z32[i] {
			same++
		}
	}
	slices.Sort(diff)
	p99 := diff[len(diff)*99/100]
	t.Logf("p99 |Δlogit| %.3g, max %.3g; memory %d → %d bytes", p99, diff[len(diff)-1], f32.WeightBytes(), b16.WeightBytes())
	if p99 > 0.05 {
		t.Fatalf("p99 |Δlogit| = %.3g, budget 0.05", p99)
	}
	if same > len(z32)/2 {
		t.Fatalf("%d of %d logits unchanged: bf16 is not in effect", same, len(z32))
	}
}
