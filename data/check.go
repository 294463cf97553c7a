package data

import (
	"math"
	"strconv"
)

// Row checks that need no config. Each Check returns nil or a *ColumnError
// naming the first bad column; its Err matches ErrBadValue. Surface and view
// type vocabularies and embedding widths depend on the config and are checked
// elsewhere.

// Check reports the first bad column of an item: a negative item_id or
// category, a kind other than "ad" or "organic", or a non-finite content_emb
// element.
func (it *Item) Check() error {
	var c checker
	c.id("item_id", it.ItemID)
	c.oneOf("kind", it.Kind, KindAd, KindOrganic)
	c.nonNegative32("category", it.Category)
	c.finiteVec("content_emb", it.ContentEmb)
	return c.err
}

// Check reports the first bad column of an ad: a negative id or category, an
// empty product or eligible surface, a non-finite quality or a bid that is
// not a positive finite number.
func (a *Ad) Check() error {
	var c checker
	c.id("ad_id", a.AdID)
	c.id("advertiser", a.Advertiser)
	c.id("campaign", a.Campaign)
	c.nonNegative32("category", a.Category)
	c.nonEmpty("product", a.Product)
	c.positive32("bid", a.Bid)
	c.finite32("quality_creative", a.QualityCreative)
	c.finite32("quality_landing", a.QualityLanding)
	c.nonEmptyList("eligible_surfaces", a.EligibleSurfaces)
	return c.err
}

// Check reports the first bad column of a user: a negative user_id, an empty
// country, device or age bucket, or a non-finite float.
func (u *User) Check() error {
	var c checker
	c.id("user_id", u.UserID)
	c.nonEmpty("country", u.Country)
	c.nonEmpty("device", u.Device)
	c.nonEmpty("age_bucket", u.AgeBucket)
	c.finite32("activity", u.Activity)
	c.finite32("account_age_days", u.AccountAgeDays)
	c.finiteVec("pretrained_emb", u.PretrainedEmb)
	return c.err
}

// Check reports the first bad column of an event: a negative id, a ts_ms
// that is not positive, an unknown action or an empty surface.
func (e *Event) Check() error {
	var c checker
	c.id("user_id", e.UserID)
	c.timestamp("ts_ms", e.TsMs)
	c.id("item_id", e.ItemID)
	c.oneOf("action", e.Action, ActionClick, ActionSave, ActionLongClick, ActionHide)
	c.nonEmpty("surface", e.Surface)
	return c.err
}

// Check reports the first bad column of a request: a negative id, a ts_ms
// that is not positive, an empty surface or view type, or a query topic or
// context item that is negative without being the NoQueryTopic or
// NoContextItem marker.
func (r *Request) Check() error {
	var c checker
	c.id("request_id", r.RequestID)
	c.id("user_id", r.UserID)
	c.timestamp("ts_ms", r.TsMs)
	c.nonEmpty("surface", r.Surface)
	c.nonEmpty("view_type", r.ViewType)
	if r.QueryTopic != NoQueryTopic {
		c.nonNegative32("query_topic", r.QueryTopic)
	}
	if r.ContextItemID != NoContextItem {
		c.id("context_item_id", r.ContextItemID)
	}
	return c.err
}

// Check reports the first bad column of an impression: a negative id or
// position, a label other than 0 or 1, a long click without a click, a hide
// with a click, or a true probability outside the open interval (0, 1).
func (im *Impression) Check() error {
	var c checker
	c.id("request_id", im.RequestID)
	c.id("ad_id", im.AdID)
	c.nonNegative32("position", im.Position)
	c.label("click", im.Click)
	c.label("save", im.Save)
	c.label("long_click", im.LongClick)
	c.label("hide", im.Hide)
	if c.err == nil && im.LongClick > im.Click {
		c.err = badColumn("long_click", "long_click=1 without click")
	}
	if c.err == nil && im.Hide == 1 && im.Click != 0 {
		c.err = badColumn("hide", "hide=1 with click=1")
	}
	c.probability("p_true_click", im.PTrueClick)
	c.probability("p_true_save", im.PTrueSave)
	c.probability("p_true_long_click", im.PTrueLongClick)
	c.probability("p_true_hide", im.PTrueHide)
	return c.err
}

// Check reports the first bad column of a candidate: a negative id or a
// non-finite logging score.
func (cd *Candidate) Check() error {
	var c checker
	c.id("request_id", cd.RequestID)
	c.id("ad_id", cd.AdID)
	c.finite32("logging_score", cd.LoggingScore)
	return c.err
}

// checker keeps the first error of a sequence of column checks; once it has
// one, later checks do nothing.
type checker struct{ err error }

func (c *checker) id(col string, v int64) {
	if c.err == nil && v < 0 {
		c.err = badColumn(col, "negative id %d", v)
	}
}

func (c *checker) nonNegative32(col string, v int32) {
	if c.err == nil && v < 0 {
		c.err = badColumn(col, "negative value %d", v)
	}
}

func (c *checker) timestamp(col string, v int64) {
	if c.err == nil && v <= 0 {
		c.err = badColumn(col, "timestamp %d is not positive", v)
	}
}

func (c *checker) nonEmpty(col, s string) {
	if c.err == nil && s == "" {
		c.err = badColumn(col, "empty string")
	}
}

func (c *checker) nonEmptyList(col string, list []string) {
	for i, s := range list {
		if c.err != nil {
			return
		}
		if s == "" {
			c.err = badColumn(col, "empty string at index %d", i)
		}
	}
}

func (c *checker) oneOf(col, s string, allowed ...string) {
	if c.err != nil {
		return
	}
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	c.err = badColumn(col, "%q is not one of %s", s, quoteAll(allowed))
}

func (c *checker) label(col string, v int8) {
	if c.err == nil && v != 0 && v != 1 {
		c.err = badColumn(col, "label %d is not 0 or 1", v)
	}
}

func (c *checker) finite32(col string, v float32) {
	if c.err == nil && !finite(float64(v)) {
		c.err = badColumn(col, "%v", v)
	}
}

func (c *checker) positive32(col string, v float32) {
	if c.err == nil && !(finite(float64(v)) && v > 0) {
		c.err = badColumn(col, "%v is not a positive finite number", v)
	}
}

func (c *checker) finiteVec(col string, vec []float32) {
	if c.err != nil {
		return
	}
	for i, v := range vec {
		if !finite(float64(v)) {
			c.err = badColumn(col, "%v at index %d", v, i)
			return
		}
	}
}

func (c *checker) probability(col string, p float64) {
	if c.err == nil && !(p > 0 && p < 1) {
		c.err = badColumn(col, "%v is not in (0, 1)", p)
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func quoteAll(ss []string) string {
	b := []byte("{")
	for i, s := range ss {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendQuote(b, s)
	}
	return string(append(b, '}'))
}
