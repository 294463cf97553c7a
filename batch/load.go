package batch

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/feature"
)

// DataConfig returns the config to train on dir's data: the schema the data
// was written with (from its manifest) and the model and train sections of
// cfg. cfg's own schema must match the data's unless it is the default
// (which lets MovieLens' narrowed schema train with default settings).
func DataConfig(dir string, cfg *config.Config, explicit bool) (*config.Config, *data.Manifest, error) {
	m, err := data.ReadManifest(dir)
	if err != nil {
		return nil, nil, err
	}
	var dc config.Config
	if err := json.Unmarshal(m.Config, &dc); err != nil {
		return nil, nil, fmt.Errorf("%s: config: %w", filepath.Join(dir, "manifest.json"), err)
	}
	if explicit && cfg.SchemaHash() != m.SchemaHash {
		return nil, nil, fmt.Errorf("config schema %.12s differs from the data's %.12s (%s): train with the schema the data was written with",
			cfg.SchemaHash(), m.SchemaHash, filepath.Join(dir, "manifest.json"))
	}
	dc.Model, dc.Train = cfg.Model, cfg.Train
	if err := dc.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%s: config: %w", filepath.Join(dir, "manifest.json"), err)
	}
	return &dc, m, nil
}

// LoadCatalog reads only the items and ads of dir (what the refresh job
// embeds): Data's user, event and request fields stay empty.
func LoadCatalog(dir string, cfg *config.Config, m *data.Manifest) (*Data, error) {
	feat, err := ResolveFeatures(cfg)
	if err != nil {
		return nil, err
	}
	d := &Data{Cfg: cfg, Manifest: m, Feat: feat}
	if err := d.loadItems(dir); err != nil {
		return nil, err
	}
	if err := d.loadAds(dir); err != nil {
		return nil, err
	}
	return d, nil
}

// Load reads every table of dir except candidates.
func Load(dir string, cfg *config.Config, m *data.Manifest) (*Data, error) {
	feat, err := ResolveFeatures(cfg)
	if err != nil {
		return nil, err
	}
	d := &Data{Cfg: cfg, Manifest: m, Feat: feat}
	if err := d.loadItems(dir); err != nil {
		return nil, err
	}
	if err := d.loadAds(dir); err != nil {
		return nil, err
	}
	if err := d.loadUsers(dir); err != nil {
		return nil, err
	}
	surfaces := make([]string, len(cfg.Surfaces))
	for i, s := range cfg.Surfaces {
		surfaces[i] = s.Name
	}
	ib := feature.NewIndex(surfaces)
	if err := data.ForEach(dir, data.TableEvents, 8192, func(rows []data.Event) error { return ib.Add(rows) }); err != nil {
		return nil, err
	}
	d.Seq = ib.Build()
	if _, _, err := data.TablePath(dir, data.TableRequests); errors.Is(err, data.ErrNoTable) {
		return d, nil // an events-only data set (MovieLens): see SynthesizeFromEvents
	}
	if err := d.loadRequests(dir); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Data) loadItems(dir string) error {
	d.ItemRow = map[int64]int32{}
	return data.ForEach(dir, data.TableItems, 8192, func(rows []data.Item) error {
		for _, it := range rows {
			if len(it.ContentEmb) != d.Feat.ContentDim {
				return fmt.Errorf("%s: item %d: content_emb has %d values, the schema says %d", tablePath(dir, data.TableItems), it.ItemID, len(it.ContentEmb), d.Feat.ContentDim)
			}
			if _, dup := d.ItemRow[it.ItemID]; dup {
				return fmt.Errorf("%s: item %d repeats", tablePath(dir, data.TableItems), it.ItemID)
			}
			d.ItemRow[it.ItemID] = int32(len(d.ItemRow))
			d.ItemIDs = append(d.ItemIDs, it.ItemID)
			d.ItemEmb = append(d.ItemEmb, it.ContentEmb...)
		}
		return nil
	})
}

func (d *Data) loadAds(dir string) error {
	d.AdRow = map[int64]int32{}
	path := tablePath(dir, data.TableAds)
	return data.ForEach(dir, data.TableAds, 8192, func(rows []data.Ad) error {
		for i := range rows {
			a := &rows[i]
			item, ok := d.ItemRow[a.AdID]
			if !ok {
				return fmt.Errorf("%s: ad %d is not in the items table", path, a.AdID)
			}
			if _, dup := d.AdRow[a.AdID]; dup {
				return fmt.Errorf("%s: ad %d repeats", path, a.AdID)
			}
			d.AdRow[a.AdID] = int32(len(d.AdIDs))
			d.AdIDs = append(d.AdIDs, a.AdID)
			d.AdItem = append(d.AdItem, item)
			for _, f := range d.Feat.AdCat {
				d.AdCats = append(d.AdCats, adCat(f, a))
			}
			for _, n := range d.Feat.AdDense {
				d.AdDense = append(d.AdDense, adDenseVal(a, n))
			}
			d.AdProduct = append(d.AdProduct, uint8(max(0, slices.Index(d.Cfg.Products, a.Product))))
			d.AdBid = append(d.AdBid, a.Bid)
			var el uint8
			for _, s := range a.EligibleSurfaces {
				if k := d.Cfg.SurfaceIndex(s); k >= 0 && k < 8 {
					el |= 1 << k
				}
			}
			d.AdEligible = append(d.AdEligible, el)
			d.AdActive = append(d.AdActive, a.Active)
		}
		return nil
	})
}

func (d *Data) loadUsers(dir string) error {
	d.UserRow = map[int64]int32{}
	path := tablePath(dir, data.TableUsers)
	return data.ForEach(dir, data.TableUsers, 8192, func(rows []data.User) error {
		for i := range rows {
			u := &rows[i]
			if len(u.PretrainedEmb) != d.Feat.UserEmbDim {
				return fmt.Errorf("%s: user %d: pretrained_emb has %d values, the schema says %d", path, u.UserID, len(u.PretrainedEmb), d.Feat.UserEmbDim)
			}
			if _, dup := d.UserRow[u.UserID]; dup {
				return fmt.Errorf("%s: user %d repeats", path, u.UserID)
			}
			d.UserRow[u.UserID] = int32(len(d.UserIDs))
			d.UserIDs = append(d.UserIDs, u.UserID)
			for _, f := range d.Feat.UserCat {
				d.UserCats = append(d.UserCats, CodeString(f, userCat(u, f.Name)))
			}
			for _, n := range d.Feat.UserDense {
				d.UserDense = append(d.UserDense, userDenseVal(u, n))
			}
			d.UserEmb = append(d.UserEmb, u.PretrainedEmb...)
		}
		return nil
	})
}

func (d *Data) loadRequests(dir string) error {
	views := d.Cfg.ViewTypes()
	byID := map[int64]int32{}
	rpath := tablePath(dir, data.TableRequests)
	err := data.ForEach(dir, data.TableRequests, 8192, func(rows []data.Request) error {
		for _, r := range rows {
			u, ok := d.UserRow[r.UserID]
			if !ok {
				return fmt.Errorf("%s: request %d: unknown user_id %d", rpath, r.RequestID, r.UserID)
			}
			s := d.Cfg.SurfaceIndex(r.Surface)
			v := slices.Index(views, r.ViewType)
			if s < 0 || v < 0 {
				return fmt.Errorf("%s: request %d: unknown surface %q or view_type %q", rpath, r.RequestID, r.Surface, r.ViewType)
			}
			ctx := int32(-1)
			if r.ContextItemID != data.NoContextItem {
				if row, ok := d.ItemRow[r.ContextItemID]; ok {
					ctx = row
				}
			}
			if _, dup := byID[r.RequestID]; dup {
				return fmt.Errorf("%s: request %d repeats", rpath, r.RequestID)
			}
			byID[r.RequestID] = int32(len(d.Requests))
			d.Requests = append(d.Requests, Request{ID: r.RequestID, UserID: r.UserID, UserRow: u, TsMs: r.TsMs,
				Surface: uint8(s), View: uint8(v), QueryTopic: r.QueryTopic, CtxItemRow: ctx})
		}
		return nil
	})
	if err != nil {
		return err
	}
	var imps []data.Impression
	ipath := tablePath(dir, data.TableImpressions)
	err = data.ForEach(dir, data.TableImpressions, 8192, func(rows []data.Impression) error {
		for _, im := range rows {
			if _, ok := byID[im.RequestID]; !ok {
				return fmt.Errorf("%s: impression of unknown request_id %d", ipath, im.RequestID)
			}
			if _, ok := d.AdRow[im.AdID]; !ok {
				return fmt.Errorf("%s: request %d: unknown ad_id %d", ipath, im.RequestID, im.AdID)
			}
			imps = append(imps, im)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Group impressions by request, keeping file order within a request.
	slices.SortStableFunc(imps, func(a, b data.Impression) int { return int(byID[a.RequestID] - byID[b.RequestID]) })
	d.Imps = make([]Imp, len(imps))
	for i, im := range imps {
		ri := byID[im.RequestID]
		r := &d.Requests[ri]
		if r.Count == 0 {
			r.First = int32(i)
		}
		r.Count++
		x := Imp{AdRow: d.AdRow[im.AdID], Position: im.Position}
		for t, task := range d.Cfg.Tasks {
			switch task {
			case data.ActionClick:
				x.Labels[t], x.PTrue[t] = float32(im.Click), im.PTrueClick
			case data.ActionSave:
				x.Labels[t], x.PTrue[t] = float32(im.Save), im.PTrueSave
			case data.ActionLongClick:
				x.Labels[t], x.PTrue[t] = float32(im.LongClick), im.PTrueLongClick
			case data.ActionHide:
				x.Labels[t], x.PTrue[t] = float32(im.Hide), im.PTrueHide
			}
		}
		d.Imps[i] = x
	}
	return nil
}

// Split names a time range of the data.
type Split int

// Splits by time.
const (
	Train Split = iota
	Validation
	Test
)

func (s Split) String() string { return [...]string{"train", "validation", "test"}[s] }

// Requests returns the indices of the requests with impressions in split s.
func (d *Data) RequestsIn(s Split) []int32 {
	lo, hi := d.Manifest.TrainStartMs, d.Manifest.ValidationStartMs
	switch s {
	case Validation:
		lo, hi = d.Manifest.ValidationStartMs, d.Manifest.TestStartMs
	case Test:
		lo, hi = d.Manifest.TestStartMs, math.MaxInt64 // sessions may run past EndMs
	}
	var out []int32
	for i, r := range d.Requests {
		if r.TsMs >= lo && r.TsMs < hi && r.Count > 0 {
			out = append(out, int32(i))
		}
	}
	return out
}

// tablePath names a table's file for error messages.
func tablePath(dir, table string) string {
	if p, _, err := data.TablePath(dir, table); err == nil {
		return p
	}
	return filepath.Join(dir, table)
}
