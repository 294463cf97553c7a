package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/checkpoint"
)

// TestLoadRejectsBadExports: truncated files, a missing tensor, a wrong
// shape or the wrong kind of file are errors naming the file, never a
// panic or a silently half-loaded model.
func TestLoadRejectsBadExports(t *testing.T) {
	d := loadTiny(t, tinyConfig())
	m := newTiny(t, d, 1)
	val := ImpressionRows(d, d.RequestsIn(batch.Validation), m.Serves)
	if err := FitCalibration(m, d, val); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "l2_home_feed.safetensors")
	if err := SaveL2(good, m, 0, nil); err != nil {
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
		ts = edit(ts, meta)
		p := filepath.Join(dir, name)
		if err := checkpoint.Write(p, ts, meta); err != nil {
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
		"missing tensor": {rewrite("missing.safetensors", func(ts []checkpoint.Tensor, _ map[string]string) []checkpoint.Tensor {
			out := ts[:0]
			for _, x := range ts {
				if x.Name != "l2.ta.q.weight" {
					out = append(out, x)
				}
			}
			return out
		}), "l2.ta.q.weight"},
		"wrong shape": {rewrite("shape.safetensors", func(ts []checkpoint.Tensor, _ map[string]string) []checkpoint.Tensor {
			for i := range ts {
				if ts[i].Name == "l2.bn.running_mean" {
					ts[i].Shape, ts[i].Data = []int{2}, ts[i].Data[:2]
				}
			}
			return ts
		}), "l2.bn.running_mean"},
		"not l2": {rewrite("kind.safetensors", func(ts []checkpoint.Tensor, meta map[string]string) []checkpoint.Tensor {
			meta["tandem.model"] = strings.Replace(meta["tandem.model"], `"kind":"l2"`, `"kind":"l1.user"`, 1)
			return ts
		}), "not an L2 export"},
		"bad config": {rewrite("config.safetensors", func(ts []checkpoint.Tensor, meta map[string]string) []checkpoint.Tensor {
			meta["tandem.config"] = "{"
			return ts
		}), "tandem.config"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadL2(c.path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(c.path)) {
				t.Fatalf("error %v; want one naming %q and the file", err, c.want)
			}
		})
	}
	if _, err := LoadL1(good, good); err == nil {
		t.Fatal("an L2 export loaded as L1 towers")
	}
}
