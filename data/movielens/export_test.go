package movielens

import (
	"slices"
	"testing"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
)

func TestConfigIsValid(t *testing.T) {
	c := Config()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.SchemaHash() == config.Default().SchemaHash() {
		t.Error("MovieLens schema hashes like the default's")
	}
}

func TestWriteRoundTrip(t *testing.T) {
	d := &Dataset{}
	for i := range 3 {
		emb := make([]float32, EmbDim)
		emb[i] = 1
		d.Items = append(d.Items, data.Item{ItemID: int64(i + 1), Kind: data.KindAd, Category: int32(i), ContentEmb: emb})
		d.Ads = append(d.Ads, data.Ad{AdID: int64(i + 1), Category: int32(i), Product: ProductStandard, Bid: DefaultBid,
			EligibleSurfaces: []string{SurfaceHomeFeed}, Active: true})
	}
	d.Users = []data.User{{UserID: 1, Country: "unknown", Device: "unknown", AgeBucket: "unknown"}}
	for i := range 20 {
		d.Events = append(d.Events, data.Event{UserID: 1, TsMs: int64(1000 * (i + 1)), ItemID: int64(i%3 + 1),
			Action: data.ActionClick, Surface: SurfaceHomeFeed})
	}
	for _, f := range []data.Format{data.FormatParquet, data.FormatJSONL} {
		dir := t.TempDir()
		m, err := d.Write(dir, f)
		if err != nil {
			t.Fatal(err)
		}
		back, err := data.ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		if back.Source != "movielens" || back.GroundTruth || back.Rows[data.TableEvents] != 20 {
			t.Errorf("manifest %+v", back)
		}
		if back.ValidationStartMs != 16000 || back.TestStartMs != 18000 || back.EndMs != 20001 {
			t.Errorf("split %d %d %d, want 16000 18000 20001", back.ValidationStartMs, back.TestStartMs, back.EndMs)
		}
		cfg, err := config.Parse(m.Config)
		if err != nil || cfg.SchemaHash() != m.SchemaHash {
			t.Errorf("manifest config: %v", err)
		}
		evs, err := data.ReadAll[data.Event](dir, data.TableEvents)
		if err != nil || !slices.Equal(evs, d.Events) {
			t.Errorf("events round trip: %v", err)
		}
	}
	short := &Dataset{Events: d.Events[:2]}
	if _, err := short.Write(t.TempDir(), data.FormatParquet); err == nil {
		t.Error("two events split into train, validation and test")
	}
}

func TestWriteLatestSmall(t *testing.T) {
	d, err := Load(datasetDir(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m, err := d.Write(dir, data.FormatParquet)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows[data.TableEvents] != 104519 || m.Rows[data.TableItems] != 9742 || m.Rows[data.TableUsers] != 610 {
		t.Errorf("rows %v", m.Rows)
	}
	n := 0
	if err := data.ForEach(dir, data.TableEvents, 4096, func(rs []data.Event) error { n += len(rs); return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 104519 {
		t.Errorf("read back %d events", n)
	}
}
