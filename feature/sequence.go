package feature

import "sort"

// Action codes of Event.Action, in the order of data.Action* names.
const (
	ActClick uint8 = iota
	ActSave
	ActLongClick
	ActHide
	NumActions
)

// Event is the compact in-memory form of one engagement, used for user
// sequences. Surface indexes the config's surface list.
type Event struct {
	TsMs    int64
	ItemID  int64
	Action  uint8
	Surface uint8
}

// AsOf appends to dst the events of history that happened strictly before
// tsMs, newest first, at most l of them, and returns the extended slice.
// history is one user's events sorted by TsMs ascending (ties keep their
// order, the later one counting as newer). This is the one as-of function
// behind training, evaluation, the simulator and the clients: no sequence
// ever contains an event at or after its request time.
func AsOf(dst []Event, history []Event, tsMs int64, l int) []Event {
	end := sort.Search(len(history), func(i int) bool { return history[i].TsMs >= tsMs })
	for i := end - 1; i >= 0 && end-i <= l; i-- {
		dst = append(dst, history[i])
	}
	return dst
}
