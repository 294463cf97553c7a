package feature

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/tandemml/tandem/data"
)

// actionNames holds the data.Action* name of each Act* code.
var actionNames = [NumActions]string{
	ActClick:     data.ActionClick,
	ActSave:      data.ActionSave,
	ActLongClick: data.ActionLongClick,
	ActHide:      data.ActionHide,
}

// ParseAction returns the Act* code of a data.Action* name.
func ParseAction(s string) (uint8, error) {
	for i, name := range actionNames {
		if s == name {
			return uint8(i), nil
		}
	}
	return 0, fmt.Errorf("parse action %q: unknown action", s)
}

// ActionName returns the data.Action* name of an Act* code, or "action(N)"
// for a code outside [0, NumActions).
func ActionName(a uint8) string {
	if a < NumActions {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// maxSurfaces is the number of surfaces an Event.Surface code can name.
const maxSurfaces = math.MaxUint8 + 1

// Index holds every user's event history in one compact array, for as-of
// sequence lookups. Users are kept in ascending id order; a user's events
// are events[starts[i]:starts[i+1]], ascending by TsMs with ties in input
// order. An Index is immutable and safe for concurrent use.
type Index struct {
	surfaces []string
	users    []int64 // ascending
	starts   []int32 // len(users)+1 offsets into events
	events   []Event
}

// IndexBuilder builds an Index from the rows of the events table, which
// must arrive sorted by (user_id, ts_ms), in one or more Add calls.
type IndexBuilder struct {
	surfaceNames []string
	surfaces     map[string]uint8
	err          error // set by NewIndex for an unusable surface list

	users  []int64
	starts []int32
	events []Event

	rows     int64 // rows accepted so far
	lastUser int64
	lastTs   int64
}

// NewIndex returns a builder for an Index whose Event.Surface codes index
// surfaces (the config's surface list). At most 256 distinct surfaces are
// allowed; a longer list or a repeated name makes every Add fail.
func NewIndex(surfaces []string) *IndexBuilder {
	b := &IndexBuilder{
		surfaceNames: slices.Clone(surfaces),
		surfaces:     make(map[string]uint8, len(surfaces)),
	}
	if len(surfaces) > maxSurfaces {
		b.err = fmt.Errorf("new index: %d surfaces, at most %d", len(surfaces), maxSurfaces)
		return b
	}
	for i, s := range surfaces {
		if _, dup := b.surfaces[s]; dup {
			b.err = fmt.Errorf("new index: surface %q listed twice", s)
			return b
		}
		b.surfaces[s] = uint8(i)
	}
	return b
}

// Grow reserves room for n more events, so that a caller that knows the
// size of the events table avoids the slack of repeated growth.
func (b *IndexBuilder) Grow(n int) {
	if n > 0 {
		b.events = slices.Grow(b.events, n)
	}
}

// Add appends rows, the next rows of the events table. Rows are numbered
// from 0 across all Add calls. Add fails, naming the row and column, when a
// row breaks the (user_id, ts_ms) order, names a surface not given to
// NewIndex or an unknown action, or when the index would exceed 2^31-1
// events. On error none of rows is added and the builder stays usable.
func (b *IndexBuilder) Add(rows []data.Event) error {
	if b.err != nil {
		return b.err
	}
	// Saved state, restored on error.
	nUsers, nStarts, nEvents := len(b.users), len(b.starts), len(b.events)
	rows0, lastUser, lastTs := b.rows, b.lastUser, b.lastTs

	err := b.add(rows)
	if err != nil {
		b.users, b.starts, b.events = b.users[:nUsers], b.starts[:nStarts], b.events[:nEvents]
		b.rows, b.lastUser, b.lastTs = rows0, lastUser, lastTs
	}
	return err
}

func (b *IndexBuilder) add(rows []data.Event) error {
	for i := range rows {
		r := &rows[i]
		row := b.rows
		if len(b.events) >= math.MaxInt32 {
			return fmt.Errorf("events: row %d: index full at %d events", row, len(b.events))
		}
		switch {
		case len(b.users) == 0 || r.UserID > b.lastUser:
			b.users = append(b.users, r.UserID)
			b.starts = append(b.starts, int32(len(b.events)))
		case r.UserID < b.lastUser:
			return fmt.Errorf("events: row %d: column \"user_id\": not sorted: user %d after user %d",
				row, r.UserID, b.lastUser)
		case r.TsMs < b.lastTs:
			return fmt.Errorf("events: row %d: column \"ts_ms\": not sorted: %d after %d for user %d",
				row, r.TsMs, b.lastTs, r.UserID)
		}
		surface, ok := b.surfaces[r.Surface]
		if !ok {
			return fmt.Errorf("events: row %d: column \"surface\": unknown surface %q", row, r.Surface)
		}
		action, err := ParseAction(r.Action)
		if err != nil {
			return fmt.Errorf("events: row %d: column \"action\": unknown action %q", row, r.Action)
		}
		b.events = append(b.events, Event{TsMs: r.TsMs, ItemID: r.ItemID, Action: action, Surface: surface})
		b.rows++
		b.lastUser, b.lastTs = r.UserID, r.TsMs
	}
	return nil
}

// Build returns the Index of the rows added so far and resets the builder
// to empty (same surfaces), so it holds no reference to the Index's memory.
func (b *IndexBuilder) Build() *Index {
	idx := &Index{
		surfaces: b.surfaceNames,
		users:    b.users,
		starts:   append(b.starts, int32(len(b.events))),
		events:   b.events,
	}
	b.surfaceNames = slices.Clone(b.surfaceNames)
	b.users, b.starts, b.events = nil, nil, nil
	b.rows, b.lastUser, b.lastTs = 0, 0, 0
	return idx
}

// History returns the user's events in ascending TsMs order (ties in input
// order), or nil for a user with no events. The slice is shared with the
// Index and must not be modified; its capacity is clipped, so appending to
// it copies.
func (x *Index) History(userID int64) []Event {
	i, ok := x.find(userID)
	if !ok {
		return nil
	}
	s, e := x.starts[i], x.starts[i+1]
	return x.events[s:e:e]
}

// Sequence appends to dst the user's at most l newest events strictly
// before tsMs, newest first, and returns the extended slice: AsOf on the
// user's History.
func (x *Index) Sequence(dst []Event, userID, tsMs int64, l int) []Event {
	return AsOf(dst, x.History(userID), tsMs, l)
}

// NumUsers returns the number of users with at least one event.
func (x *Index) NumUsers() int { return len(x.users) }

// NumEvents returns the number of events across all users.
func (x *Index) NumEvents() int { return len(x.events) }

// Surfaces returns the surface names that Event.Surface codes index.
func (x *Index) Surfaces() []string { return slices.Clone(x.surfaces) }

func (x *Index) find(userID int64) (int, bool) {
	i := sort.Search(len(x.users), func(i int) bool { return x.users[i] >= userID })
	return i, i < len(x.users) && x.users[i] == userID
}
