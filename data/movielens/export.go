package movielens

import (
	"fmt"
	"os"
	"slices"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
)

// Split shares of the time-ordered events: the newest TestShare of events
// fall on test days, the TestShare before them on validation days.
const (
	ValidationShare = 0.1
	TestShare       = 0.1
)

// Config returns the schema MovieLens data is written under: the default
// config narrowed to one surface (home_feed, view type grid, tasks click,
// save and long_click), no user features, and a genre multi-hot of width
// EmbDim as content_emb.
func Config() *config.Config {
	c := config.Default()
	c.Tasks = []string{"click", "save", "long_click"}
	c.Surfaces = []config.Surface{{
		Name: SurfaceHomeFeed, Traffic: 1, Context: config.ContextNone,
		Tasks:     []string{"click", "save", "long_click"},
		ViewTypes: []config.ViewType{{Name: ViewTypeGrid, Share: 1, Slots: 1}},
	}}
	c.Features.User = nil
	c.Features.Item = []config.Feature{{Name: "content_emb", Kind: config.KindEmbedding, Dim: EmbDim}}
	c.Features.Context = []config.Feature{
		{Name: "surface", Kind: config.KindCategorical, Vocab: []string{SurfaceHomeFeed}},
		{Name: "view_type", Kind: config.KindCategorical, Vocab: []string{ViewTypeGrid}},
	}
	c.Routing = []config.Route{{Surface: "*", Product: "*", Route: "all"}}
	for t := range c.Sim.Weights {
		if !slices.Contains(c.Tasks, t) {
			delete(c.Sim.Weights, t)
		}
	}
	return c
}

// Write writes the data set's items, ads, users and events tables and a
// manifest (source "movielens", no ground truth) into dir. MovieLens has no
// requests, impressions or candidates. The split boundaries cut the
// time-ordered events at 1 − ValidationShare − TestShare and 1 − TestShare.
func (d *Dataset) Write(dir string, format data.Format) (*data.Manifest, error) {
	if len(d.Events) < 3 {
		return nil, fmt.Errorf("movielens: %d events, too few to split", len(d.Events))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("movielens: %w", err)
	}
	cfg := Config()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("movielens: schema: %w", err)
	}
	ts := make([]int64, len(d.Events))
	for i, e := range d.Events {
		ts[i] = e.TsMs
	}
	slices.Sort(ts)
	at := func(q float64) int64 { return ts[int(q*float64(len(ts)-1))] }
	m := &data.Manifest{
		Version: data.ManifestVersion, Source: "movielens", SchemaHash: cfg.SchemaHash(), Format: format,
		Config: cfg.JSON(), HistoryStartMs: ts[0], TrainStartMs: ts[0],
		ValidationStartMs: at(1 - ValidationShare - TestShare), TestStartMs: at(1 - TestShare),
		EndMs: ts[len(ts)-1] + 1, Rows: map[string]int64{},
	}
	if !(m.TrainStartMs < m.ValidationStartMs && m.ValidationStartMs < m.TestStartMs) {
		return nil, fmt.Errorf("movielens: events span too short a time to split")
	}
	if err := writeAll(dir, data.TableItems, format, d.Items, m); err != nil {
		return nil, err
	}
	if err := writeAll(dir, data.TableAds, format, d.Ads, m); err != nil {
		return nil, err
	}
	if err := writeAll(dir, data.TableUsers, format, d.Users, m); err != nil {
		return nil, err
	}
	if err := writeAll(dir, data.TableEvents, format, d.Events, m); err != nil {
		return nil, err
	}
	return m, data.WriteManifest(dir, m)
}

func writeAll[T any](dir, table string, format data.Format, rows []T, m *data.Manifest) error {
	w, err := data.Create[T](dir, table, format)
	if err != nil {
		return err
	}
	if err := w.Write(rows); err != nil {
		w.Close()
		return err
	}
	m.Rows[table] = int64(len(rows))
	return w.Close()
}
