package retrieve_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/internal/fixture"
	"github.com/tandemml/tandem/query"
	"github.com/tandemml/tandem/reqgen"
	"github.com/tandemml/tandem/retrieve"
)

var world *fixture.World

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tandem-retrieve-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if world, err = fixture.Build(context.Background(), dir, 2); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// TestExactMatchesBruteForce recomputes Retrieve's contract from the
// catalog's arrays with plain loops in float64: among the ads the filters
// admit, the K′ best by ⟨u_click, a_click⟩, re-sorted by bid × σ(z_click),
// the best k, each with σ(z_t) for every task.
func TestExactMatchesBruteForce(t *testing.T) {
	c, err := catalog.Load(world.DB, "v1", engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := reqgen.Load(world.Data, world.Cfg, reqgen.Options{Max: 30, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Routes[0]
	nt, od := len(c.Tasks), c.OutDim
	w := engine.NewWorker()
	total := 0
	for i := range set.Requests {
		uc, err := set.User(&set.Requests[i])
		if err != nil {
			t.Fatal(err)
		}
		u, err := c.Schema.Decode(uc, 0, c)
		if err != nil {
			t.Fatal(err)
		}
		o := retrieve.Options{K: 7, KPrime: 40, Mode: retrieve.Exact, MinBid: 0.8, Products: []int{i % 2}}
		got, err := retrieve.Retrieve(c, u, o)
		if err != nil {
			t.Fatal(err)
		}
		// The user vectors, straight from the engine.
		var b engine.Batch
		c.Schema.FillUser(&b, u, c, r.User.UserDenseDefaults())
		uv := make([]float32, nt*od)
		if err := r.User.Run(w, &b, uv); err != nil {
			t.Fatal(err)
		}
		type cand struct {
			row      int32
			ip, util float64
		}
		var all []cand
		dot := func(a int32, task int) float64 {
			v := c.Vector(a, r.Pos, task)
			s := 0.0
			for j := range od {
				s += float64(uv[task*od+j]) * float64(v[j])
			}
			return s
		}
		for _, a := range r.Ads {
			if !c.Active[a] || c.Eligible[a]&(1<<u.Surface) == 0 || int(c.Product[a]) != i%2 || c.Bid[a] < 0.8 {
				continue
			}
			all = append(all, cand{row: a, ip: dot(a, 0)})
		}
		slices.SortFunc(all, func(x, y cand) int { return cmp.Compare(y.ip, x.ip) })
		all = all[:min(len(all), 40)]
		for k := range all {
			z := all[k].ip + float64(r.User.Beta(0))
			all[k].util = float64(c.Bid[all[k].row]) / (1 + math.Exp(-z))
		}
		slices.SortFunc(all, func(x, y cand) int { return cmp.Compare(y.util, x.util) })
		want := all[:min(len(all), 7)]
		total += len(want)
		if len(got) != len(want) {
			t.Fatalf("request %d: %d hits, brute force %d", i, len(got), len(want))
		}
		for k := range want {
			if got[k].Row != want[k].row && math.Abs(got[k].Utility-want[k].util) > 1e-6*want[k].util {
				t.Fatalf("request %d rank %d: ad row %d (utility %v), brute force row %d (%v)", i, k, got[k].Row, got[k].Utility, want[k].row, want[k].util)
			}
			if math.Abs(got[k].Utility-want[k].util) > 1e-5*math.Abs(want[k].util)+1e-9 {
				t.Fatalf("request %d rank %d: utility %v, brute force %v", i, k, got[k].Utility, want[k].util)
			}
			for task := range nt {
				p := 1 / (1 + math.Exp(-(dot(got[k].Row, task) + float64(r.User.Beta(task)))))
				if math.Abs(float64(got[k].Scores[task])-p) > 1e-5 {
					t.Fatalf("request %d rank %d task %d: score %v, brute force %v", i, k, task, got[k].Scores[task], p)
				}
			}
		}
	}
	if total < 100 {
		t.Fatalf("only %d hits compared", total)
	}
}

func TestRetrieveRejectsBadK(t *testing.T) {
	c, err := catalog.Load(world.DB, "v1", engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := &query.User{}
	if _, err := retrieve.Retrieve(c, u, retrieve.Options{K: 0}); err == nil {
		t.Fatal("k = 0 accepted")
	}
	if _, err := retrieve.ParseMode("annoy"); err == nil {
		t.Fatal("an unknown mode parsed")
	}
}
