package engine

import (
	"sync"
)

// Pool scores one batch on several workers at once: the rows (L2, the L1
// ad tower) or the contexts (the L1 user tower) are split into contiguous
// parts, one per worker. Rows are independent of their batch, so the
// outputs are bit-identical to a single worker's. A Pool's goroutines live
// until Close; a Pool serves one call at a time.
type Pool struct {
	workers []*Worker
	subs    []Batch
	ctx     [][]int32
	errs    []error
	tasks   chan poolTask
	wg      sync.WaitGroup
	mu      sync.Mutex
}

type poolTask struct {
	part int
	run  func(part int)
}

// NewPool starts a pool of n workers (n ≥ 1); the calling goroutine is one
// of them.
func NewPool(n int) *Pool {
	n = max(n, 1)
	p := &Pool{workers: make([]*Worker, n), subs: make([]Batch, n), ctx: make([][]int32, n), errs: make([]error, n), tasks: make(chan poolTask)}
	for i := range p.workers {
		p.workers[i] = NewWorker()
	}
	for range n - 1 {
		go func() {
			for t := range p.tasks {
				t.run(t.part)
				p.wg.Done()
			}
		}()
	}
	return p
}

// Close stops the pool's goroutines.
func (p *Pool) Close() { close(p.tasks) }

// Size is the number of workers.
func (p *Pool) Size() int { return len(p.workers) }

// do runs f on parts 0..k−1, part 0 on the calling goroutine, and returns
// the first error.
func (p *Pool) do(k int, f func(part int)) error {
	p.wg.Add(k - 1)
	for i := 1; i < k; i++ {
		p.tasks <- poolTask{part: i, run: f}
	}
	f(0)
	p.wg.Wait()
	for _, err := range p.errs[:k] {
		if err != nil {
			return err
		}
	}
	return nil
}

// parts splits n items into at most Size() contiguous parts of at least
// minPart items, returning the number of parts.
func (p *Pool) parts(n, minPart int) int {
	return max(1, min(len(p.workers), n/max(minPart, 1)))
}

func span(n, k, i int) (int, int) { return n * i / k, n * (i + 1) / k }

// RunL2 is [L2.Run] split over the pool's workers by rows. Each part
// carries only the contexts its rows use.
func (p *Pool) RunL2(m *L2, b *Batch, logits, probs []float32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := m.Validate(b); err != nil {
		return err
	}
	k := p.parts(b.N, 64)
	if k == 1 {
		return m.Run(p.workers[0], b, logits, probs)
	}
	nt := len(m.Tasks)
	d := &m.dims
	f := func(i int) {
		lo, hi := span(b.N, k, i)
		c0, c1 := int32(b.U), int32(0)
		for _, c := range b.Ctx[lo:hi] {
			c0, c1 = min(c0, c), max(c1, c+1)
		}
		s := &p.subs[i]
		sliceUsers(s, b, d, int(c0), int(c1))
		p.ctx[i] = append(p.ctx[i][:0], b.Ctx[lo:hi]...)
		for r := range p.ctx[i] {
			p.ctx[i][r] -= c0
		}
		s.N, s.Ctx = hi-lo, p.ctx[i]
		s.Context = b.Context[lo*d.Context : hi*d.Context]
		s.ContextItem = b.ContextItem[lo*d.Content : hi*d.Content]
		s.AdCats = b.AdCats[lo*d.AdCats : hi*d.AdCats]
		s.AdContent = b.AdContent[lo*d.Content : hi*d.Content]
		s.AdDense = b.AdDense[lo*d.AdDense : hi*d.AdDense]
		s.View = b.View[lo:hi]
		p.errs[i] = m.Run(p.workers[i], s, logits[lo*nt:hi*nt], probs[lo*nt:hi*nt])
	}
	return p.do(k, f)
}

// RunL1User is [L1User.Run] split over the pool's workers by contexts.
func (p *Pool) RunL1User(m *L1User, b *Batch, out []float32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := m.Validate(b); err != nil {
		return err
	}
	k := p.parts(b.U, 8)
	if k == 1 {
		return m.Run(p.workers[0], b, out)
	}
	w := len(m.Tasks) * m.OutDim
	f := func(i int) {
		lo, hi := span(b.U, k, i)
		s := &p.subs[i]
		sliceUsers(s, b, &m.dims, lo, hi)
		p.errs[i] = m.Run(p.workers[i], s, out[lo*w:hi*w])
	}
	return p.do(k, f)
}

// RunL1Ad is [L1Ad.Run] split over the pool's workers by rows.
func (p *Pool) RunL1Ad(m *L1Ad, b *Batch, out []float32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := m.Validate(b); err != nil {
		return err
	}
	k := p.parts(b.N, 64)
	if k == 1 {
		return m.Run(p.workers[0], b, out)
	}
	w := len(m.Tasks) * m.OutDim
	d := &m.dims
	f := func(i int) {
		lo, hi := span(b.N, k, i)
		s := &p.subs[i]
		s.N = hi - lo
		s.AdCats = b.AdCats[lo*d.AdCats : hi*d.AdCats]
		s.AdContent = b.AdContent[lo*d.Content : hi*d.Content]
		s.AdDense = b.AdDense[lo*d.AdDense : hi*d.AdDense]
		p.errs[i] = m.Run(p.workers[i], s, out[lo*w:hi*w])
	}
	return p.do(k, f)
}

// sliceUsers points s's per-context fields at contexts [lo, hi) of b.
func sliceUsers(s, b *Batch, d *Dims, lo, hi int) {
	l := d.L
	s.U = hi - lo
	s.UserCats = b.UserCats[lo*d.UserCats : hi*d.UserCats]
	s.UserDense = b.UserDense[lo*d.UserDense : hi*d.UserDense]
	s.Pretrained = b.Pretrained[lo*d.Pretrained : hi*d.Pretrained]
	if nc := len(d.UserContextRows); nc > 0 {
		s.UserContext = b.UserContext[lo*nc : hi*nc]
	}
	if len(b.SeqLen) == 0 {
		return
	}
	s.SeqLen = b.SeqLen[lo:hi]
	s.SeqContent = b.SeqContent[lo*l*d.Content : hi*l*d.Content]
	s.SeqOOV = b.SeqOOV[lo*l : hi*l]
	s.SeqAction = b.SeqAction[lo*l : hi*l]
	s.SeqSurface = b.SeqSurface[lo*l : hi*l]
	s.SeqAge = b.SeqAge[lo*l : hi*l]
}
