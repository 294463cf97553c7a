package serve

import (
	"errors"
	"fmt"
	"time"

	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/gpu"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/ranker"
	"github.com/tandemml/tandem/retrieve"
)

// Set is what one request is served from: a snapshot and a model version.
type Set struct {
	Cat      *catalog.Catalog
	Models   *ranker.Models
	LoadedAt time.Time
	towers   []*gpu.UserTower
	exact    []*gpu.Exact
}

// Close frees the set's device towers once their in-flight calls finish;
// the CPU parts are left to the garbage collector.
func (s *Set) Close() {
	for _, t := range s.towers {
		t.Close()
	}
	for _, x := range s.exact {
		x.Close()
	}
	s.towers, s.exact = nil, nil
}

// Snapshot and Model name the Set's versions.
func (s *Set) Snapshot() string { return s.Cat.Version }
func (s *Set) Model() string    { return s.Models.Version }

// Backend says what of a Set runs on a GPU: with Device the routes' user
// towers, and with Exact too each route's ads for exact retrieval.
type Backend struct {
	Device *gpu.Device
	Exact  bool
	// Towers loads only the user towers and the item table (a root of
	// sharded serving: the ads and indexes live on the shards).
	Towers bool
}

// exactKMax bounds K' of gpu-exact retrieval.
const exactKMax = 1024

// LoadSet loads snapshot version snap of dbdir and model version model of
// modelDir, checks that they share a schema and warms them up; be says
// what goes onto the GPU.
func LoadSet(dbdir, snap, modelDir, model string, o engine.Options, be Backend) (*Set, error) {
	dev := be.Device
	co := o
	co.KeepWeights = dev != nil
	cat, err := catalog.LoadPart(dbdir, snap, co, catalog.Part{Towers: be.Towers})
	if err != nil {
		return nil, err
	}
	s := &Set{Cat: cat}
	if dev != nil {
		for _, r := range cat.Routes {
			t, err := dev.NewUserTower(r.User)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("serve: route %s on the GPU: %w", r.Name, err)
			}
			r.Tower = t
			s.towers = append(s.towers, t)
			if !be.Exact {
				continue
			}
			x, err := dev.NewExact(gpu.RouteAds(cat, r), exactKMax)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("serve: route %s exact index on the GPU: %w", r.Name, err)
			}
			r.Exact = x
			s.exact = append(s.exact, x)
		}
	}
	models, err := ranker.Load(modelDir, model, o)
	if err != nil {
		s.Close()
		return nil, err
	}
	if models.SchemaHash != cat.Manifest.SchemaHash {
		return nil, fmt.Errorf("serve: model version %s has schema %.12s, snapshot %s %.12s: refusing to serve them together",
			models.Version, models.SchemaHash, cat.Version, cat.Manifest.SchemaHash)
	}
	s.Models = models
	mode := retrieve.HNSW
	if be.Exact {
		mode = retrieve.GPUExact
	}
	warm := s.warm
	if be.Towers {
		warm = s.warmTowers
	}
	if err := warm(mode); err != nil {
		s.Close()
		return nil, fmt.Errorf("serve: warm-up of snapshot %s with model %s: %w", cat.Version, models.Version, err)
	}
	s.LoadedAt = time.Now()
	return s, nil
}

// warm runs one Retrieve and one Rank per surface with a user that has
// nothing but the surface, so that a Set that cannot serve is never
// swapped in and the first real request does not pay for first use.
func (s *Set) warm(mode retrieve.Mode) error {
	cfg := s.Cat.Cfg
	if len(s.Cat.AdIDs) == 0 {
		return errors.New("the snapshot has no ads")
	}
	ids := s.Cat.AdIDs[:min(len(s.Cat.AdIDs), 16)]
	for si, sf := range cfg.Surfaces {
		uc := &tandemv1.UserContext{Surface: sf.Name, ViewType: sf.ViewTypes[0].Name}
		u, err := s.Cat.Schema.Decode(uc, time.Now().UnixMilli(), s.Cat)
		if err != nil {
			return err
		}
		if _, err := retrieve.Retrieve(s.Cat, u, retrieve.Options{K: 10, Mode: mode}); err != nil {
			return err
		}
		if s.Models.Surface(si) == nil {
			continue
		}
		if _, err := s.Models.Rank(s.Cat, u, ids, nil); err != nil {
			return err
		}
	}
	return nil
}

// warmTowers runs every route's user tower once per surface (a root's
// Set has no ads to retrieve or rank).
func (s *Set) warmTowers(retrieve.Mode) error {
	nt, od := len(s.Cat.Tasks), s.Cat.OutDim
	uv := make([]float32, nt*od)
	for _, sf := range s.Cat.Cfg.Surfaces {
		uc := &tandemv1.UserContext{Surface: sf.Name, ViewType: sf.ViewTypes[0].Name}
		u, err := s.Cat.Schema.Decode(uc, time.Now().UnixMilli(), s.Cat)
		if err != nil {
			return err
		}
		for ri := range s.Cat.Routes {
			if err := retrieve.UserVectors(s.Cat, ri, u, nil, uv); err != nil {
				return err
			}
		}
	}
	return nil
}
