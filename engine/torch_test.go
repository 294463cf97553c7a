package engine_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/train"
)

// torchref returns the command prefix that runs tools/torchref, skipping
// the test when PyTorch is absent (a failure when CI is set: CI installs
// it).
func torchref(t *testing.T) []string {
	t.Helper()
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import torch, numpy").CombinedOutput(); err != nil {
		msg := "PyTorch parity needs Debian's python3-torch and python3-numpy (run with " + py + "): " + string(out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return []string{py, filepath.Join("..", "tools", "torchref", "torchref.py")}
}

func runTorch(t *testing.T, ref []string, args ...string) {
	t.Helper()
	cmd := exec.Command(ref[0], append(ref[1:], args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("torchref %v: %v\n%s", args, err, out)
	}
}

// compare checks got against PyTorch's want within 1e-4 relative.
func compare(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, PyTorch gave %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		worst = max(worst, relDiff(got[i], want[i]))
		if !relClose(got[i], want[i], 1e-4) {
			t.Fatalf("%s[%d]: engine %v, PyTorch %v", what, i, got[i], want[i])
		}
	}
	t.Logf("%s: %d values, worst relative difference %.2g", what, len(got), worst)
}

// checkAgainstTorch runs the engine and tools/torchref on the same inputs
// for the home_feed L2 and the L1 towers of dir, on random inputs and,
// when d is set, on simulator rows.
func checkAgainstTorch(t *testing.T, ref []string, dir string, d *batch.Data) {
	tmp := t.TempDir()
	w := engine.NewWorker()
	l2, err := engine.LoadL2(filepath.Join(dir, "l2_home_feed.safetensors"), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nt := len(l2.Tasks)
	inputs := map[string]*engine.Batch{"random": engine.RandomBatch(l2.Dims(), 9, 60, false, 4)}
	if d != nil {
		var b engine.Batch
		d.EngineBatch(&b, testRows(d, 0, 120), false)
		inputs["simulator"] = &b
	}
	for name, b := range inputs {
		in, out := filepath.Join(tmp, name+".l2.in"), filepath.Join(tmp, name+".l2.out")
		if err := engine.WriteInputs(in, b, l2.Dims(), "l2"); err != nil {
			t.Fatal(err)
		}
		runTorch(t, ref, "run", "--export", filepath.Join(dir, "l2_home_feed.safetensors"), "--inputs", in, "--out", out)
		logits, probs := make([]float32, b.N*nt), make([]float32, b.N*nt)
		if err := l2.Run(w, b, logits, probs); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"logits", "probs"} {
			want, err := engine.ReadOutputs(out, k, b.N, nt)
			if err != nil {
				t.Fatal(err)
			}
			got := logits
			if k == "probs" {
				got = probs
			}
			compare(t, name+" l2 "+k, got, want)
		}
	}
	up, ap := filepath.Join(dir, "l1", "all", "user.safetensors"), filepath.Join(dir, "l1", "all", "ad.safetensors")
	u, err := engine.LoadL1User(up, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := engine.LoadL1Ad(ap, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	od := u.OutDim
	ub := engine.RandomBatch(u.Dims(), 11, 0, false, 5)
	ab := engine.RandomBatch(a.Dims(), 0, 50, false, 6)
	if d != nil {
		reqs := d.RequestsIn(batch.Test)[:40]
		rows := make([]batch.Row, len(reqs))
		for i, q := range reqs {
			rows[i] = batch.Row{Req: q, Imp: -1, AdRow: int32(i * 13 % len(d.AdIDs))}
		}
		ub, ab = &engine.Batch{}, &engine.Batch{}
		d.EngineBatch(ub, rows, true)
		d.EngineBatch(ab, rows, false)
	}
	for _, side := range []struct {
		kind, export string
		b            *engine.Batch
		n            int
		run          func(out []float32) error
	}{
		{"l1.user", up, ub, ub.U, func(out []float32) error { return u.Run(w, ub, out) }},
		{"l1.ad", ap, ab, ab.N, func(out []float32) error { return a.Run(w, ab, out) }},
	} {
		dims := u.Dims()
		if side.kind == "l1.ad" {
			dims = a.Dims()
		}
		in, out := filepath.Join(tmp, side.kind+".in"), filepath.Join(tmp, side.kind+".out")
		if err := engine.WriteInputs(in, side.b, dims, side.kind); err != nil {
			t.Fatal(err)
		}
		runTorch(t, ref, "run", "--export", side.export, "--inputs", in, "--out", out)
		got := make([]float32, side.n*nt*od)
		if err := side.run(got); err != nil {
			t.Fatal(err)
		}
		prefix := "user."
		if side.kind == "l1.ad" {
			prefix = "ad."
		}
		for k, task := range u.Tasks {
			if !u.HasTask(k) {
				continue
			}
			want, err := engine.ReadOutputs(out, prefix+task, side.n, od)
			if err != nil {
				t.Fatal(err)
			}
			g := make([]float32, 0, side.n*od)
			for r := 0; r < side.n; r++ {
				g = append(g, got[(r*nt+k)*od:(r*nt+k+1)*od]...)
			}
			compare(t, side.kind+" "+prefix+task, g, want)
		}
	}
}

// TestMatchesPyTorch: the engine equals the independent PyTorch
// implementation (tools/torchref) within 1e-4 relative on random inputs
// and simulator rows, for the default architecture and the MLP and
// logistic baselines (the L1 towers of the logistic run are MMoE-DCN).
func TestMatchesPyTorch(t *testing.T) {
	ref := torchref(t)
	for _, arch := range []string{config.ArchMMoEDCN, config.ArchMLP, config.ArchLogistic} {
		t.Run(arch, func(t *testing.T) {
			d := loadData(t, smallConfig(arch))
			dir := t.TempDir()
			if err := train.InitExports(d.Cfg, dir, 21); err != nil {
				t.Fatal(err)
			}
			checkAgainstTorch(t, ref, dir, d)
		})
	}
}

// TestServesPyTorchWeights: exports whose weights PyTorch initialised and
// wrote load in the engine and give PyTorch's outputs.
func TestServesPyTorchWeights(t *testing.T) {
	ref := torchref(t)
	d := loadData(t, smallConfig(config.ArchMMoEDCN))
	src, dst := t.TempDir(), t.TempDir()
	if err := train.InitExports(d.Cfg, src, 22); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dst, "l1", "all"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"l2_home_feed.safetensors", "l1/all/user.safetensors", "l1/all/ad.safetensors"} {
		runTorch(t, ref, "init", "--like", filepath.Join(src, f), "--out", filepath.Join(dst, f), "--seed", "3")
	}
	checkAgainstTorch(t, ref, dst, nil)
}
