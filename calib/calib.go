package calib

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// MinA is the smallest slope Fit returns.
const MinA = 0.05

const (
	ridge       = 1e-6  // added to the Hessian's diagonal
	maxIter     = 50    // Newton iterations per problem
	stepTol     = 1e-10 // convergence: Newton step length
	maxHalvings = 40    // line search
	// lossSlack is how far, relative to the loss, a step may raise the
	// mean loss and still be taken: rounding noise in the sum, so that
	// steps near the optimum are not halved in vain.
	lossSlack = 1e-12
	// chunk is the number of rows summed by one goroutine. The partial
	// sums are added in chunk order, so results do not depend on the
	// number of CPUs.
	chunk = 1 << 15
)

// ErrDegenerate is matched by the error of a fit whose labels have no
// positive or no negative mass, so that no finite calibration exists.
var ErrDegenerate = errors.New("calib: labels need both positive and negative mass")

// Params is the calibration map p = σ(A·z + B) of a logit z.
type Params struct {
	A, B float64
}

// Identity is the map that leaves logits as they are: p = σ(z).
var Identity = Params{A: 1, B: 0}

// Logit returns the calibrated logit A·z + B, computed in float64.
func (p Params) Logit(z float32) float32 {
	return float32(p.A*float64(z) + p.B)
}

// Apply returns the calibrated probability σ(A·z + B), computed in
// float64.
func (p Params) Apply(z float32) float32 {
	return float32(sigmoid(p.A*float64(z) + p.B))
}

// sigmoid returns 1/(1+e^-s) without overflow.
func sigmoid(s float64) float64 {
	if s >= 0 {
		return 1 / (1 + math.Exp(-s))
	}
	e := math.Exp(s)
	return e / (1 + e)
}

// Fit returns the calibration of logits z for labels y in [0, 1] that
// maximises the log-likelihood weighted by w (nil weighs every row 1),
// subject to A ≥ MinA; see the package documentation for the method. Its
// error matches ErrDegenerate when the labels have no positive or no
// negative mass.
func Fit(z, y, w []float32) (Params, error) {
	if err := validate(z, y, w); err != nil {
		return Params{}, err
	}
	return fit(rows{z, y, w})
}

// validate checks one set of rows for Fit and FitTable.
func validate(z, y, w []float32) error {
	if len(z) != len(y) {
		return fmt.Errorf("calib: %d logits but %d labels", len(z), len(y))
	}
	if w != nil && len(w) != len(z) {
		return fmt.Errorf("calib: %d logits but %d weights", len(z), len(w))
	}
	if len(z) == 0 {
		return errors.New("calib: no rows")
	}
	for i := range z {
		if zi := float64(z[i]); math.IsNaN(zi) || math.IsInf(zi, 0) {
			return fmt.Errorf("calib: logit %d is %v", i, zi)
		}
		if yi := y[i]; !(yi >= 0 && yi <= 1) {
			return fmt.Errorf("calib: label %d is %v, outside [0, 1]", i, yi)
		}
		if w != nil {
			if wi := float64(w[i]); !(wi >= 0) || math.IsInf(wi, 1) {
				return fmt.Errorf("calib: weight %d is %v, want finite and nonnegative", i, wi)
			}
		}
	}
	return nil
}

// rows are validated logits, labels and optional weights.
type rows struct {
	z, y, w []float32
}

// mass returns the positive and negative label mass of r.
func (r rows) mass() (pos, neg float64) {
	for i := range r.z {
		wi := 1.0
		if r.w != nil {
			wi = float64(r.w[i])
		}
		yi := float64(r.y[i])
		pos += wi * yi
		neg += wi * (1 - yi)
	}
	return pos, neg
}

// fit fits validated rows.
func fit(r rows) (Params, error) {
	pos, neg := r.mass()
	switch {
	case !(pos > 0) && !(neg > 0):
		return Params{}, fmt.Errorf("%w: all weights are 0", ErrDegenerate)
	case !(pos > 0):
		return Params{}, fmt.Errorf("%w: no positive label mass", ErrDegenerate)
	case !(neg > 0):
		return Params{}, fmt.Errorf("%w: no negative label mass", ErrDegenerate)
	}
	o := objective{rows: r, total: pos + neg}
	p := o.newton2(Identity)
	if p.A < MinA {
		p = o.newton1(Params{A: MinA, B: 0})
	}
	if math.IsNaN(p.A) || math.IsNaN(p.B) || math.IsInf(p.A, 0) || math.IsInf(p.B, 0) {
		return Params{}, fmt.Errorf("calib: fit diverged to A=%v B=%v", p.A, p.B)
	}
	return p, nil
}

// objective is the mean weighted negative log-likelihood of rows.
type objective struct {
	rows
	total float64 // sum of weights
}

// state is the loss with its gradient and Hessian at a point, all divided
// by the total weight.
type state struct {
	loss          float64
	ga, gb        float64
	haa, hab, hbb float64
}

func (s *state) add(t state) {
	s.loss += t.loss
	s.ga += t.ga
	s.gb += t.gb
	s.haa += t.haa
	s.hab += t.hab
	s.hbb += t.hbb
}

// eval returns the state at p. The loss of a row with label y and
// calibrated logit s is softplus(s) − y·s, whose derivative in s is
// σ(s) − y and second derivative σ(s)(1 − σ(s)).
func (o *objective) eval(p Params) state {
	n := len(o.z)
	chunks := (n + chunk - 1) / chunk
	var st state
	if chunks <= 1 {
		st = o.evalRange(p, 0, n)
	} else {
		parts := make([]state, chunks)
		workers := min(runtime.GOMAXPROCS(0), chunks)
		var wg sync.WaitGroup
		for k := range workers {
			wg.Go(func() {
				for c := k; c < chunks; c += workers {
					parts[c] = o.evalRange(p, c*chunk, min(n, (c+1)*chunk))
				}
			})
		}
		wg.Wait()
		for _, t := range parts {
			st.add(t)
		}
	}
	inv := 1 / o.total
	st.loss *= inv
	st.ga *= inv
	st.gb *= inv
	st.haa *= inv
	st.hab *= inv
	st.hbb *= inv
	return st
}

func (o *objective) evalRange(p Params, lo, hi int) state {
	var st state
	for i := lo; i < hi; i++ {
		z := float64(o.z[i])
		y := float64(o.y[i])
		w := 1.0
		if o.w != nil {
			w = float64(o.w[i])
		}
		s := p.A*z + p.B
		e := math.Exp(-math.Abs(s))
		var q float64 // σ(s)
		if s >= 0 {
			q = 1 / (1 + e)
		} else {
			q = e / (1 + e)
		}
		st.loss += w * (max(s, 0) + math.Log1p(e) - y*s)
		g := w * (q - y)
		h := w * q * (1 - q)
		st.ga += g * z
		st.gb += g
		st.haa += h * z * z
		st.hab += h * z
		st.hbb += h
	}
	return st
}

// newton2 minimises the loss over A and B from p.
func (o *objective) newton2(p Params) Params {
	st := o.eval(p)
	for range maxIter {
		haa, hab, hbb := st.haa+ridge, st.hab, st.hbb+ridge
		det := haa*hbb - hab*hab
		if !(det > 0) {
			break
		}
		da := -(hbb*st.ga - hab*st.gb) / det
		db := -(haa*st.gb - hab*st.ga) / det
		if math.Hypot(da, db) < stepTol {
			break
		}
		var ok bool
		p, st, ok = o.search(p, st, da, db)
		if !ok {
			break
		}
	}
	return p
}

// newton1 minimises the loss over B with A fixed, from p.
func (o *objective) newton1(p Params) Params {
	st := o.eval(p)
	for range maxIter {
		db := -st.gb / (st.hbb + ridge)
		if math.Abs(db) < stepTol {
			break
		}
		var ok bool
		p, st, ok = o.search(p, st, 0, db)
		if !ok {
			break
		}
	}
	return p
}

// search halves the step (da, db) from p until the loss does not rise,
// and reports whether it found such a step.
func (o *objective) search(p Params, st state, da, db float64) (Params, state, bool) {
	t := 1.0
	for range maxHalvings {
		q := Params{A: p.A + t*da, B: p.B + t*db}
		nst := o.eval(q)
		if nst.loss <= st.loss+lossSlack*math.Abs(st.loss) {
			return q, nst, true
		}
		t /= 2
	}
	return p, st, false
}
