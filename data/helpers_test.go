package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// edge32 are float32 values that stress the JSON float format.
var edge32 = []float32{
	0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
	math.MaxFloat32, -math.MaxFloat32, 1e-7, 9.999999e-7, 1e21, 1e20, 0.1, 1.0 / 3, 16777217, -2.5e-38,
}

// edge64 are float64 values in (0, 1) that stress the JSON float format.
var edge64 = []float64{
	math.SmallestNonzeroFloat64, 1e-7, 0.1, 1.0 / 3, 0.5, math.Nextafter(1, 0), 1e-300, 0.999999999999,
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func randFloat32(r *rand.Rand, i int) float32 {
	if i < len(edge32) {
		return edge32[i]
	}
	return float32(r.NormFloat64())
}

func randProb(r *rand.Rand, i int) float64 {
	if i < len(edge64) {
		return edge64[i]
	}
	return (r.Float64() + 1e-9) / (1 + 2e-9)
}

func randVec(r *rand.Rand, i, dim int) []float32 {
	v := make([]float32, dim)
	for j := range v {
		v[j] = randFloat32(r, (i+j)%(2*len(edge32)))
	}
	return v
}

var (
	surfaces  = []string{"home_feed", "search", "related", "ünïcödé \"quoted\"\n\\"}
	viewTypes = []string{"grid", "list"}
)

func pick(r *rand.Rand, ss []string) string { return ss[r.IntN(len(ss))] }

func sampleItems(n int, seed uint64) []Item {
	r := newRand(seed)
	rows := make([]Item, n)
	for i := range rows {
		kind := KindOrganic
		if i%3 == 0 {
			kind = KindAd
		}
		rows[i] = Item{ItemID: int64(i), Kind: kind, Category: int32(r.IntN(40)), ContentEmb: randVec(r, i, 8)}
	}
	return rows
}

func sampleAds(n int, seed uint64) []Ad {
	r := newRand(seed)
	rows := make([]Ad, n)
	for i := range rows {
		eligible := make([]string, r.IntN(3)) // sometimes empty
		for j := range eligible {
			eligible[j] = pick(r, surfaces)
		}
		rows[i] = Ad{
			AdID: int64(3 * i), Advertiser: int64(r.IntN(100)), Campaign: r.Int64N(1 << 40),
			Category: int32(r.IntN(40)), Product: fmt.Sprintf("product-%d", r.IntN(5)),
			Bid:             float32(r.ExpFloat64()) + math.SmallestNonzeroFloat32,
			QualityCreative: randFloat32(r, i), QualityLanding: float32(r.NormFloat64()),
			EligibleSurfaces: eligible, Active: r.IntN(2) == 0,
		}
	}
	return rows
}

func sampleUsers(n int, seed uint64) []User {
	r := newRand(seed)
	rows := make([]User, n)
	for i := range rows {
		rows[i] = User{
			UserID: int64(i), Country: pick(r, []string{"US", "DE", "BR"}), Device: pick(r, []string{"ios", "android", "web"}),
			AgeBucket: pick(r, []string{"18-24", "25-34", "65+"}), Activity: randFloat32(r, i),
			AccountAgeDays: float32(r.IntN(4000)) + 0.5, PretrainedEmb: randVec(r, i+3, 4),
		}
	}
	return rows
}

func sampleEvents(n int, seed uint64) []Event {
	r := newRand(seed)
	actions := []string{ActionClick, ActionSave, ActionLongClick, ActionHide}
	rows := make([]Event, n)
	for i := range rows {
		rows[i] = Event{UserID: int64(i / 4), TsMs: 1_700_000_000_000 + int64(i)*1000, ItemID: r.Int64N(1000),
			Action: pick(r, actions), Surface: pick(r, surfaces)}
	}
	return rows
}

func sampleRequests(n int, seed uint64) []Request {
	r := newRand(seed)
	rows := make([]Request, n)
	for i := range rows {
		q, c := NoQueryTopic, NoContextItem
		if i%2 == 0 {
			q = int32(r.IntN(40))
		}
		if i%3 == 0 {
			c = r.Int64N(1000)
		}
		rows[i] = Request{RequestID: int64(i), UserID: r.Int64N(100), TsMs: 1_700_000_000_000 + int64(i),
			Surface: pick(r, surfaces), ViewType: pick(r, viewTypes), QueryTopic: q, ContextItemID: c}
	}
	return rows
}

func sampleImpressions(n int, seed uint64) []Impression {
	r := newRand(seed)
	rows := make([]Impression, n)
	for i := range rows {
		im := Impression{RequestID: int64(i / 3), AdID: r.Int64N(1000), Position: int32(i % 3),
			PTrueClick: randProb(r, i), PTrueSave: randProb(r, i+1), PTrueLongClick: randProb(r, i+2), PTrueHide: randProb(r, i+3)}
		im.Click = int8(r.IntN(2))
		im.Save = int8(r.IntN(2))
		if im.Click == 1 {
			im.LongClick = int8(r.IntN(2))
		} else {
			im.Hide = int8(r.IntN(2))
		}
		rows[i] = im
	}
	return rows
}

func sampleCandidates(n int, seed uint64) []Candidate {
	r := newRand(seed)
	rows := make([]Candidate, n)
	for i := range rows {
		rows[i] = Candidate{RequestID: int64(i / 10), AdID: r.Int64N(1000), LoggingScore: randFloat32(r, i), Shown: i%10 < 3}
	}
	return rows
}

// diffRows describes the first difference between two row slices, comparing
// floats by their bits and treating nil and empty slices as equal; "" if
// none.
func diffRows(want, got any) string {
	return diffValues("rows", reflect.ValueOf(want), reflect.ValueOf(got))
}

func diffValues(path string, w, g reflect.Value) string {
	switch w.Kind() {
	case reflect.Slice:
		if w.Len() != g.Len() {
			return fmt.Sprintf("%s: len %d, want %d", path, g.Len(), w.Len())
		}
		for i := range w.Len() {
			if d := diffValues(fmt.Sprintf("%s[%d]", path, i), w.Index(i), g.Index(i)); d != "" {
				return d
			}
		}
	case reflect.Struct:
		for i := range w.NumField() {
			if d := diffValues(path+"."+w.Type().Field(i).Name, w.Field(i), g.Field(i)); d != "" {
				return d
			}
		}
	case reflect.Float32, reflect.Float64:
		if math.Float64bits(w.Float()) != math.Float64bits(g.Float()) {
			return fmt.Sprintf("%s: got %v, want %v", path, g.Float(), w.Float())
		}
	default:
		if !reflect.DeepEqual(w.Interface(), g.Interface()) {
			return fmt.Sprintf("%s: got %#v, want %#v", path, g.Interface(), w.Interface())
		}
	}
	return ""
}

// writeTable writes rows to table's file in dir.
func writeTable[T any](t testing.TB, dir, table string, f Format, rows []T) {
	t.Helper()
	w, err := Create[T](dir, table, f)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	// Write in uneven batches.
	for len(rows) > 0 {
		n := min(len(rows), 1000)
		if err := w.Write(rows[:n]); err != nil {
			t.Fatal(err)
		}
		rows = rows[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// wantError checks that err is a *RowError with the given file, row and
// column whose message contains each of parts, and that it matches kind.
func wantError(t *testing.T, err error, kind error, file string, row int64, column string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", kind)
	}
	re, ok := err.(*RowError)
	if !ok {
		t.Fatalf("got %T %q, want *RowError", err, err)
	}
	if re.File != file || re.Row != row || re.Column != column {
		t.Errorf("got file %q row %d column %q, want %q %d %q (error %q)", re.File, re.Row, re.Column, file, row, column, err)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q does not match %v", err, kind)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
