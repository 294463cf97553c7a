package query

import (
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
)

type items map[int64][]float32

func (m items) Content(id int64) ([]float32, bool) { v, ok := m[id]; return v, ok }

func testSchema(t testing.TB) (*Schema, items) {
	s, err := NewSchema(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	it := items{}
	for id := int64(1); id <= 5; id++ {
		v := make([]float32, s.Feat.ContentDim)
		v[0] = float32(id)
		it[id] = v
	}
	return s, it
}

func validUser() *tandemv1.UserContext {
	ts := int64(1_000_000)
	topic := int64(3)
	return &tandemv1.UserContext{UserId: 9, RequestTimeMs: &ts, Surface: "search", ViewType: "list", QueryTopic: &topic,
		Categorical: map[string]string{"country": "de", "device": "ios"},
		Dense:       map[string]float64{"activity": 0.5},
		Events: []*tandemv1.Event{
			{ItemId: 2, Action: "click", Surface: "home_feed", TsMs: 999_000},
			{ItemId: 77, Action: "save", Surface: "search", TsMs: 900_000},
		}}
}

func TestDecodeCodesLikeTraining(t *testing.T) {
	s, it := testSchema(t)
	u, err := s.Decode(validUser(), 0, it)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.Cfg
	if u.Surface != 1 || cfg.ViewTypes()[u.View] != "list" || u.SurfaceView != 1 || u.QueryTopic != 3 || u.TimeMs != 1_000_000 {
		t.Fatalf("context: %+v", u)
	}
	if want := batch.CodeString(s.Feat.UserCat[0], "de"); u.Cats[0] != want || u.Cats[2] != 0 {
		t.Fatalf("cats %v (country code %d; age_bucket left out → OOV 0)", u.Cats, want)
	}
	if strings.Join(u.Defaulted, ",") != "age_bucket,account_age_days,pretrained_emb" || u.UnknownItems != 1 {
		t.Fatalf("defaulted %v, unknown %d", u.Defaulted, u.UnknownItems)
	}
	var b engine.Batch
	s.FillUser(&b, u, it, []float32{0.1, 42})
	L, C := s.L, s.Feat.ContentDim
	if b.U != 1 || len(b.SeqContent) != L*C || b.SeqLen[0] != 2 || b.UserDense[0] != 0.5 || b.UserDense[1] != 42 {
		t.Fatalf("batch: U %d, seq %d, len %v, dense %v", b.U, len(b.SeqContent), b.SeqLen, b.UserDense)
	}
	if b.SeqContent[0] != 2 || b.SeqOOV[0] != 0 || b.SeqOOV[1] != 1 || b.SeqAction[1] != 1 || b.SeqSurface[1] != 1 {
		t.Fatalf("events: content %v oov %v action %v surface %v", b.SeqContent[0], b.SeqOOV[:2], b.SeqAction[:2], b.SeqSurface[:2])
	}
	if want := batch.AgeBucket(1000, s.ages); b.SeqAge[0] != want {
		t.Fatalf("age bucket %d, want %d", b.SeqAge[0], want)
	}
	ctx := make([]int32, len(s.Feat.Context))
	s.ContextCodes(ctx, u)
	if ctx[0] != batch.CodeString(s.Feat.Context[0], "search") || ctx[3] != batch.CodeInt(s.Feat.Context[3], 0) {
		t.Fatalf("context codes %v", ctx)
	}
}

func TestDecodeNamesTheField(t *testing.T) {
	s, it := testSchema(t)
	for _, tc := range []struct {
		field string
		edit  func(u *tandemv1.UserContext)
	}{
		{"user.surface", func(u *tandemv1.UserContext) { u.Surface = "x" }},
		{"user.view_type", func(u *tandemv1.UserContext) { u.ViewType = "closeup" }},
		{`user.dense["activity"]`, func(u *tandemv1.UserContext) { u.Dense["activity"] = math.NaN() }},
		{"user.events[1].ts_ms", func(u *tandemv1.UserContext) { u.Events[1].TsMs = 999_500 }},
		{"user.events[0].ts_ms", func(u *tandemv1.UserContext) { u.Events[0].TsMs = 1_000_000 }},
		{"user.events[1].action", func(u *tandemv1.UserContext) { u.Events[1].Action = "Click" }},
		{"user.query_topic", func(u *tandemv1.UserContext) { u.Surface, u.ViewType = "home_feed", "grid" }},
	} {
		u := validUser()
		tc.edit(u)
		_, err := s.Decode(u, 0, it)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("want a FieldError naming %s, got %v", tc.field, err)
		}
	}
	if _, err := s.Decode(nil, 0, it); err == nil {
		t.Error("a nil user decoded")
	}
}

// FuzzDecode feeds arbitrary wire bytes as a UserContext: Decode must never
// panic, and whatever it accepts must make a well-formed engine context
// with every code inside its table.
func FuzzDecode(f *testing.F) {
	s, it := testSchema(f)
	seed, _ := proto.Marshal(validUser())
	f.Add(seed)
	f.Add([]byte{})
	empty, _ := proto.Marshal(&tandemv1.UserContext{Surface: "related", ViewType: "closeup"})
	f.Add(empty)
	f.Fuzz(func(t *testing.T, b []byte) {
		var uc tandemv1.UserContext
		if proto.Unmarshal(b, &uc) != nil {
			return
		}
		u, err := s.Decode(&uc, 5_000_000, it)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("an error that names no field: %v", err)
			}
			return
		}
		var eb engine.Batch
		s.FillUser(&eb, u, it, nil)
		L, C := s.L, s.Feat.ContentDim
		if eb.U != 1 || len(eb.SeqContent) != L*C || len(eb.SeqAge) != L || int(eb.SeqLen[0]) > L || len(eb.Pretrained) != s.Feat.UserEmbDim {
			t.Fatalf("malformed context: U %d seq %d ages %d len %v", eb.U, len(eb.SeqContent), len(eb.SeqAge), eb.SeqLen)
		}
		for i, f := range s.Feat.UserCat {
			if c := eb.UserCats[i]; c < 0 || int(c) >= batch.CatRows(f) {
				t.Fatalf("%s code %d outside its table", f.Name, c)
			}
		}
		for j := range L {
			if eb.SeqAge[j] < 0 || int(eb.SeqAge[j]) >= s.ages || int(eb.SeqSurface[j]) >= len(s.Cfg.Surfaces) {
				t.Fatalf("event %d: age %d surface %d", j, eb.SeqAge[j], eb.SeqSurface[j])
			}
		}
		for _, x := range append(eb.UserDense, eb.Pretrained...) {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("non-finite value %v accepted", x)
			}
		}
		ctx := make([]int32, len(s.Feat.Context))
		s.ContextCodes(ctx, u)
		for i, f := range s.Feat.Context {
			if ctx[i] < 0 || int(ctx[i]) >= batch.CatRows(f) {
				t.Fatalf("context %s code %d outside its table", f.Name, ctx[i])
			}
		}
	})
}
