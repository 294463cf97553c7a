package engine_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
)

// TestL1TraceMatchesRun: a traced run writes exactly Run's outputs, its
// head activations are those outputs, the sequence activations hold one
// row per real event, and every layer the plan names is traced.
func TestL1TraceMatchesRun(t *testing.T) {
	for _, arch := range []string{config.ArchMMoEDCN, config.ArchMLP} {
		t.Run(arch, func(t *testing.T) {
			d, _, up, _ := exportL1(t, arch, 5)
			eu, err := engine.LoadL1User(up, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			reqs := d.RequestsIn(batch.Test)[:40]
			rows := make([]batch.Row, len(reqs))
			for i, q := range reqs {
				rows[i] = batch.Row{Req: q, Imp: -1}
			}
			var b engine.Batch
			d.EngineBatch(&b, rows, true)
			nt, od := len(d.Cfg.Tasks), d.Cfg.Model.L1.OutDim
			want := make([]float32, b.U*nt*od)
			w := engine.NewWorker()
			if err := eu.Run(w, &b, want); err != nil {
				t.Fatal(err)
			}
			events := 0
			for _, n := range b.SeqLen[:b.U] {
				events += int(n)
			}
			got := make([]float32, len(want))
			seen := map[string][]float32{}
			var names []string
			err = eu.Trace(w, &b, got, func(name string, r, c int, v []float32) {
				if _, dup := seen[name]; dup {
					t.Errorf("%s traced twice", name)
				}
				if len(v) != r*c {
					t.Errorf("%s: %d values for %d × %d", name, len(v), r, c)
				}
				wantRows := b.U
				if strings.HasPrefix(name, "seq.tokens") || name == "seq.token" || name == "seq.position" || strings.HasPrefix(name, "seq.layer.") {
					wantRows = events
				}
				if r != wantRows {
					t.Errorf("%s: %d rows, want %d", name, r, wantRows)
				}
				seen[name] = v
				names = append(names, name)
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatal("traced run's output differs from Run's")
			}
			for k := range nt {
				if !eu.HasTask(k) {
					continue
				}
				h := seen[fmt.Sprintf("head.%d", k)]
				for c := range b.U {
					if !slices.Equal(h[c*od:(c+1)*od], want[(c*nt+k)*od:(c*nt+k+1)*od]) {
						t.Fatalf("head.%d row %d is not the output", k, c)
					}
				}
			}
			must := []string{"seq.tokens", "seq.token", "seq.position", "seq.layer.0.qkv", "seq.layer.0.ln2",
				"seq.summary", "seq.pool", "seq.cross.combine", "seq.proj", "user.row"}
			if arch == config.ArchMMoEDCN {
				must = append(must, "trunk.first", "trunk.expert.0.cross.combine", "trunk.gate.0.out", "trunk.gate.0.combine")
			} else {
				must = append(must, "trunk.mlp.0")
			}
			for _, n := range must {
				if seen[n] == nil {
					t.Errorf("%s not traced (traced: %v)", n, names)
				}
			}
			// Tracing leaves the worker untraced.
			if err := eu.Run(w, &b, got); err != nil || !slices.Equal(got, want) {
				t.Fatal("run after trace differs")
			}
		})
	}
}
