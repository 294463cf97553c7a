package feature

import (
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"unsafe"

	"github.com/tandemml/tandem/data"
)

var testSurfaces = []string{"home_feed", "search", "related"}

var testActions = []string{data.ActionClick, data.ActionSave, data.ActionLongClick, data.ActionHide}

// randomEvents returns events of nUsers users sorted by (user_id, ts_ms),
// with many equal timestamps.
func randomEvents(rng *rand.Rand, nUsers int) []data.Event {
	var rows []data.Event
	user := int64(-5)
	for range nUsers {
		user += 1 + rng.Int64N(3)
		n := rng.IntN(40)
		ts := int64(1000)
		for range n {
			if rng.IntN(3) != 0 { // otherwise repeat the timestamp
				ts += rng.Int64N(5)
			}
			rows = append(rows, data.Event{
				UserID:  user,
				TsMs:    ts,
				ItemID:  rng.Int64N(1000),
				Action:  testActions[rng.IntN(len(testActions))],
				Surface: testSurfaces[rng.IntN(len(testSurfaces))],
			})
		}
	}
	return rows
}

// buildIndex adds rows in random chunks.
func buildIndex(t *testing.T, rng *rand.Rand, rows []data.Event) *Index {
	t.Helper()
	b := NewIndex(testSurfaces)
	for len(rows) > 0 {
		n := min(len(rows), rng.IntN(50))
		if err := b.Add(rows[:n]); err != nil {
			t.Fatal(err)
		}
		rows = rows[n:]
	}
	return b.Build()
}

func toEvent(t *testing.T, r data.Event) Event {
	t.Helper()
	a, err := ParseAction(r.Action)
	if err != nil {
		t.Fatal(err)
	}
	s := -1
	for i, name := range testSurfaces {
		if name == r.Surface {
			s = i
		}
	}
	return Event{TsMs: r.TsMs, ItemID: r.ItemID, Action: a, Surface: uint8(s)}
}

// bruteSequence joins by scanning every row: the user's rows with ts < tsMs,
// stably sorted newest first with the later row first among equal ts, the
// first l of them.
func bruteSequence(t *testing.T, rows []data.Event, userID, tsMs int64, l int) []Event {
	t.Helper()
	var idx []int
	for i := len(rows) - 1; i >= 0; i-- { // later rows first
		if rows[i].UserID == userID && rows[i].TsMs < tsMs {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return rows[idx[a]].TsMs > rows[idx[b]].TsMs })
	var out []Event
	for _, i := range idx {
		if len(out) >= l {
			break
		}
		out = append(out, toEvent(t, rows[i]))
	}
	return out
}

func TestIndexMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 20 {
		rows := randomEvents(rng, 1+rng.IntN(30))
		x := buildIndex(t, rng, rows)
		users := map[int64]int{}
		for _, r := range rows {
			users[r.UserID]++
		}
		if x.NumUsers() != len(users) || x.NumEvents() != len(rows) {
			t.Fatalf("trial %d: NumUsers, NumEvents = %d, %d; want %d, %d",
				trial, x.NumUsers(), x.NumEvents(), len(users), len(rows))
		}
		// Request times: exactly at events, between and around them, and
		// for users with no events.
		type req struct{ user, ts int64 }
		var reqs []req
		for _, r := range rows {
			reqs = append(reqs, req{r.UserID, r.TsMs}, req{r.UserID, r.TsMs + 1}, req{r.UserID, r.TsMs - 1})
		}
		for range 50 {
			reqs = append(reqs, req{rng.Int64N(100) - 10, rng.Int64N(300) + 900})
		}
		for _, q := range reqs {
			for _, l := range []int{0, 1, 8, 32} {
				got := x.Sequence(nil, q.user, q.ts, l)
				want := bruteSequence(t, rows, q.user, q.ts, l)
				if len(got) == 0 && len(want) == 0 {
					continue
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("trial %d: Sequence(user %d, ts %d, l %d) =\n%v\nwant\n%v",
						trial, q.user, q.ts, l, got, want)
				}
				for _, e := range got {
					if e.TsMs >= q.ts {
						t.Fatalf("trial %d: Sequence(user %d, ts %d) returned event at %d", trial, q.user, q.ts, e.TsMs)
					}
				}
			}
		}
	}
}

func TestIndexHistory(t *testing.T) {
	rows := []data.Event{
		{UserID: 3, TsMs: 10, ItemID: 1, Action: "click", Surface: "search"},
		{UserID: 3, TsMs: 10, ItemID: 2, Action: "hide", Surface: "home_feed"},
		{UserID: 7, TsMs: 5, ItemID: 3, Action: "save", Surface: "related"},
	}
	b := NewIndex(testSurfaces)
	if err := b.Add(rows); err != nil {
		t.Fatal(err)
	}
	x := b.Build()
	want3 := []Event{{TsMs: 10, ItemID: 1, Action: ActClick, Surface: 1}, {TsMs: 10, ItemID: 2, Action: ActHide, Surface: 0}}
	if got := x.History(3); !reflect.DeepEqual(got, want3) {
		t.Errorf("History(3) = %v, want %v", got, want3)
	}
	if got := x.History(7); !reflect.DeepEqual(got, []Event{{TsMs: 5, ItemID: 3, Action: ActSave, Surface: 2}}) {
		t.Errorf("History(7) = %v", got)
	}
	for _, u := range []int64{-1, 0, 4, 8} {
		if got := x.History(u); got != nil {
			t.Errorf("History(%d) = %v, want nil", u, got)
		}
	}
	// Appending to a history must not overwrite the next user's events.
	h := append(x.History(3), Event{TsMs: 99})
	_ = h
	if got := x.History(7); got[0].TsMs != 5 {
		t.Errorf("append to History(3) overwrote History(7): %v", got)
	}
	// Sequence appends to dst.
	dst := []Event{{ItemID: 42}}
	got := x.Sequence(dst, 3, 11, 8)
	if len(got) != 3 || got[0].ItemID != 42 || got[1].ItemID != 2 || got[2].ItemID != 1 {
		t.Errorf("Sequence(dst, 3, 11, 8) = %v", got)
	}
	if got := x.Sequence(nil, 3, 10, 8); len(got) != 0 {
		t.Errorf("Sequence at an event's ts = %v, want empty", got)
	}
	if s := x.Surfaces(); !reflect.DeepEqual(s, testSurfaces) {
		t.Errorf("Surfaces() = %v", s)
	}
	// The builder is empty again after Build.
	if x2 := b.Build(); x2.NumEvents() != 0 || x2.NumUsers() != 0 || x2.History(3) != nil {
		t.Errorf("second Build not empty: %d events", x2.NumEvents())
	}
}

func TestIndexAddErrors(t *testing.T) {
	good := []data.Event{
		{UserID: 1, TsMs: 10, Action: "click", Surface: "search"},
		{UserID: 2, TsMs: 5, Action: "click", Surface: "search"},
		{UserID: 2, TsMs: 7, Action: "click", Surface: "search"},
	}
	tests := []struct {
		name string
		bad  data.Event
		want string
	}{
		{"ts", data.Event{UserID: 2, TsMs: 6, Action: "click", Surface: "search"},
			`events: row 3: column "ts_ms": not sorted`},
		{"user", data.Event{UserID: 1, TsMs: 50, Action: "click", Surface: "search"},
			`events: row 3: column "user_id": not sorted`},
		{"surface", data.Event{UserID: 3, TsMs: 1, Action: "click", Surface: "nope"},
			`events: row 3: column "surface": unknown surface "nope"`},
		{"action", data.Event{UserID: 2, TsMs: 7, Action: "like", Surface: "search"},
			`events: row 3: column "action": unknown action "like"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewIndex(testSurfaces)
			if err := b.Add(good[:2]); err != nil {
				t.Fatal(err)
			}
			next := data.Event{UserID: 9, TsMs: 1, Action: "save", Surface: "related"}
			err := b.Add([]data.Event{good[2], tc.bad, next})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Add error = %v, want containing %q", err, tc.want)
			}
			// Nothing of the failed batch was added; the builder goes on.
			if err := b.Add(good[2:]); err != nil {
				t.Fatalf("Add after error: %v", err)
			}
			x := b.Build()
			if x.NumEvents() != 3 || x.NumUsers() != 2 {
				t.Errorf("after failed Add: %d events, %d users; want 3, 2", x.NumEvents(), x.NumUsers())
			}
		})
	}
}

func TestNewIndexBadSurfaces(t *testing.T) {
	b := NewIndex([]string{"a", "b", "a"})
	if err := b.Add(nil); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate surface: Add error = %v", err)
	}
	many := make([]string, 257)
	for i := range many {
		many[i] = strings.Repeat("x", i+1)
	}
	if err := NewIndex(many).Add(nil); err == nil {
		t.Error("257 surfaces: Add error = nil")
	}
	if err := NewIndex(many[:256]).Add(nil); err != nil {
		t.Errorf("256 surfaces: %v", err)
	}
}

func TestParseAction(t *testing.T) {
	for a := uint8(0); a < NumActions; a++ {
		got, err := ParseAction(ActionName(a))
		if err != nil || got != a {
			t.Errorf("ParseAction(ActionName(%d)) = %d, %v", a, got, err)
		}
	}
	if ActionName(ActLongClick) != data.ActionLongClick || ActionName(ActHide) != data.ActionHide {
		t.Error("ActionName does not follow data.Action* order")
	}
	if _, err := ParseAction("Click"); err == nil {
		t.Error(`ParseAction("Click") succeeded`)
	}
	if got := ActionName(200); got != "action(200)" {
		t.Errorf("ActionName(200) = %q", got)
	}
}

func TestEventSize(t *testing.T) {
	if s := unsafe.Sizeof(Event{}); s != 24 {
		t.Errorf("sizeof(Event) = %d, want 24", s)
	}
}

func BenchmarkIndexBuild(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	var rows []data.Event
	for u := range int64(10000) {
		for i := range int64(100) {
			rows = append(rows, data.Event{UserID: u, TsMs: i, ItemID: rng.Int64N(1e6), Action: "click", Surface: "search"})
		}
	}
	b.ResetTimer()
	for range b.N {
		ib := NewIndex(testSurfaces)
		ib.Grow(len(rows))
		if err := ib.Add(rows); err != nil {
			b.Fatal(err)
		}
		_ = ib.Build()
	}
}
