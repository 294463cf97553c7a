package sim

import (
	"fmt"
	"math"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/feature"
)

// Task logits. long_click and hide are conditional: P(long_click) =
// P(click)·σ(z_long_click) and P(hide) = (1 − P(click))·σ(z_hide).
const (
	TaskClick = iota
	TaskSave
	TaskLongClick
	TaskHide
	NumTasks
)

// TaskNames name the tasks in Task* order, as the config spells them.
var TaskNames = [NumTasks]string{"click", "save", "long_click", "hide"}

// Named components of a task's log-odds, in the order ablations report them.
const (
	CompLongTerm = iota
	CompShortTerm
	CompQuality
	CompContext
	CompPosition
	NumComponents
)

// ComponentNames name the components in Comp* order.
var ComponentNames = [NumComponents]string{"long_term", "short_term", "quality", "context", "position"}

// affinityScale multiplies the inner products of unit topic vectors in the
// affinity, short-term and context components. A fixed scale (rather than
// √topics) keeps an on-topic ad's boost, and so base rates, alike across
// scales with different topic counts.
const affinityScale = 4.0

// Req is a request as the truth sees it: who, when, where and in what
// context. Surface and ViewType index the config's lists.
type Req struct {
	UserID   int64
	TsMs     int64
	Surface  int
	ViewType int
	// QueryTopic is a topic on query surfaces, else data.NoQueryTopic.
	QueryTopic int32
	// ContextItemID is an item id on item surfaces, else data.NoContextItem.
	ContextItemID int64
}

// Terms is the decomposition of every task's log-odds for one (request,
// ad, position): Logit(t) = Base[t] + Σ_c Part[t][c].
type Terms struct {
	Base [NumTasks]float64
	Part [NumTasks][NumComponents]float64
}

// Logit returns task t's log-odds.
func (tm *Terms) Logit(t int) float64 {
	z := tm.Base[t]
	for _, p := range tm.Part[t] {
		z += p
	}
	return z
}

// Probs are the true marginal probabilities of the four labels.
type Probs [NumTasks]float64

// Probs turns the terms into marginal probabilities.
func (tm *Terms) Probs() Probs {
	pc := sigmoid(tm.Logit(TaskClick))
	return Probs{
		TaskClick:     pc,
		TaskSave:      sigmoid(tm.Logit(TaskSave)),
		TaskLongClick: pc * sigmoid(tm.Logit(TaskLongClick)),
		TaskHide:      (1 - pc) * sigmoid(tm.Logit(TaskHide)),
	}
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// shortTerm returns the short-term interest vector s of a sequence (newest
// first): the age-decayed mean topic of its newest W non-hide events,
// s = Σ_j a_j φ_j / (1 + Σ_j a_j), a_j = exp(−age_j/τ).
func (w *World) shortTerm(dst []float64, seq []feature.Event, tsMs int64) []float64 {
	dst = dst[:0]
	for range w.k {
		dst = append(dst, 0)
	}
	win := min(len(seq), w.cfg.Sequence.ShortTerm)
	tau := w.cfg.Sim.ShortTermTauS * 1000
	var tot float64
	for _, e := range seq[:win] {
		it := w.itemIndex(e.ItemID)
		if e.Action == feature.ActHide || it < 0 {
			continue
		}
		a := math.Exp(-float64(tsMs-e.TsMs) / tau)
		tot += a
		for j, x := range w.phi(it) {
			dst[j] += a * float64(x)
		}
	}
	for j := range dst {
		dst[j] /= 1 + tot
	}
	return dst
}

// terms computes the decomposition for ad index ad at position pos, given
// the request's short-term vector st (from shortTerm).
func (w *World) terms(req *Req, user int, st []float64, ad int, pos int32) Terms {
	cfg := w.cfg
	phi := w.phi(ad)
	var lt, sh float64
	for j, x := range w.theta(user) {
		lt += float64(x) * float64(phi[j])
	}
	for j, x := range st {
		sh += x * float64(phi[j])
	}
	lt *= affinityScale
	sh *= affinityScale
	var ctx float64
	switch cfg.Surfaces[req.Surface].Context {
	case config.ContextQuery:
		if req.QueryTopic >= 0 && int(req.QueryTopic) < w.k {
			ctx = affinityScale * float64(phi[req.QueryTopic])
		}
	case config.ContextItem:
		if ci := w.itemIndex(req.ContextItemID); ci >= 0 {
			for j, x := range w.phi(ci) {
				ctx += float64(x) * float64(phi[j])
			}
			ctx *= affinityScale
		}
	}
	adv := w.advEff[w.adAdv[ad]]
	qualCreative := float64(w.adQC[ad]) + adv
	qualLanding := float64(w.adQL[ad]) + adv
	sf := cfg.Surfaces[req.Surface]
	vt := sf.ViewTypes[req.ViewType].Name
	posTerm := -cfg.Sim.PositionDecay[vt] * math.Log2(1+float64(pos))
	var tm Terms
	for t, name := range TaskNames {
		wt := cfg.Sim.Weights[name]
		q := qualCreative
		if t == TaskLongClick {
			q = qualLanding
		}
		tm.Base[t] = cfg.Sim.Base[sf.Name][name] + cfg.Sim.ViewOffset[vt]
		tm.Part[t] = [NumComponents]float64{
			CompLongTerm:  wt.LongTerm * lt,
			CompShortTerm: wt.ShortTerm * sh,
			CompQuality:   wt.Quality * q,
			CompContext:   wt.Context * ctx,
			CompPosition:  posTerm,
		}
	}
	return tm
}

// Terms decomposes the true log-odds of ad adID shown at position pos in
// request req, whose user's as-of sequence (newest first, feature.AsOf) is
// seq. Never-shown pairs are evaluated at position 0.
func (w *World) Terms(req Req, seq []feature.Event, adID int64, pos int32) (Terms, error) {
	user := w.userIndex(req.UserID)
	if user < 0 {
		return Terms{}, fmt.Errorf("sim: unknown user_id %d", req.UserID)
	}
	ad := w.itemIndex(adID)
	if ad < 0 || ad >= w.numAds {
		return Terms{}, fmt.Errorf("sim: unknown ad_id %d", adID)
	}
	if req.Surface < 0 || req.Surface >= len(w.cfg.Surfaces) {
		return Terms{}, fmt.Errorf("sim: surface index %d out of range", req.Surface)
	}
	if req.ViewType < 0 || req.ViewType >= len(w.cfg.Surfaces[req.Surface].ViewTypes) {
		return Terms{}, fmt.Errorf("sim: view type index %d out of range for surface %s", req.ViewType, w.cfg.Surfaces[req.Surface].Name)
	}
	if pos < 0 {
		return Terms{}, fmt.Errorf("sim: negative position %d", pos)
	}
	st := w.shortTerm(nil, seq, req.TsMs)
	return w.terms(&req, user, st, ad, pos), nil
}

// TrueProb returns the true label probabilities of any (request, ad) pair;
// see Terms.
func (w *World) TrueProb(req Req, seq []feature.Event, adID int64, pos int32) (Probs, error) {
	tm, err := w.Terms(req, seq, adID, pos)
	if err != nil {
		return Probs{}, err
	}
	return tm.Probs(), nil
}
