package eval

import (
	"fmt"
	"math"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/train"
)

// KLReport is L1's divergence from L2: KL(p_L2 ‖ p_L1) per task, with p_L2
// the calibrated L2 probability of the request's surface and p_L1 =
// σ(⟨u_t, a_t⟩ + β_t), both clipped to [1e-6, 1 − 1e-6] and computed in
// float64. "winners" are the test impressions (at their logged position
// for L2); "candidates" add the logged candidates of the same requests
// (up to caps.distill_logged_candidates each, position 0), the rows an L1
// is distilled on.
type KLReport struct {
	Rows map[string]int                `json:"rows"`
	KL   map[string]map[string]float64 `json:"kl"` // set → task → mean KL
}

// L1KL measures KL(p_L2 ‖ p_L1) on evenly sampled test requests.
func L1KL(dir string, d *batch.Data, l1 map[string]*train.L1, l2 map[string]*train.L2, requests int) (*KLReport, error) {
	test := d.RequestsIn(batch.Test)
	if requests <= 0 {
		requests = 1000
	}
	step := max(1, len(test)/requests)
	want := map[int64]int32{}
	var reqs []int32
	for i := 0; i < len(test) && len(reqs) < requests; i += step {
		reqs = append(reqs, test[i])
		want[d.Requests[test[i]].ID] = test[i]
	}
	extra := map[int32][]batch.Row{}
	capN := d.Cfg.Caps.DistillLoggedCandidates
	err := data.ForEach(dir, data.TableCandidates, 8192, func(rows []data.Candidate) error {
		for _, c := range rows {
			ri, ok := want[c.RequestID]
			if !ok || c.Shown || len(extra[ri]) >= capN {
				continue
			}
			if a, ok := d.AdRow[c.AdID]; ok {
				extra[ri] = append(extra[ri], batch.Row{Req: ri, Imp: -1, AdRow: a})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	nt := len(d.Cfg.Tasks)
	trains := batch.TrainsMatrix(d.Cfg)
	views := d.Cfg.ViewTypes()
	rep := &KLReport{Rows: map[string]int{}, KL: map[string]map[string]float64{"winners": {}, "candidates": {}}}
	counts := map[string]map[string]float64{"winners": {}, "candidates": {}}
	for s, sf := range d.Cfg.Surfaces {
		m2 := l2[sf.Name]
		if m2 == nil {
			return nil, fmt.Errorf("no L2 model for surface %s", sf.Name)
		}
		var rows []batch.Row
		var winner []bool
		for _, ri := range reqs {
			r := &d.Requests[ri]
			if int(r.Surface) != s {
				continue
			}
			for k := r.First; k < r.First+r.Count; k++ {
				im := &d.Imps[k]
				rows = append(rows, batch.Row{Req: ri, Imp: k, AdRow: im.AdRow, Position: im.Position})
				winner = append(winner, true)
			}
			for _, x := range extra[ri] {
				rows = append(rows, x)
				winner = append(winner, false)
			}
		}
		if len(rows) == 0 {
			continue
		}
		z2, err := train.PredictLogits(m2, d, rows)
		if err != nil {
			return nil, err
		}
		// Each row is scored by the L1 route of its (surface, product).
		z1 := make([]float32, len(rows)*nt)
		for route, m1 := range l1 {
			var sub []batch.Row
			var at []int
			for i, r := range rows {
				for _, p := range m1.Pairs {
					if p == [2]int{s, int(d.AdProduct[r.AdRow])} {
						sub, at = append(sub, r), append(at, i)
						break
					}
				}
			}
			if len(sub) == 0 {
				continue
			}
			z, err := train.PredictL1(m1, d, sub)
			if err != nil {
				return nil, fmt.Errorf("route %s: %w", route, err)
			}
			for j, i := range at {
				copy(z1[i*nt:(i+1)*nt], z[j*nt:(j+1)*nt])
			}
		}
		for i, r := range rows {
			req := &d.Requests[r.Req]
			for k, task := range d.Cfg.Tasks {
				if !trains[s][k] {
					continue
				}
				p := clip(float64(m2.Calib.Lookup(sf.Name, views[req.View], task).Apply(z2[i*nt+k])))
				q := clip(1 / (1 + math.Exp(-float64(z1[i*nt+k]))))
				kl := p*math.Log(p/q) + (1-p)*math.Log((1-p)/(1-q))
				sets := []string{"candidates"}
				if winner[i] {
					sets = append(sets, "winners")
				}
				for _, set := range sets {
					rep.KL[set][task] += kl
					counts[set][task]++
				}
			}
			rep.Rows["candidates"]++
			if winner[i] {
				rep.Rows["winners"]++
			}
		}
	}
	for set, m := range rep.KL {
		for task := range m {
			m[task] /= counts[set][task]
		}
	}
	return rep, nil
}

func clip(p float64) float64 { return min(max(p, 1e-6), 1-1e-6) }
