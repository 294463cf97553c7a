package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemml/tandem/checkpoint"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/train"
)

// TestLoadRejectsBadExports: a truncated file, a missing or extra tensor, a
// wrong shape, the wrong kind of export or a broken config are errors
// naming the file, never a panic or a half-loaded model.
func TestLoadRejectsBadExports(t *testing.T) {
	d := loadData(t, smallConfig(config.ArchMMoEDCN))
	m, err := train.NewL2(d.Cfg, d.Feat, []int{0, 1, 2}, 5)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "l2_home_feed.safetensors")
	if err := train.SaveL2(good, m, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.LoadL2(good, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.Read(good)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(name string, edit func(ts []checkpoint.Tensor, meta map[string]string) []checkpoint.Tensor) string {
		var ts []checkpoint.Tensor
		for _, n := range f.Names {
			ts = append(ts, f.Tensors[n])
		}
		meta := map[string]string{}
		for k, v := range f.Meta {
			meta[k] = v
		}
		p := filepath.Join(dir, name)
		if err := checkpoint.Write(p, edit(ts, meta), meta); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b, _ := os.ReadFile(good)
	trunc := filepath.Join(dir, "truncated.safetensors")
	os.WriteFile(trunc, b[:len(b)/2], 0o644)
	cases := map[string]struct {
		path, want string
	}{
		"truncated": {trunc, "truncated.safetensors"},
		"missing": {rewrite("missing.safetensors", func(ts []checkpoint.Tensor, _ map[string]string) []checkpoint.Tensor {
			for i, x := range ts {
				if x.Name == "l2.ta.q.weight" {
					return append(ts[:i], ts[i+1:]...)
				}
			}
			return ts
		}), "l2.ta.q.weight"},
		"extra": {rewrite("extra.safetensors", func(ts []checkpoint.Tensor, _ map[string]string) []checkpoint.Tensor {
			return append(ts, checkpoint.Tensor{Name: "l2.trunk.expert.9.in.weight", DType: checkpoint.F32, Shape: []int{1}, Data: []float32{1}})
		}), "l2.trunk.expert.9.in.weight"},
		"shape": {rewrite("shape.safetensors", func(ts []checkpoint.Tensor, _ map[string]string) []checkpoint.Tensor {
			for i, x := range ts {
				if x.Name == "l2.seq.proj.out.bias" {
					ts[i] = checkpoint.Tensor{Name: x.Name, DType: checkpoint.F32, Shape: []int{3}, Data: []float32{1, 2, 3}}
				}
			}
			return ts
		}), "l2.seq.proj.out.bias"},
		"kind": {rewrite("kind.safetensors", func(ts []checkpoint.Tensor, meta map[string]string) []checkpoint.Tensor {
			meta["tandem.model"] = strings.Replace(meta["tandem.model"], `"kind":"l2"`, `"kind":"l1.user"`, 1)
			return ts
		}), "l1.user"},
		"config": {rewrite("config.safetensors", func(ts []checkpoint.Tensor, meta map[string]string) []checkpoint.Tensor {
			meta["tandem.config"] = "{not json"
			return ts
		}), "tandem.config"},
	}
	for name, c := range cases {
		_, err := engine.LoadL2(c.path, engine.Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming %q", name, err, c.want)
		}
	}
	if _, err := engine.LoadL1User(good, engine.Options{}); err == nil || !strings.Contains(err.Error(), "l1.user") {
		t.Errorf("an L2 export loaded as an L1 user tower: %v", err)
	}
	if _, err := engine.LoadL1Ad(filepath.Join(dir, "absent.safetensors"), engine.Options{}); err == nil {
		t.Error("a missing file loaded")
	}
}
