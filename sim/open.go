package sim

import (
	"fmt"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/feature"
)

// Truth answers true-probability questions about a simulated data
// directory: it rebuilds the world from the manifest and indexes the events
// so any (request, ad) pair can be scored.
type Truth struct {
	World    *World
	Config   *config.Config
	Manifest *data.Manifest
	Events   *feature.Index
}

// Open loads the truth of the simulated data set in dir.
func Open(dir string) (*Truth, error) {
	m, err := data.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if m.Source != "simulator" || !m.GroundTruth {
		return nil, fmt.Errorf("sim: %s was not made by the simulator (source %q): it has no ground truth", dir, m.Source)
	}
	cfg, err := config.Parse(m.Config)
	if err != nil {
		return nil, fmt.Errorf("sim: config in %s/%s: %w", dir, data.ManifestFile, err)
	}
	if cfg.SchemaHash() != m.SchemaHash {
		return nil, fmt.Errorf("sim: %s/%s: schema hash %s does not match its config's %s", dir, data.ManifestFile, m.SchemaHash, cfg.SchemaHash())
	}
	sc, sp, err := cfg.ScaleNamed(m.Scale)
	if err != nil {
		return nil, err
	}
	if n := m.Rows[data.TableUsers]; n > 0 {
		sc.Users = int(n) // a --users override
	}
	w, err := NewWorldScale(cfg, sc, sp, m.Seed)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(cfg.Surfaces))
	for i, s := range cfg.Surfaces {
		names[i] = s.Name
	}
	b := feature.NewIndex(names)
	b.Grow(int(m.Rows[data.TableEvents]))
	if err := data.ForEach(dir, data.TableEvents, 8192, b.Add); err != nil {
		return nil, err
	}
	return &Truth{World: w, Config: cfg, Manifest: m, Events: b.Build()}, nil
}

// Req converts a request row to the truth's form, checking its surface,
// view type and context against the config.
func (t *Truth) Req(r *data.Request) (Req, error) {
	s := t.Config.SurfaceIndex(r.Surface)
	if s < 0 {
		return Req{}, fmt.Errorf("sim: request %d: unknown surface %q", r.RequestID, r.Surface)
	}
	v := -1
	for i, vt := range t.Config.Surfaces[s].ViewTypes {
		if vt.Name == r.ViewType {
			v = i
		}
	}
	if v < 0 {
		return Req{}, fmt.Errorf("sim: request %d: unknown view type %q on surface %s", r.RequestID, r.ViewType, r.Surface)
	}
	return Req{UserID: r.UserID, TsMs: r.TsMs, Surface: s, ViewType: v,
		QueryTopic: r.QueryTopic, ContextItemID: r.ContextItemID}, nil
}

// Terms decomposes the true log-odds of ad adID at position pos in request
// r, taking the user's sequence as of r's time from the events table.
func (t *Truth) Terms(r *data.Request, adID int64, pos int32) (Terms, error) {
	req, err := t.Req(r)
	if err != nil {
		return Terms{}, err
	}
	seq := t.Events.Sequence(nil, r.UserID, r.TsMs, t.Config.Sequence.ShortTerm)
	return t.World.Terms(req, seq, adID, pos)
}

// TrueProb returns the true probabilities of any (request, ad) pair at a
// position; pairs never shown are evaluated at position 0.
func (t *Truth) TrueProb(r *data.Request, adID int64, pos int32) (Probs, error) {
	tm, err := t.Terms(r, adID, pos)
	if err != nil {
		return Probs{}, err
	}
	return tm.Probs(), nil
}
