// Package feature turns tandem's tables into model features. Its core is
// the as-of user sequence: the events a user had before a request, newest
// first, which every consumer (training, evaluation, the simulator and the
// clients) takes from the same function, [AsOf].
//
// # Events
//
// [Event] is the compact in-memory form of one row of the events table
// (24 bytes): the timestamp, the item, an action code and a surface code.
// Action codes are [ActClick], [ActSave], [ActLongClick] and [ActHide], in
// the order of the data.Action* names; [ParseAction] and [ActionName]
// convert between the two. Surface codes index the config's surface list.
//
// # The as-of rule
//
// A sequence for a request at time t holds only events with TsMs < t,
// strictly: an event at the request's own millisecond is never part of it,
// so no label can leak into the features of the request it belongs to.
// Among events with equal timestamps the one later in the events table
// counts as newer. At most l events are returned; l <= 0 gives none.
//
// # The index
//
// [Index] holds every user's history in one []Event, users in ascending id
// order with an int32 offset each, so that 10M events take about 240 MB
// plus 12 bytes per user. Build it with [NewIndex], feeding the events
// table, sorted by (user_id, ts_ms), to [IndexBuilder.Add] in as many
// batches as convenient; Add rejects out-of-order rows, unknown surfaces
// and unknown actions with an error naming the row and column. Then
// [Index.History] gives a user's events and [Index.Sequence] the as-of
// sequence at a request time. A built Index is immutable and safe for
// concurrent use.
package feature
