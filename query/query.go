package query

import (
	"fmt"
	"math"
	"slices"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/feature"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
)

// FieldError is a bad request field: Field is its path as the proto spells
// it, Msg what is wrong with it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func bad(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Items looks up an item's content embedding (the snapshot's item table).
type Items interface {
	Content(id int64) ([]float32, bool)
}

// Schema is what Decode checks a request against: the feature lists,
// surfaces, view types and sequence length of one config.
type Schema struct {
	Cfg  *config.Config
	Feat *batch.Features
	L    int
	ages int
}

// NewSchema resolves cfg's features.
func NewSchema(cfg *config.Config) (*Schema, error) {
	ft, err := batch.ResolveFeatures(cfg)
	if err != nil {
		return nil, err
	}
	return &Schema{Cfg: cfg, Feat: ft, L: cfg.Sequence.Length, ages: cfg.Model.Seq.AgeBuckets}, nil
}

// User is a decoded, validated UserContext.
type User struct {
	UserID      int64
	TimeMs      int64
	Surface     int // index into Cfg.Surfaces
	View        int // index into Cfg.ViewTypes()
	SurfaceView int // index into the surface's view types (L2 calibration)
	QueryTopic  int64
	// ContextItem is the context item's content (nil: none or unknown).
	ContextItem []float32
	Cats        []int32   // codes, Feat.UserCat order
	Dense       []float32 // raw values, Feat.UserDense order
	DenseSet    []bool    // false: left out, FillUser puts the model's default
	Pretrained  []float32 // Feat.UserEmbDim values (zeros when left out)
	Events      []feature.Event
	// Defaulted names the features left out; UnknownItems counts event and
	// context items the catalog does not know.
	Defaulted    []string
	UnknownItems int
}

// Decode validates uc and codes it. nowMs is the request time when uc
// has none.
func (s *Schema) Decode(uc *tandemv1.UserContext, nowMs int64, items Items) (*User, error) {
	if uc == nil {
		return nil, bad("user", "is required")
	}
	cfg := s.Cfg
	u := &User{UserID: uc.GetUserId(), TimeMs: nowMs, QueryTopic: int64(-1)}
	if uc.RequestTimeMs != nil {
		if *uc.RequestTimeMs <= 0 {
			return nil, bad("user.request_time_ms", "%d is not a time (milliseconds since 1970)", *uc.RequestTimeMs)
		}
		u.TimeMs = *uc.RequestTimeMs
	}
	u.Surface = cfg.SurfaceIndex(uc.GetSurface())
	if u.Surface < 0 {
		return nil, bad("user.surface", "unknown surface %q (the schema has %s)", uc.GetSurface(), surfaceNames(cfg))
	}
	surf := &cfg.Surfaces[u.Surface]
	u.SurfaceView = slices.IndexFunc(surf.ViewTypes, func(v config.ViewType) bool { return v.Name == uc.GetViewType() })
	if u.SurfaceView < 0 {
		var names []string
		for _, v := range surf.ViewTypes {
			names = append(names, v.Name)
		}
		return nil, bad("user.view_type", "unknown view type %q for surface %s (it has %v)", uc.GetViewType(), surf.Name, names)
	}
	u.View = slices.Index(cfg.ViewTypes(), uc.GetViewType())

	if uc.QueryTopic != nil {
		if surf.Context != config.ContextQuery {
			return nil, bad("user.query_topic", "surface %s has no query", surf.Name)
		}
		u.QueryTopic = *uc.QueryTopic
	} else if surf.Context == config.ContextQuery {
		u.Defaulted = append(u.Defaulted, "query_topic")
	}
	if uc.ContextItemId != nil {
		if surf.Context != config.ContextItem {
			return nil, bad("user.context_item_id", "surface %s has no context item", surf.Name)
		}
		if c, ok := items.Content(*uc.ContextItemId); ok {
			u.ContextItem = c
		} else {
			u.UnknownItems++
		}
	} else if surf.Context == config.ContextItem {
		u.Defaulted = append(u.Defaulted, "context_item_id")
	}

	if err := s.decodeFeatures(uc, u); err != nil {
		return nil, err
	}
	if err := s.decodeEvents(uc, u, items); err != nil {
		return nil, err
	}
	return u, nil
}

func (s *Schema) decodeFeatures(uc *tandemv1.UserContext, u *User) error {
	ft := s.Feat
	for name := range uc.GetCategorical() {
		if !slices.ContainsFunc(ft.UserCat, func(f config.Feature) bool { return f.Name == name }) {
			return bad(fmt.Sprintf("user.categorical[%q]", name), "not a categorical user feature of the schema")
		}
	}
	for name, v := range uc.GetDense() {
		if !slices.Contains(ft.UserDense, name) {
			return bad(fmt.Sprintf("user.dense[%q]", name), "not a dense user feature of the schema")
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
			return bad(fmt.Sprintf("user.dense[%q]", name), "%v is not a finite float32", v)
		}
	}
	for name, e := range uc.GetEmbeddings() {
		field := fmt.Sprintf("user.embeddings[%q]", name)
		if name != ft.UserEmb || ft.UserEmb == "" {
			return bad(field, "not an embedding user feature of the schema")
		}
		if len(e.GetValues()) != ft.UserEmbDim {
			return bad(field, "%d values, the schema's width is %d", len(e.GetValues()), ft.UserEmbDim)
		}
		for i, x := range e.GetValues() {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return bad(fmt.Sprintf("%s.values[%d]", field, i), "%v is not finite", x)
			}
		}
	}
	u.Cats = make([]int32, len(ft.UserCat))
	for i, f := range ft.UserCat {
		v, ok := uc.GetCategorical()[f.Name]
		if !ok {
			u.Defaulted = append(u.Defaulted, f.Name)
		}
		u.Cats[i] = batch.CodeString(f, v) // "" is out of vocabulary
	}
	u.Dense = make([]float32, len(ft.UserDense))
	u.DenseSet = make([]bool, len(ft.UserDense))
	for i, name := range ft.UserDense {
		if v, ok := uc.GetDense()[name]; ok {
			u.Dense[i], u.DenseSet[i] = float32(v), true
		} else {
			u.Defaulted = append(u.Defaulted, name)
		}
	}
	u.Pretrained = make([]float32, ft.UserEmbDim)
	if ft.UserEmb != "" {
		if e, ok := uc.GetEmbeddings()[ft.UserEmb]; ok {
			copy(u.Pretrained, e.GetValues())
		} else {
			u.Defaulted = append(u.Defaulted, ft.UserEmb)
		}
	}
	return nil
}

func (s *Schema) decodeEvents(uc *tandemv1.UserContext, u *User, items Items) error {
	evs := uc.GetEvents()
	if len(evs) > s.L {
		return bad("user.events", "%d events, the schema's sequence length is %d", len(evs), s.L)
	}
	u.Events = make([]feature.Event, len(evs))
	for i, e := range evs {
		field := fmt.Sprintf("user.events[%d]", i)
		if e == nil {
			return bad(field, "is empty")
		}
		act, err := feature.ParseAction(e.GetAction())
		if err != nil {
			return bad(field+".action", "unknown action %q", e.GetAction())
		}
		sf := s.Cfg.SurfaceIndex(e.GetSurface())
		if sf < 0 {
			return bad(field+".surface", "unknown surface %q", e.GetSurface())
		}
		if e.GetTsMs() >= u.TimeMs {
			return bad(field+".ts_ms", "%d is not before the request time %d", e.GetTsMs(), u.TimeMs)
		}
		if i > 0 && e.GetTsMs() > evs[i-1].GetTsMs() {
			return bad(field+".ts_ms", "%d is newer than the event before it (%d): events go newest first", e.GetTsMs(), evs[i-1].GetTsMs())
		}
		if _, ok := items.Content(e.GetItemId()); !ok {
			u.UnknownItems++
		}
		u.Events[i] = feature.Event{TsMs: e.GetTsMs(), ItemID: e.GetItemId(), Action: act, Surface: uint8(sf)}
	}
	return nil
}

func surfaceNames(cfg *config.Config) []string {
	var out []string
	for _, s := range cfg.Surfaces {
		out = append(out, s.Name)
	}
	return out
}

// ContextCodes writes the codes of the request's context features (Feat.Context
// order) into dst: surface, view type, query topic, and position 0 (serving
// never knows the slot).
func (s *Schema) ContextCodes(dst []int32, u *User) {
	cfg := s.Cfg
	for i, f := range s.Feat.Context {
		switch f.Name {
		case "surface":
			dst[i] = batch.CodeString(f, cfg.Surfaces[u.Surface].Name)
		case "view_type":
			dst[i] = batch.CodeString(f, cfg.ViewTypes()[u.View])
		case "query_topic":
			dst[i] = batch.CodeInt(f, u.QueryTopic)
		case "position":
			dst[i] = batch.CodeInt(f, 0)
		default:
			dst[i] = 0
		}
	}
}

// FillUser appends u as a new context of b (b.U grows by one) with its
// user, sequence and user-context fields; denseDefaults are the model's
// values for dense features u left out. The row fields are untouched.
func (s *Schema) FillUser(b *engine.Batch, u *User, items Items, denseDefaults []float32) {
	ft, L, C := s.Feat, s.L, s.Feat.ContentDim
	b.U++
	b.UserCats = append(b.UserCats, u.Cats...)
	for i, v := range u.Dense {
		if !u.DenseSet[i] && i < len(denseDefaults) {
			v = denseDefaults[i]
		}
		b.UserDense = append(b.UserDense, v)
	}
	b.Pretrained = append(b.Pretrained, u.Pretrained...)
	for _, f := range ft.Context {
		switch f.Name {
		case "surface":
			b.UserContext = append(b.UserContext, batch.CodeString(f, s.Cfg.Surfaces[u.Surface].Name))
		case "view_type":
			b.UserContext = append(b.UserContext, batch.CodeString(f, s.Cfg.ViewTypes()[u.View]))
		}
	}
	b.SeqLen = append(b.SeqLen, int32(len(u.Events)))
	for j := range L {
		var content []float32
		var oov uint8
		var act, surf, age int32
		if j < len(u.Events) {
			e := u.Events[j]
			if c, ok := items.Content(e.ItemID); ok {
				content = c
			} else {
				oov = 1
			}
			act, surf, age = int32(e.Action), int32(e.Surface), batch.AgeBucket(u.TimeMs-e.TsMs, s.ages)
		}
		if content == nil {
			n := len(b.SeqContent)
			b.SeqContent = slices.Grow(b.SeqContent, C)[:n+C]
			clear(b.SeqContent[n:])
		} else {
			b.SeqContent = append(b.SeqContent, content...)
		}
		b.SeqOOV = append(b.SeqOOV, oov)
		b.SeqAction = append(b.SeqAction, act)
		b.SeqSurface = append(b.SeqSurface, surf)
		b.SeqAge = append(b.SeqAge, age)
	}
}

// ResetUsers empties b's context fields, keeping their memory.
func ResetUsers(b *engine.Batch) {
	b.U = 0
	b.UserCats = b.UserCats[:0]
	b.UserDense = b.UserDense[:0]
	b.Pretrained = b.Pretrained[:0]
	b.UserContext = b.UserContext[:0]
	b.SeqLen = b.SeqLen[:0]
	b.SeqContent = b.SeqContent[:0]
	b.SeqOOV = b.SeqOOV[:0]
	b.SeqAction = b.SeqAction[:0]
	b.SeqSurface = b.SeqSurface[:0]
	b.SeqAge = b.SeqAge[:0]
}
