package train

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
)

// Fold is a user's distillation fold: the teacher of fold f trains on the
// users of fold f and labels the rows of the other fold, so no row is
// labelled by a model that trained on it.
func Fold(userID int64) int {
	x := uint64(userID) + 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return int((x ^ (x >> 31)) & 1)
}

// Teachers are the two fold models of an L1 distillation.
type Teachers [2]*L2

// TrainTeachers trains the 2-fold L2 teacher: each fold's unified L2 on
// its users' training impressions, with early stopping and calibration on
// its users' validation day.
func TrainTeachers(ctx context.Context, cfg *config.Config, d *batch.Data, opts Options, res *RunResult) (Teachers, error) {
	var t Teachers
	all := make([]int, len(cfg.Surfaces))
	for i := range all {
		all[i] = i
	}
	for f := range t {
		m, err := NewL2(cfg, d.Feat, all, opts.Seed+uint64(f)+1)
		if err != nil {
			return t, err
		}
		inFold := func(rows []batch.Row) []batch.Row {
			out := rows[:0]
			for _, r := range rows {
				if Fold(d.Requests[r.Req].UserID) == f {
					out = append(out, r)
				}
			}
			return out
		}
		tr := inFold(ImpressionRows(d, d.RequestsIn(batch.Train), all))
		val := inFold(ImpressionRows(d, d.RequestsIn(batch.Validation), all))
		o := opts
		o.ResumePath = ""
		if opts.Log != nil {
			log := opts.Log
			o.Log = func(format string, a ...any) { log(fmt.Sprintf("teacher fold %d: ", f)+format, a...) }
		}
		rep, err := fit(ctx, m, d, tr, val, o)
		if err != nil {
			return t, err
		}
		if err := FitCalibration(m, d, val); err != nil {
			return t, err
		}
		if res != nil {
			res.Reports[fmt.Sprintf("l2.teacher[fold %d]", f)] = rep
		}
		t[f] = m
	}
	return t, nil
}

// DistillRows returns the distillation rows of reqs (SYSTEM.md §2): each
// request's impressions (at their logged positions for the teacher), up to
// caps.distill_logged_candidates logged candidates and
// caps.distill_random_ads ads drawn uniformly from those eligible (active,
// eligible on the surface) at position 0. Labels are the calibrated
// probabilities of the request's surface from the teacher of the other
// fold.
func DistillRows(d *batch.Data, t Teachers, reqs []int32, cands map[int32][]int32, seed uint64) ([]batch.Row, error) {
	cfg := d.Cfg
	eligible := make([][]int32, len(cfg.Surfaces))
	for a := range d.AdIDs {
		for s := range cfg.Surfaces {
			if d.AdActive[a] && d.AdEligible[a]&(1<<s) != 0 {
				eligible[s] = append(eligible[s], int32(a))
			}
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x64697374))
	var byTeacher [2][]batch.Row
	for _, ri := range reqs {
		r := &d.Requests[ri]
		teacher := 1 - Fold(r.UserID)
		rows := byTeacher[teacher]
		for k := r.First; k < r.First+r.Count; k++ {
			im := &d.Imps[k]
			rows = append(rows, batch.Row{Req: ri, Imp: k, AdRow: im.AdRow, Position: im.Position, Weight: 1})
		}
		for _, a := range cands[ri] {
			rows = append(rows, batch.Row{Req: ri, Imp: -1, AdRow: a, Weight: 1})
		}
		if el := eligible[r.Surface]; len(el) > 0 {
			for range cfg.Caps.DistillRandomAds {
				rows = append(rows, batch.Row{Req: ri, Imp: -1, AdRow: el[rng.IntN(len(el))], Weight: 1})
			}
		}
		byTeacher[teacher] = rows
	}
	views := cfg.ViewTypes()
	nt := len(cfg.Tasks)
	var out []batch.Row
	for f, rows := range byTeacher {
		if len(rows) == 0 {
			continue
		}
		z, err := PredictLogits(t[f], d, rows)
		if err != nil {
			return nil, err
		}
		for i := range rows {
			req := &d.Requests[rows[i].Req]
			for k, task := range cfg.Tasks {
				rows[i].Labels[k] = t[f].Calib.Lookup(cfg.Surfaces[req.Surface].Name, views[req.View], task).Apply(z[i*nt+k])
			}
		}
		out = append(out, rows...)
	}
	return out, nil
}

// distillSet holds the teacher-labelled rows of one run, shared by every
// distilled L1 route and baseline.
type distillSet struct {
	train, val []batch.Row
}

func newDistillSet(ctx context.Context, cfg *config.Config, d *batch.Data, dataDir string, opts Options, res *RunResult) (*distillSet, error) {
	t, err := TrainTeachers(ctx, cfg, d, opts, res)
	if err != nil {
		return nil, err
	}
	cands, err := d.LoadCandidates(dataDir, cfg.Caps.DistillLoggedCandidates)
	if err != nil {
		return nil, err
	}
	ds := &distillSet{}
	if ds.train, err = DistillRows(d, t, d.RequestsIn(batch.Train), cands, opts.Seed); err != nil {
		return nil, err
	}
	if ds.val, err = DistillRows(d, t, d.RequestsIn(batch.Validation), cands, opts.Seed+1); err != nil {
		return nil, err
	}
	return ds, nil
}

// routeRows keeps the rows whose (surface, product) the route serves.
func (m *L1) routeRows(d *batch.Data, rows []batch.Row) []batch.Row {
	var out []batch.Row
	for _, r := range rows {
		p := [2]int{int(d.Requests[r.Req].Surface), int(d.AdProduct[r.AdRow])}
		for _, q := range m.Pairs {
			if p == q {
				out = append(out, r)
				break
			}
		}
	}
	return out
}
