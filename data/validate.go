package data

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/tandemml/tandem/config"
)

// Schema is what Validate checks a data directory's values against: the
// parts of a config that constrain data rather than models.
type Schema struct {
	// Surfaces maps each surface to its view types and context kind.
	Surfaces map[string]SurfaceSchema
	// Products lists the ad products.
	Products []string
	// ContentDim is the width of items.content_emb; UserDim the width of
	// users.pretrained_emb (0: the column must be empty, no such feature).
	ContentDim, UserDim int
}

// SurfaceSchema is one surface's view types and context kind
// (config.ContextNone, ContextQuery or ContextItem).
type SurfaceSchema struct {
	ViewTypes []string
	Context   string
}

// SchemaOf extracts a config's data schema.
func SchemaOf(cfg *config.Config) Schema {
	s := Schema{Surfaces: map[string]SurfaceSchema{}, Products: cfg.Products}
	for _, sf := range cfg.Surfaces {
		var vts []string
		for _, v := range sf.ViewTypes {
			vts = append(vts, v.Name)
		}
		s.Surfaces[sf.Name] = SurfaceSchema{ViewTypes: vts, Context: sf.Context}
	}
	for _, f := range cfg.Features.Item {
		if f.Name == "content_emb" {
			s.ContentDim = f.Dim
		}
	}
	for _, f := range cfg.Features.User {
		if f.Name == "pretrained_emb" {
			s.UserDim = f.Dim
		}
	}
	return s
}

// ValidateOptions tune Validate.
type ValidateOptions struct {
	// SkipCandidates leaves the candidates table unread (it is by far the
	// largest).
	SkipCandidates bool
}

// Validate reads every table of the data directory and checks what the
// row checks cannot see alone: values against the schema (surfaces, view
// types, context columns, products, embedding widths), unique ids, the
// events' (user_id, ts_ms) order, and references between tables (ads are
// items of kind ad, events name known users and items, impressions and
// candidates name known requests and ads). Tables a directory lacks
// (MovieLens has no requests) are skipped; items, ads and users are
// required. It stops at the first problem, returned as a *RowError naming
// the file, row and column, and returns the rows read per table.
func Validate(dir string, s Schema, opts ValidateOptions) (map[string]int64, error) {
	v := &validator{dir: dir, s: s, rows: map[string]int64{},
		items: map[int64]uint8{}, users: map[int64]struct{}{}, requests: map[int64]struct{}{}}
	steps := []struct {
		table    string
		optional bool
		run      func() error
	}{
		{TableItems, false, v.checkItems},
		{TableAds, false, v.checkAds},
		{TableUsers, false, v.checkUsers},
		{TableEvents, true, v.checkEvents},
		{TableRequests, true, v.checkRequests},
		{TableImpressions, true, v.checkImpressions},
		{TableCandidates, true, v.checkCandidates},
	}
	for _, st := range steps {
		if st.table == TableCandidates && opts.SkipCandidates {
			continue
		}
		path, _, err := TablePath(dir, st.table)
		if errors.Is(err, ErrNoTable) && st.optional {
			continue
		}
		if err != nil {
			return v.rows, err
		}
		v.file = filepath.Base(path)
		if err := st.run(); err != nil {
			return v.rows, err
		}
	}
	return v.rows, nil
}

// Item kinds as stored in validator.items; ad items gain seenAd once their
// ads row is read.
const (
	itemAd uint8 = 1 << iota
	itemOrganic
	seenAd
)

type validator struct {
	dir      string
	s        Schema
	file     string
	rows     map[string]int64
	items    map[int64]uint8
	users    map[int64]struct{}
	requests map[int64]struct{}
}

// each streams a table, calling check on every row;
// a non-nil (column, error) becomes a RowError.
func each[T any](v *validator, table string, check func(r *T) (string, error)) error {
	var i int64
	err := ForEach(v.dir, table, 8192, func(rows []T) error {
		for k := range rows {
			if col, err := check(&rows[k]); err != nil {
				return &RowError{File: v.file, Row: i, Column: col, Err: fmt.Errorf("%w: %w", ErrBadValue, err)}
			}
			i++
		}
		return nil
	})
	v.rows[table] = i
	return err
}

func (v *validator) checkItems() error {
	return each(v, TableItems, func(r *Item) (string, error) {
		if _, dup := v.items[r.ItemID]; dup {
			return "item_id", fmt.Errorf("item_id %d repeats", r.ItemID)
		}
		if len(r.ContentEmb) != v.s.ContentDim {
			return "content_emb", fmt.Errorf("width %d, schema says %d", len(r.ContentEmb), v.s.ContentDim)
		}
		kind := itemOrganic
		if r.Kind == KindAd {
			kind = itemAd
		}
		v.items[r.ItemID] = kind
		return "", nil
	})
}

func (v *validator) checkAds() error {
	err := each(v, TableAds, func(r *Ad) (string, error) {
		k, ok := v.items[r.AdID]
		switch {
		case !ok:
			return "ad_id", fmt.Errorf("ad_id %d is not in items", r.AdID)
		case k&itemAd == 0:
			return "ad_id", fmt.Errorf("ad_id %d is an organic item", r.AdID)
		case k&seenAd != 0:
			return "ad_id", fmt.Errorf("ad_id %d repeats", r.AdID)
		}
		v.items[r.AdID] = k | seenAd
		if !slices.Contains(v.s.Products, r.Product) {
			return "product", fmt.Errorf("unknown product %q", r.Product)
		}
		for j, s := range r.EligibleSurfaces {
			if _, ok := v.s.Surfaces[s]; !ok {
				return "eligible_surfaces", fmt.Errorf("unknown surface %q at index %d", s, j)
			}
		}
		return "", nil
	})
	if err != nil {
		return err
	}
	missing := int64(-1)
	for id, k := range v.items {
		if k == itemAd && (missing < 0 || id < missing) {
			missing = id
		}
	}
	if missing >= 0 {
		return &RowError{File: v.file, Row: -1, Column: "ad_id", Err: fmt.Errorf("%w: item %d is of kind ad but has no ads row", ErrBadValue, missing)}
	}
	return nil
}

func (v *validator) checkUsers() error {
	return each(v, TableUsers, func(r *User) (string, error) {
		if _, dup := v.users[r.UserID]; dup {
			return "user_id", fmt.Errorf("user_id %d repeats", r.UserID)
		}
		v.users[r.UserID] = struct{}{}
		if len(r.PretrainedEmb) != v.s.UserDim {
			return "pretrained_emb", fmt.Errorf("width %d, schema says %d", len(r.PretrainedEmb), v.s.UserDim)
		}
		return "", nil
	})
}

func (v *validator) checkEvents() error {
	var prevUser, prevTs int64 = -1, 0
	return each(v, TableEvents, func(r *Event) (string, error) {
		if _, ok := v.users[r.UserID]; !ok {
			return "user_id", fmt.Errorf("user_id %d is not in users", r.UserID)
		}
		if r.UserID < prevUser || r.UserID == prevUser && r.TsMs < prevTs {
			return "ts_ms", fmt.Errorf("events not sorted by (user_id, ts_ms): (%d, %d) after (%d, %d)", r.UserID, r.TsMs, prevUser, prevTs)
		}
		prevUser, prevTs = r.UserID, r.TsMs
		if _, ok := v.items[r.ItemID]; !ok {
			return "item_id", fmt.Errorf("item_id %d is not in items", r.ItemID)
		}
		if _, ok := v.s.Surfaces[r.Surface]; !ok {
			return "surface", fmt.Errorf("unknown surface %q", r.Surface)
		}
		return "", nil
	})
}

func (v *validator) checkRequests() error {
	return each(v, TableRequests, func(r *Request) (string, error) {
		if _, dup := v.requests[r.RequestID]; dup {
			return "request_id", fmt.Errorf("request_id %d repeats", r.RequestID)
		}
		v.requests[r.RequestID] = struct{}{}
		if _, ok := v.users[r.UserID]; !ok {
			return "user_id", fmt.Errorf("user_id %d is not in users", r.UserID)
		}
		sf, ok := v.s.Surfaces[r.Surface]
		if !ok {
			return "surface", fmt.Errorf("unknown surface %q", r.Surface)
		}
		if !slices.Contains(sf.ViewTypes, r.ViewType) {
			return "view_type", fmt.Errorf("view type %q is not one of surface %s's %v", r.ViewType, r.Surface, sf.ViewTypes)
		}
		hasQuery, hasItem := r.QueryTopic != NoQueryTopic, r.ContextItemID != NoContextItem
		switch {
		case sf.Context == config.ContextQuery && !hasQuery:
			return "query_topic", fmt.Errorf("missing (-1) on query surface %s", r.Surface)
		case sf.Context != config.ContextQuery && hasQuery:
			return "query_topic", fmt.Errorf("set to %d on surface %s, which has no query", r.QueryTopic, r.Surface)
		case sf.Context == config.ContextItem && !hasItem:
			return "context_item_id", fmt.Errorf("missing (-1) on context-item surface %s", r.Surface)
		case sf.Context != config.ContextItem && hasItem:
			return "context_item_id", fmt.Errorf("set to %d on surface %s, which has no context item", r.ContextItemID, r.Surface)
		}
		if _, ok := v.items[r.ContextItemID]; hasItem && !ok {
			return "context_item_id", fmt.Errorf("item %d is not in items", r.ContextItemID)
		}
		return "", nil
	})
}

// requestAd checks the (request_id, ad_id) pair impressions and
// candidates share: a known request and an ad with an ads row.
func (v *validator) requestAd(requestID, adID int64) (string, error) {
	if _, ok := v.requests[requestID]; !ok {
		return "request_id", fmt.Errorf("request_id %d is not in requests", requestID)
	}
	if v.items[adID]&seenAd == 0 {
		return "ad_id", fmt.Errorf("ad_id %d is not in ads", adID)
	}
	return "", nil
}

func (v *validator) checkImpressions() error {
	return each(v, TableImpressions, func(r *Impression) (string, error) {
		return v.requestAd(r.RequestID, r.AdID)
	})
}

func (v *validator) checkCandidates() error {
	return each(v, TableCandidates, func(r *Candidate) (string, error) {
		return v.requestAd(r.RequestID, r.AdID)
	})
}
