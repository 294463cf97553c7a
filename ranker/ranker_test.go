package ranker_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/internal/fixture"
	"github.com/tandemml/tandem/modeldir"
	"github.com/tandemml/tandem/ranker"
	"github.com/tandemml/tandem/reqgen"
)

var world *fixture.World

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tandem-ranker-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if world, err = fixture.Build(context.Background(), dir, 1); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// TestRankMatchesOfflineScoring checks the whole serving path — a
// UserContext built by reqgen, decoded by query, ads from the snapshot,
// scored by Rank — against the offline path the models are evaluated on
// (batch.EngineBatch over the data directory, position 0): the same
// calibrated probabilities, bit for bit, for every test request's
// impressions.
func TestRankMatchesOfflineScoring(t *testing.T) {
	cat, err := catalog.Load(world.DB, "v1", engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	models, err := ranker.Load(world.Models, "", engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	man, err := data.ReadManifest(world.Data)
	if err != nil {
		t.Fatal(err)
	}
	d, err := batch.Load(world.Data, world.Cfg, man)
	if err != nil {
		t.Fatal(err)
	}
	set, err := reqgen.Load(world.Data, world.Cfg, reqgen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]int32{}
	for i, r := range d.Requests {
		byID[r.ID] = int32(i)
	}
	vdir, _, err := modeldir.LoadCurrent(world.Models)
	if err != nil {
		t.Fatal(err)
	}
	offline := map[int]*engine.L2{}
	for s, sf := range world.Cfg.Surfaces {
		if offline[s], err = engine.LoadL2(filepath.Join(vdir, modeldir.L2File(sf.Name)), engine.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	w := engine.NewWorker()
	var b engine.Batch
	checked := 0
	// Every other request is split over three workers: still bit-identical.
	splitPool := engine.NewPool(3)
	defer splitPool.Close()
	for i := range set.Requests {
		if checked >= 60 {
			break
		}
		r := &set.Requests[i]
		ri, ok := byID[r.RequestID]
		if !ok {
			t.Fatalf("request %d is not in batch.Data", r.RequestID)
		}
		req := &d.Requests[ri]
		var rows []batch.Row
		var ids []int64
		for k := req.First; k < req.First+req.Count; k++ {
			rows = append(rows, batch.Row{Req: ri, Imp: k, AdRow: d.Imps[k].AdRow, Position: 0})
			ids = append(ids, d.AdIDs[d.Imps[k].AdRow])
		}
		if len(rows) == 0 {
			continue
		}
		d.EngineBatch(&b, rows, false)
		l2 := offline[int(req.Surface)]
		nt := len(l2.Tasks)
		logits, probs := make([]float32, len(rows)*nt), make([]float32, len(rows)*nt)
		if err := l2.Run(w, &b, logits, probs); err != nil {
			t.Fatal(err)
		}
		uc, err := set.User(r)
		if err != nil {
			t.Fatal(err)
		}
		u, err := cat.Schema.Decode(uc, 0, cat)
		if err != nil {
			t.Fatal(err)
		}
		var pool *engine.Pool
		if checked%2 == 1 {
			pool = splitPool
		}
		res, err := models.Rank(cat, u, ids, pool)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Unknown) != 0 || len(res.Ads) != len(ids) {
			t.Fatalf("request %d: %d ranked, unknown %v, want %d", r.RequestID, len(res.Ads), res.Unknown, len(ids))
		}
		for _, got := range res.Ads {
			j := -1
			for k, row := range rows {
				if row.AdRow == d.AdRow[cat.AdIDs[got.Row]] {
					j = k
				}
			}
			for q, task := range res.Tasks {
				want := probs[j*nt+task]
				if math.Float32bits(got.Probs[q]) != math.Float32bits(want) {
					t.Fatalf("request %d ad %d task %s: served p = %v, offline %v", r.RequestID, cat.AdIDs[got.Row], world.Cfg.Tasks[task], got.Probs[q], want)
				}
			}
		}
		for k := 1; k < len(res.Ads); k++ {
			if res.Ads[k].Utility > res.Ads[k-1].Utility {
				t.Fatalf("request %d: not sorted by utility at %d", r.RequestID, k)
			}
		}
		checked++
	}
	if checked < 20 {
		t.Fatalf("only %d requests checked", checked)
	}
}

func TestRankUnknownIDs(t *testing.T) {
	cat, err := catalog.Load(world.DB, "v1", engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	models, err := ranker.Load(world.Models, "", engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := reqgen.Load(world.Data, world.Cfg, reqgen.Options{Max: 1, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	uc, err := set.User(&set.Requests[0])
	if err != nil {
		t.Fatal(err)
	}
	u, err := cat.Schema.Decode(uc, 0, cat)
	if err != nil {
		t.Fatal(err)
	}
	res, err := models.Rank(cat, u, []int64{-5, cat.AdIDs[0], 1 << 60}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ads) != 1 || len(res.Unknown) != 2 || res.Unknown[0] != -5 {
		t.Fatalf("got %d ads, unknown %v", len(res.Ads), res.Unknown)
	}
	if _, err := models.Rank(cat, u, []int64{-5}, nil); err != ranker.ErrNoneKnown {
		t.Fatalf("only unknown ids: err %v, want ErrNoneKnown", err)
	}
}

// TestRankSplitOverPoolIsIdentical ranks 500 candidates on one worker and
// split over a pool: the same order and probabilities, bit for bit.
func TestRankSplitOverPoolIsIdentical(t *testing.T) {
	cat, err := catalog.Load(world.DB, "v1", engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	models, err := ranker.Load(world.Models, "", engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := reqgen.Load(world.Data, world.Cfg, reqgen.Options{Max: 5, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	pool := engine.NewPool(3)
	defer pool.Close()
	ids := cat.AdIDs[100:600]
	for i := range set.Requests {
		uc, err := set.User(&set.Requests[i])
		if err != nil {
			t.Fatal(err)
		}
		u, err := cat.Schema.Decode(uc, 0, cat)
		if err != nil {
			t.Fatal(err)
		}
		one, err := models.Rank(cat, u, ids, nil)
		if err != nil {
			t.Fatal(err)
		}
		split, err := models.Rank(cat, u, ids, pool)
		if err != nil {
			t.Fatal(err)
		}
		for k := range one.Ads {
			a, b := one.Ads[k], split.Ads[k]
			if a.Row != b.Row || a.Utility != b.Utility {
				t.Fatalf("request %d rank %d: ad row %d (%v) alone, %d (%v) split", i, k, a.Row, a.Utility, b.Row, b.Utility)
			}
			for q := range a.Probs {
				if math.Float32bits(a.Probs[q]) != math.Float32bits(b.Probs[q]) {
					t.Fatalf("request %d ad row %d: p %v alone, %v split", i, a.Row, a.Probs[q], b.Probs[q])
				}
			}
		}
	}
}
