package sim

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/feature"
)

const dayMs = 86_400_000

// organicActions and their shares for organic engagements.
var (
	organicActions   = []uint8{feature.ActClick, feature.ActLongClick, feature.ActSave}
	organicActionCum = cumulative([]float64{0.6, 0.25, 0.15})
	actionNames      = [feature.NumActions]string{data.ActionClick, data.ActionSave, data.ActionLongClick, data.ActionHide}
)

// userOut is everything one user's timeline produced. Request ids are local
// (0, 1, …) until the writer numbers them globally.
type userOut struct {
	events      []data.Event
	requests    []data.Request
	impressions []data.Impression
	candidates  []data.Candidate
}

// userScratch holds one worker's reusable buffers.
type userScratch struct {
	hist     []feature.Event
	seq      []feature.Event
	st       []float64
	interest []float64 // the user's topic choice CDF
	starts   []int64
	cands    []int32
	scores   []float64
	keys     []float64
	seen     []uint32 // ad index → stamp of the request that drew it
	stamp    uint32
}

func (w *World) newScratch() *userScratch {
	return &userScratch{seen: make([]uint32, w.numAds), interest: make([]float64, w.k)}
}

// days returns the first (negative: history) and one-past-last day index.
func (w *World) days() (first, end int) {
	sp := w.split
	return -sp.HistoryDays, sp.TrainDays + sp.ValidationDays + sp.TestDays
}

// simulateUser plays user u's whole timeline into out.
func (w *World) simulateUser(u int, sc *userScratch, out *userOut) {
	cfg := w.cfg.Sim
	r := w.rng(tagTimeline, uint64(u))
	uid := UserID(u)
	sc.hist = sc.hist[:0]
	theta := w.theta(u)
	for j, x := range theta {
		sc.interest[j] = math.Exp(interestSharpness * float64(x))
	}
	interest := cumulativeInPlace(sc.interest)
	start := w.cfg.Start().UnixMilli()
	first, end := w.days()
	gapMs := cfg.EventGapS * 1000
	var now int64
	for d := first; d < end; d++ {
		day0 := start + int64(d)*dayMs
		sc.starts = sc.starts[:0]
		for range poisson(r, w.userRate[u]) {
			sc.starts = append(sc.starts, day0+r.Int64N(dayMs))
		}
		slices.Sort(sc.starts)
		for _, s0 := range sc.starts {
			now = max(now+1000, s0)
			z := w.sessionTopic(r, interest)
			steps := 1 + poisson(r, cfg.SessionEvents)
			for step := range steps {
				if step > 0 {
					if r.Float64() < cfg.ShortTermSwitch {
						z = w.sessionTopic(r, interest)
					}
					now += 1000 + int64(r.ExpFloat64()*gapMs)
				}
				topic := z
				if r.Float64() >= cfg.ShortTermShare {
					topic = draw(r, interest)
				}
				item := w.organicItem(r, topic)
				w.addEvent(sc, out, uid, feature.Event{
					TsMs: now, ItemID: ItemID(item),
					Action:  organicActions[draw(r, organicActionCum)],
					Surface: uint8(draw(r, w.surfaceCum)),
				})
				if d >= 0 && r.Float64() < cfg.RequestRate {
					now = w.request(r, sc, out, u, now+1000, topic, item)
				}
			}
		}
	}
}

// sessionTopic draws a session's short-term topic: half the time from the
// user's long-term interests, half from global popularity.
func (w *World) sessionTopic(r *rand.Rand, interest []float64) int {
	if r.Float64() < 0.5 {
		return draw(r, interest)
	}
	return draw(r, w.topicCum)
}

func (w *World) organicItem(r *rand.Rand, topic int) int {
	if items := w.organicByTopic[topic]; len(items) > 0 {
		return int(items[r.IntN(len(items))])
	}
	return w.numAds + r.IntN(w.scale.OrganicItems)
}

func (w *World) addEvent(sc *userScratch, out *userOut, uid int64, e feature.Event) {
	sc.hist = append(sc.hist, e)
	out.events = append(out.events, data.Event{
		UserID: uid, TsMs: e.TsMs, ItemID: e.ItemID,
		Action: actionNames[e.Action], Surface: w.cfg.Surfaces[e.Surface].Name,
	})
}

// request plays one ad request at ts: the logging policy scores its
// candidates, shows the top slots, and the user reacts. It returns the
// time after the user's reactions.
func (w *World) request(r *rand.Rand, sc *userScratch, out *userOut, u int, ts int64, topic, item int) int64 {
	s := draw(r, w.surfaceCum)
	sf := &w.cfg.Surfaces[s]
	v := draw(r, w.viewCum[s])
	req := Req{UserID: UserID(u), TsMs: ts, Surface: s, ViewType: v,
		QueryTopic: data.NoQueryTopic, ContextItemID: data.NoContextItem}
	switch sf.Context {
	case config.ContextQuery:
		req.QueryTopic = int32(topic)
	case config.ContextItem:
		req.ContextItemID = ItemID(item)
	}
	local := int64(len(out.requests))
	out.requests = append(out.requests, data.Request{
		RequestID: local, UserID: req.UserID, TsMs: ts, Surface: sf.Name, ViewType: sf.ViewTypes[v].Name,
		QueryTopic: req.QueryTopic, ContextItemID: req.ContextItemID,
	})
	sc.seq = feature.AsOf(sc.seq[:0], sc.hist, ts, w.cfg.Sequence.ShortTerm)
	sc.st = w.shortTerm(sc.st, sc.seq, ts)

	w.drawCandidates(r, sc, &req, u)
	slots := min(sf.ViewTypes[v].Slots, len(sc.cands))
	shown := w.policy(r, sc, &req, u, slots)
	for i, c := range sc.cands {
		out.candidates = append(out.candidates, data.Candidate{
			RequestID: local, AdID: ItemID(int(c)), LoggingScore: float32(sc.scores[i]),
		})
	}
	base := len(out.candidates) - len(sc.cands)
	last := ts
	for pos, ci := range shown {
		out.candidates[base+ci].Shown = true
		ad := int(sc.cands[ci])
		tm := w.terms(&req, u, sc.st, ad, int32(pos))
		p := tm.Probs()
		imp := data.Impression{
			RequestID: local, AdID: ItemID(ad), Position: int32(pos),
			PTrueClick: p[TaskClick], PTrueSave: p[TaskSave],
			PTrueLongClick: p[TaskLongClick], PTrueHide: p[TaskHide],
		}
		// P(long_click | click) and P(hide | no click) are the conditional
		// sigmoids; drawing them this way keeps the marginals above.
		u1, u2, u3, u4 := r.Float64(), r.Float64(), r.Float64(), r.Float64()
		at := ts + 500 + 400*int64(pos)
		if u1 < p[TaskClick] {
			imp.Click = 1
			act := feature.ActClick
			if u2 < sigmoid(tm.Logit(TaskLongClick)) {
				imp.LongClick = 1
				act = feature.ActLongClick
			}
			w.addEvent(sc, out, req.UserID, feature.Event{TsMs: at, ItemID: ItemID(ad), Action: act, Surface: uint8(s)})
		} else if u3 < sigmoid(tm.Logit(TaskHide)) {
			imp.Hide = 1
			w.addEvent(sc, out, req.UserID, feature.Event{TsMs: at, ItemID: ItemID(ad), Action: feature.ActHide, Surface: uint8(s)})
		}
		if u4 < p[TaskSave] {
			imp.Save = 1
			w.addEvent(sc, out, req.UserID, feature.Event{TsMs: at + 100, ItemID: ItemID(ad), Action: feature.ActSave, Surface: uint8(s)})
		}
		last = at + 100
		out.impressions = append(out.impressions, imp)
	}
	return last
}

// drawCandidates fills sc.cands with distinct eligible active ads for the
// request: a share from the user's long-term topics, a share from the
// request's context (query topic, context item's topic, or a recent event's
// topic), the rest uniformly from the surface's eligible ads.
func (w *World) drawCandidates(r *rand.Rand, sc *userScratch, req *Req, u int) {
	lg := w.cfg.Sim.Logging
	pool := w.adsBySurface[req.Surface]
	want := min(w.cfg.Caps.CandidatesPerRequest, len(pool))
	sc.cands = sc.cands[:0]
	sc.stamp++
	if sc.stamp == 0 { // wrapped: clear stale stamps
		clear(sc.seen)
		sc.stamp = 1
	}
	interest := sc.interest
	for tries := 0; len(sc.cands) < want && tries < 8*want; tries++ {
		var list []int32
		switch x := r.Float64(); {
		case x < lg.InterestShare:
			list = w.adsByST[req.Surface][draw(r, interest)]
		case x < lg.InterestShare+lg.ContextShare:
			list = w.adsByST[req.Surface][w.contextTopic(r, sc, req, interest)]
		}
		if len(list) == 0 {
			list = pool
		}
		ad := list[r.IntN(len(list))]
		if sc.seen[ad] != sc.stamp {
			sc.seen[ad] = sc.stamp
			sc.cands = append(sc.cands, ad)
		}
	}
}

func (w *World) contextTopic(r *rand.Rand, sc *userScratch, req *Req, interest []float64) int {
	switch {
	case req.QueryTopic >= 0:
		return int(req.QueryTopic)
	case req.ContextItemID >= 0:
		return int(w.itemCat[w.itemIndex(req.ContextItemID)])
	case len(sc.seq) > 0:
		return int(w.itemCat[w.itemIndex(sc.seq[r.IntN(len(sc.seq))].ItemID)])
	}
	return draw(r, interest)
}

// policy scores sc.cands with the logging policy, a stale, noisy click
// model times bid, into sc.scores, and returns the indexes (into sc.cands)
// of the ads shown, best slot first: the top slots by Gumbel-perturbed log
// score.
func (w *World) policy(r *rand.Rand, sc *userScratch, req *Req, u int, slots int) []int {
	lg := w.cfg.Sim.Logging
	theta := w.theta(u)
	sf := &w.cfg.Surfaces[req.Surface]
	base := w.cfg.Sim.Base[sf.Name]["click"]
	sc.scores, sc.keys = sc.scores[:0], sc.keys[:0]
	for _, c := range sc.cands {
		ad := int(c)
		phi := w.phi(ad)
		var lt float64
		for j, x := range theta {
			lt += float64(x) * float64(phi[j])
		}
		var ctx float64
		if req.QueryTopic >= 0 {
			ctx = affinityScale * float64(phi[req.QueryTopic])
		} else if req.ContextItemID >= 0 && w.itemCat[w.itemIndex(req.ContextItemID)] == w.itemCat[ad] {
			ctx = 1
		}
		z := base + lg.AffinityWeight*affinityScale*lt + lg.QualityWeight*float64(w.adQC[ad]) +
			lg.ContextWeight*ctx + lg.NoiseSD*r.NormFloat64()
		score := float64(w.adBid[ad]) * sigmoid(z)
		sc.scores = append(sc.scores, score)
		sc.keys = append(sc.keys, math.Log(score)+lg.GumbelScale*gumbel(r))
	}
	shown := make([]int, 0, slots)
	for range slots {
		best := -1
		for i, k := range sc.keys {
			if !math.IsInf(k, -1) && (best < 0 || k > sc.keys[best]) {
				best = i
			}
		}
		shown = append(shown, best)
		sc.keys[best] = math.Inf(-1)
	}
	return shown
}

func gumbel(r *rand.Rand) float64 {
	return -math.Log(r.ExpFloat64())
}

// poisson draws from Poisson(lambda) (Knuth for small lambda, a rounded
// normal for large).
func poisson(r *rand.Rand, lambda float64) int {
	if lambda > 60 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l := math.Exp(-lambda)
	k, p := 0, r.Float64()
	for p > l {
		k++
		p *= r.Float64()
	}
	return k
}

// cumulativeInPlace turns weights into their normalised cumulative sums.
func cumulativeInPlace(w []float64) []float64 {
	var s float64
	for i, x := range w {
		s += x
		w[i] = s
	}
	for i := range w {
		w[i] /= s
	}
	w[len(w)-1] = 1
	return w
}
