// Package reqgen builds the requests a client would send — Retrieve and
// Rank calls with their UserContext — from the logged requests of a data
// directory. User sequences come from the one as-of function
// (feature.Index.Sequence, the same as training and evaluation), so what
// the server sees equals what the models were evaluated on. The demo,
// the load generator and the serving tests all use it.
package reqgen

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/feature"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
)

// Set is the test-day requests of a data directory with what it takes to
// turn them into calls: users, event histories, logged candidates.
type Set struct {
	Cfg      *config.Config
	Requests []data.Request
	// Candidates per request id, in file order (the logging policy's set).
	Candidates map[int64][]int64
	users      map[int64]*data.User
	seq        *feature.Index
}

// Options choose the requests.
type Options struct {
	// Max requests to keep (0: all of the test days), drawn uniformly with Seed.
	Max  int
	Seed uint64
	// Candidates loads each kept request's logged candidates (Rank calls).
	Candidates bool
}

// Load reads dir's test-day requests.
func Load(dir string, cfg *config.Config, o Options) (*Set, error) {
	man, err := data.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	s := &Set{Cfg: cfg, users: map[int64]*data.User{}}
	err = data.ForEach(dir, data.TableRequests, 0, func(rows []data.Request) error {
		for _, r := range rows {
			if r.TsMs >= man.TestStartMs && r.TsMs < man.EndMs {
				s.Requests = append(s.Requests, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if o.Max > 0 && len(s.Requests) > o.Max {
		rng := rand.New(rand.NewPCG(o.Seed, 0x7267))
		rng.Shuffle(len(s.Requests), func(i, j int) { s.Requests[i], s.Requests[j] = s.Requests[j], s.Requests[i] })
		s.Requests = s.Requests[:o.Max]
		slices.SortFunc(s.Requests, func(a, b data.Request) int { return int(a.TsMs - b.TsMs) })
	}
	want := map[int64]bool{}
	for _, r := range s.Requests {
		want[r.UserID] = true
	}
	err = data.ForEach(dir, data.TableUsers, 0, func(rows []data.User) error {
		for i := range rows {
			if want[rows[i].UserID] {
				u := rows[i]
				u.PretrainedEmb = slices.Clone(u.PretrainedEmb)
				s.users[u.UserID] = &u
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, sf := range cfg.Surfaces {
		names = append(names, sf.Name)
	}
	ib := feature.NewIndex(names)
	err = data.ForEach(dir, data.TableEvents, 0, func(rows []data.Event) error {
		return ib.Add(rows)
	})
	if err != nil {
		return nil, err
	}
	s.seq = ib.Build()
	if o.Candidates {
		keep := map[int64]bool{}
		for _, r := range s.Requests {
			keep[r.RequestID] = true
		}
		s.Candidates = map[int64][]int64{}
		err = data.ForEach(dir, data.TableCandidates, 0, func(rows []data.Candidate) error {
			for _, c := range rows {
				if keep[c.RequestID] {
					s.Candidates[c.RequestID] = append(s.Candidates[c.RequestID], c.AdID)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// User returns the UserContext of request r: the user's features, the
// sequence as of r's time, the surface, view type and context.
func (s *Set) User(r *data.Request) (*tandemv1.UserContext, error) {
	u, ok := s.users[r.UserID]
	if !ok {
		return nil, fmt.Errorf("reqgen: request %d: user %d is not in the users table", r.RequestID, r.UserID)
	}
	ts := r.TsMs
	uc := &tandemv1.UserContext{
		UserId:        r.UserID,
		RequestTimeMs: &ts,
		Surface:       r.Surface,
		ViewType:      r.ViewType,
		Categorical:   map[string]string{"country": u.Country, "device": u.Device, "age_bucket": u.AgeBucket},
		Dense:         map[string]float64{"activity": float64(u.Activity), "account_age_days": float64(u.AccountAgeDays)},
		Embeddings:    map[string]*tandemv1.Embedding{"pretrained_emb": {Values: u.PretrainedEmb}},
	}
	if r.QueryTopic != data.NoQueryTopic {
		q := int64(r.QueryTopic)
		uc.QueryTopic = &q
	}
	if r.ContextItemID != data.NoContextItem {
		c := r.ContextItemID
		uc.ContextItemId = &c
	}
	for _, e := range s.seq.Sequence(nil, r.UserID, r.TsMs, s.Cfg.Sequence.Length) {
		uc.Events = append(uc.Events, &tandemv1.Event{ItemId: e.ItemID, Action: feature.ActionName(e.Action),
			Surface: s.Cfg.Surfaces[e.Surface].Name, TsMs: e.TsMs})
	}
	return uc, nil
}

// Rank returns the Rank call of request r over its logged candidates (at
// most max of them; 0: all).
func (s *Set) Rank(r *data.Request, max int) (*tandemv1.RankRequest, error) {
	uc, err := s.User(r)
	if err != nil {
		return nil, err
	}
	ids := s.Candidates[r.RequestID]
	if max > 0 && len(ids) > max {
		ids = ids[:max]
	}
	return &tandemv1.RankRequest{User: uc, AdIds: slices.Clone(ids)}, nil
}

// Retrieve returns the Retrieve call of request r for the top k.
func (s *Set) Retrieve(r *data.Request, k int) (*tandemv1.RetrieveRequest, error) {
	uc, err := s.User(r)
	if err != nil {
		return nil, err
	}
	return &tandemv1.RetrieveRequest{User: uc, K: int32(k)}, nil
}
