package batch

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/feature"
)

// SynthesizeFromEvents turns an events-only data set (MovieLens) into
// training rows for L1 without distillation: every engagement with an ad
// becomes a request at the event's time on the event's surface (first view
// type) whose impressions are the engaged ad (labels from the action:
// click for any engagement, long_click and save for those actions) and neg
// ads drawn uniformly from the active ads (all labels 0). The user's
// sequence is taken strictly before the event, so the engaged item is
// never in it. Deterministic for a seed.
func (d *Data) SynthesizeFromEvents(neg int, seed uint64) error {
	if len(d.Requests) > 0 {
		return fmt.Errorf("data set already has %d logged requests", len(d.Requests))
	}
	if len(d.AdIDs) == 0 {
		return fmt.Errorf("no ads to sample negatives from")
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d6c))
	task := func(name string) int { return slices.Index(d.Cfg.Tasks, name) }
	click, save, long := task(data.ActionClick), task(data.ActionSave), task(data.ActionLongClick)
	if click < 0 {
		return fmt.Errorf("the schema has no click task")
	}
	var active []int32
	for a, ok := range d.AdActive {
		if ok {
			active = append(active, int32(a))
		}
	}
	for ui, uid := range d.UserIDs {
		for _, e := range d.Seq.History(uid) {
			ad, ok := d.AdRow[e.ItemID]
			if !ok {
				continue // organic engagement: context only
			}
			r := Request{ID: int64(len(d.Requests) + 1), UserID: uid, UserRow: int32(ui), TsMs: e.TsMs,
				Surface: e.Surface, QueryTopic: data.NoQueryTopic, CtxItemRow: -1, First: int32(len(d.Imps)), Count: int32(1 + neg)}
			pos := Imp{AdRow: ad}
			pos.Labels[click] = 1
			if e.Action == feature.ActLongClick && long >= 0 {
				pos.Labels[long] = 1
			}
			if e.Action == feature.ActSave && save >= 0 {
				pos.Labels[save] = 1
			}
			d.Imps = append(d.Imps, pos)
			for k := 0; k < neg; k++ {
				d.Imps = append(d.Imps, Imp{AdRow: active[rng.IntN(len(active))]})
			}
			d.Requests = append(d.Requests, r)
		}
	}
	if len(d.Requests) == 0 {
		return fmt.Errorf("no engagement with an ad to learn from")
	}
	return nil
}
