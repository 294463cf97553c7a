package serve

import (
	"errors"
	"fmt"
	"time"

	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/engine"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/ranker"
	"github.com/tandemml/tandem/retrieve"
)

// Set is what one request is served from: a snapshot and a model version.
type Set struct {
	Cat      *catalog.Catalog
	Models   *ranker.Models
	LoadedAt time.Time
}

// Snapshot and Model name the Set's versions.
func (s *Set) Snapshot() string { return s.Cat.Version }
func (s *Set) Model() string    { return s.Models.Version }

// LoadSet loads snapshot version snap of dbdir and model version model of
// modelDir, checks that they share a schema and warms them up.
func LoadSet(dbdir, snap, modelDir, model string, o engine.Options) (*Set, error) {
	cat, err := catalog.Load(dbdir, snap, o)
	if err != nil {
		return nil, err
	}
	models, err := ranker.Load(modelDir, model, o)
	if err != nil {
		return nil, err
	}
	if models.SchemaHash != cat.Manifest.SchemaHash {
		return nil, fmt.Errorf("serve: model version %s has schema %.12s, snapshot %s %.12s: refusing to serve them together",
			models.Version, models.SchemaHash, cat.Version, cat.Manifest.SchemaHash)
	}
	s := &Set{Cat: cat, Models: models}
	if err := s.warm(); err != nil {
		return nil, fmt.Errorf("serve: warm-up of snapshot %s with model %s: %w", cat.Version, models.Version, err)
	}
	s.LoadedAt = time.Now()
	return s, nil
}

// warm runs one Retrieve and one Rank per surface with a user that has
// nothing but the surface, so that a Set that cannot serve is never
// swapped in and the first real request does not pay for first use.
func (s *Set) warm() error {
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
		if _, err := retrieve.Retrieve(s.Cat, u, retrieve.Options{K: 10}); err != nil {
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
