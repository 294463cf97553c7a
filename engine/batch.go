package engine

import (
	"fmt"
	"math"
)

// Batch is U contexts and N rows of coded inputs (docs/ENGINE.md). Which
// fields a model reads: L2 every field but UserContext; the L1 user tower
// the user and sequence fields and UserContext (N and the row fields
// unused); the L1 ad tower AdCats, AdContent and AdDense over N rows.
type Batch struct {
	U, N int

	// Per context.
	UserCats    []int32   // U × user categorical features
	UserDense   []float32 // U × user dense features (raw)
	Pretrained  []float32 // U × pretrained embedding width
	UserContext []int32   // U × 2: surface and view_type codes (L1 user tower)
	SeqLen      []int32   // U: events, newest first, ≤ L
	SeqContent  []float32 // U × L × content width
	SeqOOV      []uint8   // U × L: 1 where the item is unknown (learned OOV row)
	SeqAction   []int32   // U × L
	SeqSurface  []int32   // U × L
	SeqAge      []int32   // U × L: log-age bucket

	// Per row.
	Ctx         []int32   // N: the row's context in [0, U)
	Context     []int32   // N × context features (surface, view_type, query_topic, position codes)
	ContextItem []float32 // N × content width (0 when the request has none)
	AdCats      []int32   // N × ad categorical features
	AdContent   []float32 // N × content width
	AdDense     []float32 // N × ad dense features (raw)
	View        []int32   // N: index into the surface's view types (L2 calibration)
}

// Dims are the widths a model expects of a Batch.
type Dims struct {
	UserCats, UserDense, Pretrained int
	Context, AdCats, AdDense        int
	Content, L                      int
	// Table sizes, to range-check codes.
	UserCatRows, ContextRows, AdCatRows []int
	UserContextRows                     []int // L1 user: surface, view_type
	Actions, Surfaces, AgeBuckets       int
	Views                               int // L2: the surface's view types
	Names                               InputNames
}

// InputError is a bad Batch: the field, the row (−1 when the whole field
// is wrong) and what is wrong with it.
type InputError struct {
	Field string
	Row   int
	Msg   string
}

func (e *InputError) Error() string {
	if e.Row < 0 {
		return fmt.Sprintf("engine: input %s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("engine: input %s[%d]: %s", e.Field, e.Row, e.Msg)
}

func errLen(field string, got, want int) error {
	return &InputError{Field: field, Row: -1, Msg: fmt.Sprintf("has %d values, want %d", got, want)}
}

// checker accumulates the first problem found.
type checker struct{ err error }

func (c *checker) len(field string, got, want int) bool {
	if c.err == nil && got != want {
		c.err = errLen(field, got, want)
	}
	return c.err == nil
}

// codes checks v (rows × len(sizes)) against each column's table size.
func (c *checker) codes(field string, v []int32, sizes []int) {
	if c.err != nil || len(sizes) == 0 {
		return
	}
	w := len(sizes)
	for i, x := range v {
		if x < 0 || int(x) >= sizes[i%w] {
			c.err = &InputError{Field: field, Row: i / w, Msg: fmt.Sprintf("column %d: code %d outside [0, %d)", i%w, x, sizes[i%w])}
			return
		}
	}
}

// codesN checks every value of v against one table size.
func (c *checker) codesN(field string, v []int32, n int) {
	if c.err != nil {
		return
	}
	for i, x := range v {
		if x < 0 || int(x) >= n {
			c.err = &InputError{Field: field, Row: i, Msg: fmt.Sprintf("code %d outside [0, %d)", x, n)}
			return
		}
	}
}

// finite rejects NaN and ±Inf; width is the row width for the message.
func (c *checker) finite(field string, v []float32, width int) {
	if c.err != nil {
		return
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			c.err = &InputError{Field: field, Row: i / max(width, 1), Msg: fmt.Sprintf("column %d is %v", i%max(width, 1), x)}
			return
		}
	}
}

// checkUsers validates the per-context fields a model with a sequence
// encoder (seq true) reads.
func (c *checker) checkUsers(b *Batch, d *Dims, seq, userContext bool) {
	u := b.U
	if u < 0 {
		c.err = &InputError{Field: "U", Row: -1, Msg: fmt.Sprintf("%d contexts", u)}
		return
	}
	if c.len("user.cats", len(b.UserCats), u*d.UserCats) {
		c.codes("user.cats", b.UserCats, d.UserCatRows)
	}
	if c.len("user.dense", len(b.UserDense), u*d.UserDense) {
		c.finite("user.dense", b.UserDense, d.UserDense)
	}
	if c.len("user.pretrained", len(b.Pretrained), u*d.Pretrained) {
		c.finite("user.pretrained", b.Pretrained, d.Pretrained)
	}
	if userContext && c.len("user.context", len(b.UserContext), u*len(d.UserContextRows)) {
		c.codes("user.context", b.UserContext, d.UserContextRows)
	}
	if !seq {
		return
	}
	l := d.L
	if c.len("seq.len", len(b.SeqLen), u) {
		for i, n := range b.SeqLen {
			if n < 0 || int(n) > l {
				c.err = &InputError{Field: "seq.len", Row: i, Msg: fmt.Sprintf("%d events, the model takes 0..%d", n, l)}
				return
			}
		}
	}
	if c.len("seq.content", len(b.SeqContent), u*l*d.Content) {
		c.finite("seq.content", b.SeqContent, l*d.Content)
	}
	c.len("seq.oov", len(b.SeqOOV), u*l)
	if c.len("seq.action", len(b.SeqAction), u*l) {
		c.codesN("seq.action", b.SeqAction, d.Actions)
	}
	if c.len("seq.surface", len(b.SeqSurface), u*l) {
		c.codesN("seq.surface", b.SeqSurface, d.Surfaces)
	}
	if c.len("seq.age", len(b.SeqAge), u*l) {
		c.codesN("seq.age", b.SeqAge, d.AgeBuckets)
	}
}

// checkAds validates the ad fields of n rows.
func (c *checker) checkAds(b *Batch, d *Dims) {
	n := b.N
	if n < 0 {
		c.err = &InputError{Field: "N", Row: -1, Msg: fmt.Sprintf("%d rows", n)}
		return
	}
	if c.len("row.ad_cats", len(b.AdCats), n*d.AdCats) {
		c.codes("row.ad_cats", b.AdCats, d.AdCatRows)
	}
	if c.len("row.ad_content", len(b.AdContent), n*d.Content) {
		c.finite("row.ad_content", b.AdContent, d.Content)
	}
	if c.len("row.ad_dense", len(b.AdDense), n*d.AdDense) {
		c.finite("row.ad_dense", b.AdDense, d.AdDense)
	}
}
