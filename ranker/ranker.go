// Package ranker is L2 ranking on the inference engine (SYSTEM.md §4): the
// unified engagement model's export for the request's surface scores every
// candidate ad in one batch whose user side runs once (request-level
// broadcasting: one context, N rows), and the candidates come back sorted
// by utility, bid × calibrated pCTR.
package ranker

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/modeldir"
	"github.com/tandemml/tandem/query"
)

// Models are the L2 exports of one model version, by surface.
type Models struct {
	Version    string
	SchemaHash string
	// Files is the SHA-256 of each surface's export (the L2 version).
	Files   map[string]string
	Cfg     *config.Config
	surface []*engine.L2 // by config surface index; nil: not trained
}

// Load reads the L2 exports of version (MODELDIR/CURRENT when empty).
func Load(modelDir, version string, o engine.Options) (*Models, error) {
	var vdir string
	var mf *modeldir.Manifest
	var err error
	if version == "" {
		vdir, mf, err = modeldir.LoadCurrent(modelDir)
	} else {
		if err = modeldir.ValidateVersion(version); err != nil {
			return nil, err
		}
		vdir = filepath.Join(modelDir, version)
		mf, err = modeldir.ReadManifest(vdir)
	}
	if err != nil {
		return nil, err
	}
	m := &Models{Version: mf.Version, SchemaHash: mf.SchemaHash, Files: map[string]string{}}
	for surface, art := range mf.L2 {
		if len(art.Files) != 1 {
			return nil, fmt.Errorf("ranker: %s: surface %s lists %d L2 files, want 1", vdir, surface, len(art.Files))
		}
		l2, err := engine.LoadL2(filepath.Join(vdir, art.Files[0]), o)
		if err != nil {
			return nil, err
		}
		if l2.Cfg.SchemaHash() != mf.SchemaHash {
			return nil, fmt.Errorf("ranker: %s: %s has schema %.12s, the manifest %.12s", vdir, art.Files[0], l2.Cfg.SchemaHash(), mf.SchemaHash)
		}
		if m.Cfg == nil {
			m.Cfg = l2.Cfg
			m.surface = make([]*engine.L2, len(l2.Cfg.Surfaces))
		}
		s := m.Cfg.SurfaceIndex(l2.Surface)
		if s < 0 || l2.Surface != surface {
			return nil, fmt.Errorf("ranker: %s: %s is the export of surface %q, the manifest says %q", vdir, art.Files[0], l2.Surface, surface)
		}
		m.surface[s] = l2
		m.Files[surface] = art.SHA256
	}
	if m.Cfg == nil {
		return nil, fmt.Errorf("ranker: %s: the version has no L2 model", vdir)
	}
	return m, nil
}

// Surface returns the model of config surface s, nil when none is trained.
func (m *Models) Surface(s int) *engine.L2 {
	if s < 0 || s >= len(m.surface) {
		return nil
	}
	return m.surface[s]
}

// Ranked is one scored candidate.
type Ranked struct {
	Row     int32 // the ad's row in the catalog
	Probs   []float32
	Utility float64
}

// Timings splits a call's time by stage.
type Timings struct {
	Gather, Model, Sort time.Duration
}

// Result is a ranking.
type Result struct {
	Timings Timings
	// Tasks are the surface's tasks (indexes into the config's tasks), the
	// order of Ranked.Probs.
	Tasks   []int
	Ads     []Ranked
	Unknown []int64
}

// ErrNoneKnown is returned when no candidate is in the catalog.
var ErrNoneKnown = fmt.Errorf("ranker: no candidate ad is in the snapshot")

// ErrNoModel is returned for a surface without an L2 model.
type ErrNoModel struct{ Surface string }

func (e *ErrNoModel) Error() string {
	return fmt.Sprintf("ranker: no L2 model is trained for surface %s", e.Surface)
}

type scratch struct {
	w             *engine.Worker
	b             engine.Batch
	logits, probs []float32
}

var scratchPool = sync.Pool{New: func() any { return &scratch{w: engine.NewWorker()} }}

// Rank scores ads (ids, no duplicates) for u with the surface's model.
// Ids the catalog lacks are listed in Result.Unknown; ErrNoneKnown when
// every one is unknown. A non-nil pool splits the rows over its workers
// (the same probabilities, bit for bit, in less wall time).
func (m *Models) Rank(c *catalog.Catalog, u *query.User, ids []int64, pool *engine.Pool) (*Result, error) {
	l2 := m.Surface(u.Surface)
	if l2 == nil {
		return nil, &ErrNoModel{Surface: c.Cfg.Surfaces[u.Surface].Name}
	}
	res := &Result{}
	rows := make([]int32, 0, len(ids))
	for _, id := range ids {
		if a, ok := c.AdRow(id); ok {
			rows = append(rows, a)
		} else {
			res.Unknown = append(res.Unknown, id)
		}
	}
	if len(rows) == 0 {
		return res, ErrNoneKnown
	}
	t0 := time.Now()
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	b := &sc.b
	sch := c.Schema
	query.ResetUsers(b)
	sch.FillUser(b, u, c, l2.UserDenseDefaults())
	n := len(rows)
	nctx, nac, nad, cw := len(sch.Feat.Context), len(sch.Feat.AdCat), len(sch.Feat.AdDense), sch.Feat.ContentDim
	b.N = n
	b.Ctx = grow(b.Ctx, n)
	b.Context = grow(b.Context, n*nctx)
	b.ContextItem = growF(b.ContextItem, n*cw)
	b.AdCats = grow(b.AdCats, n*nac)
	b.AdContent = growF(b.AdContent, n*cw)
	b.AdDense = growF(b.AdDense, n*nad)
	b.View = grow(b.View, n)
	sch.ContextCodes(b.Context[:nctx], u)
	for r, a := range rows {
		b.Ctx[r] = 0
		copy(b.Context[r*nctx:(r+1)*nctx], b.Context[:nctx])
		ci := b.ContextItem[r*cw : (r+1)*cw]
		if u.ContextItem != nil {
			copy(ci, u.ContextItem)
		} else {
			clear(ci)
		}
		copy(b.AdCats[r*nac:(r+1)*nac], c.AdCats[int(a)*nac:(int(a)+1)*nac])
		copy(b.AdContent[r*cw:(r+1)*cw], c.AdContent(a))
		copy(b.AdDense[r*nad:(r+1)*nad], c.AdDense[int(a)*nad:(int(a)+1)*nad])
		b.View[r] = int32(u.SurfaceView)
	}
	t1 := time.Now()
	nt := len(l2.Tasks)
	sc.logits, sc.probs = growF(sc.logits, n*nt), growF(sc.probs, n*nt)
	var err error
	if pool != nil {
		err = pool.RunL2(l2, b, sc.logits, sc.probs)
	} else {
		err = l2.Run(sc.w, b, sc.logits, sc.probs)
	}
	if err != nil {
		return nil, fmt.Errorf("ranker: %w", err)
	}
	t2 := time.Now()
	for _, t := range m.Cfg.Surfaces[u.Surface].Tasks {
		res.Tasks = append(res.Tasks, m.Cfg.TaskIndex(t))
	}
	click := slices.Index(res.Tasks, m.Cfg.TaskIndex("click"))
	res.Ads = make([]Ranked, n)
	flat := make([]float32, n*len(res.Tasks))
	for r, a := range rows {
		p := flat[r*len(res.Tasks) : (r+1)*len(res.Tasks)]
		for j, t := range res.Tasks {
			p[j] = sc.probs[r*nt+t]
		}
		util := float64(c.Bid[a])
		if click >= 0 {
			util *= float64(p[click])
		}
		res.Ads[r] = Ranked{Row: a, Probs: p, Utility: util}
	}
	slices.SortStableFunc(res.Ads, func(x, y Ranked) int {
		if d := cmp.Compare(y.Utility, x.Utility); d != 0 {
			return d
		}
		return cmp.Compare(c.AdIDs[x.Row], c.AdIDs[y.Row])
	})
	res.Timings = Timings{Gather: t1.Sub(t0), Model: t2.Sub(t1), Sort: time.Since(t2)}
	return res, nil
}

func grow(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

func growF(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
