package eval

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/feature"
	"github.com/tandemml/tandem/sim"
	"github.com/tandemml/tandem/train"
)

// RetrievalReport is SYSTEM.md §5's retrieval recall: over the full
// eligible catalog of sampled test requests, the share of the true top-100
// by TrueProb(click) × bid (position 0) found in each method's top K.
type RetrievalReport struct {
	Requests int `json:"requests"`
	Eligible int `json:"mean_eligible_ads"`
	// Recall[method]["@100"|"@1000"]; methods: model, logging_policy, popularity.
	Recall map[string]map[string]float64 `json:"recall"`
	// PerRequest[method][k] is each sampled request's recall@Ks[k] and
	// Users the requests' users, for paired comparisons.
	PerRequest map[string][][]float64 `json:"-"`
	Users      []int64                `json:"-"`
}

// RetrievalOptions tune the retrieval evaluation.
type RetrievalOptions struct {
	Requests int // sampled test requests (default 1000)
	TrueTop  int // size of the true top set (default 100)
	Ks       []int
}

// Retrieval scores the L1 models' click utility σ(⟨u,a⟩+β)·bid over every
// eligible active ad for evenly spaced test requests — each ad scored by the
// route its (surface, product) maps to — and compares it with the logging
// policy's scored candidates (ranked by logging_score) and with popularity
// (training-day clicks, then bid). models maps route → model.
func Retrieval(dir string, d *batch.Data, models map[string]*train.L1, opts RetrievalOptions) (*RetrievalReport, error) {
	if opts.Requests <= 0 {
		opts.Requests = 1000
	}
	if opts.TrueTop <= 0 {
		opts.TrueTop = 100
	}
	if len(opts.Ks) == 0 {
		opts.Ks = []int{100, 1000}
	}
	tr, err := sim.Open(dir)
	if err != nil {
		return nil, err
	}
	click := d.Cfg.TaskIndex(data.ActionClick)
	if click < 0 {
		return nil, fmt.Errorf("retrieval recall needs the click task")
	}
	test := d.RequestsIn(batch.Test)
	if len(test) == 0 {
		return nil, fmt.Errorf("%s: no test requests", dir)
	}
	step := max(1, len(test)/opts.Requests)
	var reqs []int32
	for i := 0; i < len(test) && len(reqs) < opts.Requests; i += step {
		reqs = append(reqs, test[i])
	}
	// Popularity: training-day clicks per ad.
	pop := make([]float64, len(d.AdIDs))
	for _, ri := range d.RequestsIn(batch.Train) {
		r := &d.Requests[ri]
		for k := r.First; k < r.First+r.Count; k++ {
			pop[d.Imps[k].AdRow] += float64(d.Imps[k].Labels[click])
		}
	}
	// Logging policy candidates of the sampled requests.
	want := map[int64]int{}
	for i, ri := range reqs {
		want[d.Requests[ri].ID] = i
	}
	cands := make([][]data.Candidate, len(reqs))
	err = data.ForEach(dir, data.TableCandidates, 8192, func(rows []data.Candidate) error {
		for _, c := range rows {
			if i, ok := want[c.RequestID]; ok {
				cands[i] = append(cands[i], c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Per route: ad vectors of all ads, user vectors of the sampled requests.
	type routeVecs struct {
		av, uv []float32
		beta   float64
		dim    int
	}
	allAds := make([]int32, len(d.AdIDs))
	for i := range allAds {
		allAds[i] = int32(i)
	}
	pairRoute := map[[2]int]*routeVecs{}
	for route, m := range models {
		av, err := m.AdVectors(d, allAds, click)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", route, err)
		}
		uv, err := m.UserVectors(d, reqs, click)
		if err != nil {
			return nil, err
		}
		rv := &routeVecs{av: av, uv: uv, beta: float64(m.Beta(click)), dim: m.Spec.OutDim}
		for _, p := range m.Pairs {
			pairRoute[p] = rv
		}
	}
	views := d.Cfg.ViewTypes()
	rep := &RetrievalReport{Requests: len(reqs), Recall: map[string]map[string]float64{}, PerRequest: map[string][][]float64{}}
	for _, me := range []string{"model", "logging_policy", "popularity"} {
		rep.Recall[me] = map[string]float64{}
		rep.PerRequest[me] = make([][]float64, len(opts.Ks))
	}
	type scored struct {
		ad int32
		s  float64
	}
	var seq []feature.Event
	eligibleSum := 0
	for qi, ri := range reqs {
		r := &d.Requests[ri]
		sreq := sim.Req{UserID: r.UserID, TsMs: r.TsMs, Surface: int(r.Surface), ViewType: viewIndex(d, r, views),
			QueryTopic: r.QueryTopic, ContextItemID: data.NoContextItem}
		if r.CtxItemRow >= 0 {
			sreq.ContextItemID = d.ItemIDs[r.CtxItemRow]
		}
		seq = tr.Events.Sequence(seq[:0], r.UserID, r.TsMs, d.Cfg.Sequence.ShortTerm)
		var truth, model, popular []scored
		for a := range d.AdIDs {
			if !d.AdActive[a] || d.AdEligible[a]&(1<<r.Surface) == 0 {
				continue
			}
			rv := pairRoute[[2]int{int(r.Surface), int(d.AdProduct[a])}]
			if rv == nil {
				return nil, fmt.Errorf("no L1 route serves surface %s, product %s", d.Cfg.Surfaces[r.Surface].Name, d.Cfg.Products[d.AdProduct[a]])
			}
			dim := rv.dim
			u := rv.uv[qi*dim : (qi+1)*dim]
			p, err := tr.World.TrueProb(sreq, seq, d.AdIDs[a], 0)
			if err != nil {
				return nil, err
			}
			bid := float64(d.AdBid[a])
			truth = append(truth, scored{int32(a), p[sim.TaskClick] * bid})
			var z float64
			for k, x := range rv.av[a*dim : (a+1)*dim] {
				z += float64(x) * float64(u[k])
			}
			model = append(model, scored{int32(a), bid / (1 + math.Exp(-(z + rv.beta)))})
			popular = append(popular, scored{int32(a), pop[a] + 1e-3*bid})
		}
		eligibleSum += len(truth)
		rep.Users = append(rep.Users, r.UserID)
		byScore := func(a, b scored) int {
			if c := cmp.Compare(b.s, a.s); c != 0 {
				return c
			}
			return cmp.Compare(a.ad, b.ad)
		}
		slices.SortFunc(truth, byScore)
		top := map[int32]bool{}
		for _, t := range truth[:min(opts.TrueTop, len(truth))] {
			top[t.ad] = true
		}
		var logged []scored
		for _, c := range cands[qi] {
			if a, ok := d.AdRow[c.AdID]; ok {
				logged = append(logged, scored{a, float64(c.LoggingScore)})
			}
		}
		for name, list := range map[string][]scored{"model": model, "logging_policy": logged, "popularity": popular} {
			slices.SortFunc(list, byScore)
			for ki, k := range opts.Ks {
				hit := 0
				for _, x := range list[:min(k, len(list))] {
					if top[x.ad] {
						hit++
					}
				}
				rec := float64(hit) / float64(len(top))
				rep.Recall[name][fmt.Sprintf("@%d", k)] += rec / float64(len(reqs))
				rep.PerRequest[name][ki] = append(rep.PerRequest[name][ki], rec)
			}
		}
	}
	rep.Eligible = eligibleSum / len(reqs)
	return rep, nil
}

func viewIndex(d *batch.Data, r *batch.Request, views []string) int {
	for i, v := range d.Cfg.Surfaces[r.Surface].ViewTypes {
		if v.Name == views[r.View] {
			return i
		}
	}
	return 0
}

// WriteText prints the recall table.
func (r *RetrievalReport) WriteText(w io.Writer, name string) error {
	fmt.Fprintf(w, "retrieval %s: %d test requests, %d candidate ads each on average\n", name, r.Requests, r.Eligible)
	methods := make([]string, 0, len(r.Recall))
	for m := range r.Recall {
		methods = append(methods, m)
	}
	slices.Sort(methods)
	for _, m := range methods {
		ks := make([]string, 0, len(r.Recall[m]))
		for k := range r.Recall[m] {
			ks = append(ks, k)
		}
		slices.SortFunc(ks, func(a, b string) int { return cmp.Compare(len(a), len(b))*2 + cmp.Compare(a, b) })
		fmt.Fprintf(w, "  %-15s", m)
		for _, k := range ks {
			fmt.Fprintf(w, " recall%s %.3f", k, r.Recall[m][k])
		}
		if _, err := fmt.Fprintln(w); err != nil {
			return err
		}
	}
	return nil
}
