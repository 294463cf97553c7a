package engine_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/train"
)

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d]: pool %v, one worker %v", what, i, got[i], want[i])
		}
	}
}

// TestPoolMatchesOneWorker: splitting a batch over workers changes no bit
// of any output, for all three models.
func TestPoolMatchesOneWorker(t *testing.T) {
	d := loadData(t, smallConfig(config.ArchMMoEDCN))
	dir := t.TempDir()
	if err := train.InitExports(d.Cfg, dir, 9); err != nil {
		t.Fatal(err)
	}
	l2, err := engine.LoadL2(filepath.Join(dir, "l2_home_feed.safetensors"), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := engine.LoadL1User(filepath.Join(dir, "l1", "all", "user.safetensors"), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := engine.LoadL1Ad(filepath.Join(dir, "l1", "all", "ad.safetensors"), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := engine.NewPool(3)
	defer p.Close()
	w := engine.NewWorker()
	nt, od := len(l2.Tasks), u.OutDim

	b := engine.RandomBatch(l2.Dims(), 7, 400, false, 1)
	l1, p1 := make([]float32, b.N*nt), make([]float32, b.N*nt)
	l3, p3 := make([]float32, b.N*nt), make([]float32, b.N*nt)
	if err := l2.Run(w, b, l1, p1); err != nil {
		t.Fatal(err)
	}
	if err := p.RunL2(l2, b, l3, p3); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "l2 logits", l3, l1)
	sameBits(t, "l2 probs", p3, p1)

	ub := engine.RandomBatch(u.Dims(), 50, 0, false, 2)
	o1, o3 := make([]float32, ub.U*nt*od), make([]float32, ub.U*nt*od)
	if err := u.Run(w, ub, o1); err != nil {
		t.Fatal(err)
	}
	if err := p.RunL1User(u, ub, o3); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "l1 user", o3, o1)

	ab := engine.RandomBatch(a.Dims(), 0, 300, false, 3)
	a1, a3 := make([]float32, ab.N*nt*od), make([]float32, ab.N*nt*od)
	if err := a.Run(w, ab, a1); err != nil {
		t.Fatal(err)
	}
	if err := p.RunL1Ad(a, ab, a3); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "l1 ad", a3, a1)

	ab.AdDense[5] = float32(math.NaN())
	if err := p.RunL1Ad(a, ab, a3); err == nil {
		t.Fatal("the pool accepted a NaN")
	}
}
