package eval

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/train"
)

// EventRecall measures retrieval on an events-only data set (MovieLens,
// after batch.SynthesizeFromEvents): for sampled test-range engagements, the
// share whose engaged ad is in a method's top K over every active ad the
// user had not engaged with before (the time split's leave-future-out
// protocol). Methods: the L1 model's click score, and popularity (training
// engagements per ad). Reported as RetrievalReport with Eligible the mean
// candidate count.
func EventRecall(d *batch.Data, models map[string]*train.L1, requests int, ks []int) (*RetrievalReport, error) {
	click := d.Cfg.TaskIndex(data.ActionClick)
	if click < 0 {
		return nil, fmt.Errorf("event recall needs the click task")
	}
	test := d.RequestsIn(batch.Test)
	if len(test) == 0 {
		return nil, fmt.Errorf("no test-range engagements")
	}
	if requests <= 0 {
		requests = 1000
	}
	step := max(1, len(test)/requests)
	var reqs []int32
	for i := 0; i < len(test) && len(reqs) < requests; i += step {
		reqs = append(reqs, test[i])
	}
	pop := make([]float64, len(d.AdIDs))
	for _, ri := range d.RequestsIn(batch.Train) {
		r := &d.Requests[ri]
		pop[d.Imps[r.First].AdRow]++ // the first impression is the engaged ad
	}
	if len(models) != 1 {
		return nil, fmt.Errorf("event recall scores one L1 route, got %d", len(models))
	}
	var m *train.L1
	for _, x := range models {
		m = x
	}
	all := make([]int32, len(d.AdIDs))
	for i := range all {
		all[i] = int32(i)
	}
	av, err := m.AdVectors(d, all, click)
	if err != nil {
		return nil, err
	}
	uv, err := m.UserVectors(d, reqs, click)
	if err != nil {
		return nil, err
	}
	dim, beta := m.Spec.OutDim, m.Beta(click)
	rep := &RetrievalReport{Requests: len(reqs), Recall: map[string]map[string]float64{"model": {}, "popularity": {}}}
	for _, m := range rep.Recall {
		for _, k := range ks {
			m[fmt.Sprintf("@%d", k)] = 0
		}
	}
	type scored struct {
		ad int32
		s  float64
	}
	byScore := func(a, b scored) int { return cmp.Or(cmp.Compare(b.s, a.s), cmp.Compare(a.ad, b.ad)) }
	cands := 0
	for qi, ri := range reqs {
		r := &d.Requests[ri]
		target := d.Imps[r.First].AdRow
		seen := map[int32]bool{}
		for _, e := range d.Seq.Sequence(nil, r.UserID, r.TsMs, 1<<30) {
			if a, ok := d.AdRow[e.ItemID]; ok {
				seen[a] = true
			}
		}
		u := uv[qi*dim : (qi+1)*dim]
		var model, popular []scored
		for a := range d.AdIDs {
			if !d.AdActive[a] || seen[int32(a)] {
				continue
			}
			z := float64(beta)
			for k, x := range av[a*dim : (a+1)*dim] {
				z += float64(x) * float64(u[k])
			}
			model = append(model, scored{int32(a), z}) // bid is constant: rank by the logit
			popular = append(popular, scored{int32(a), pop[a]})
		}
		cands += len(model)
		for name, list := range map[string][]scored{"model": model, "popularity": popular} {
			slices.SortFunc(list, byScore)
			for _, k := range ks {
				for _, x := range list[:min(k, len(list))] {
					if x.ad == target {
						rep.Recall[name][fmt.Sprintf("@%d", k)] += 1 / float64(len(reqs))
						break
					}
				}
			}
		}
	}
	rep.Eligible = cands / len(reqs)
	return rep, nil
}
