// Package query turns the UserContext of a Retrieve or Rank call into the
// inference engine's coded inputs, exactly as training codes a logged
// request (docs/CHECKPOINT.md "Inputs"), and rejects what the models cannot
// take.
//
// # Validation
//
// Decode checks every field and returns a *FieldError naming the first bad
// one the way the proto spells it ("user.events[3].action"): an unknown
// surface, view type, feature name, action or event surface; NaN or an
// infinity in any float; an embedding of the wrong width; more events than
// the schema's sequence length, events not newest first or not before the
// request time; a query topic or context item on a surface that has none.
// It never panics, whatever the message holds (a fuzz test).
//
// # Defaults
//
// A feature the request leaves out gets its schema default and is listed in
// User.Defaulted: a categorical the out-of-vocabulary row, a dense feature
// the value the model normalises to 0 (its running mean, filled per model
// by FillUser), an embedding zeros. Ids the catalog does not know — an
// event's item, the context item — take the learned OOV row or zeros, as in
// training, and are counted in User.UnknownItems.
package query
