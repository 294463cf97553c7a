package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// FieldError is one problem with one config field. Path names the field the
// way the file spells it, e.g. "surfaces[1].view_types[0].share".
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return "config: " + e.Path + ": " + e.Msg }

// Unwrap lets errors.Is(err, ErrInvalid) match.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// KnownTasks are the tasks the simulator generates and the models know.
var KnownTasks = []string{"click", "save", "long_click", "hide"}

// columnKinds lists, per feature side, the data columns a feature may name
// and the kinds each column can be read as.
var columnKinds = map[string]map[string][]string{
	"user": {
		"country": {KindCategorical}, "device": {KindCategorical}, "age_bucket": {KindCategorical},
		"activity": {KindDense}, "account_age_days": {KindDense}, "pretrained_emb": {KindEmbedding},
	},
	"ad": {
		"advertiser": {KindCategorical}, "campaign": {KindCategorical}, "category": {KindCategorical},
		"product": {KindCategorical}, "bid": {KindDense}, "quality_creative": {KindDense},
		"quality_landing": {KindDense},
	},
	"item": {"content_emb": {KindEmbedding}, "category": {KindCategorical}},
	"context": {
		"surface": {KindCategorical}, "view_type": {KindCategorical},
		"query_topic": {KindCategorical}, "position": {KindCategorical},
	},
}

var routeName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// problems collects field errors.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks the whole config and returns every problem at once
// (errors.Join of *FieldError), or nil.
func (c *Config) Validate() error {
	var p problems
	if c.Version != Version {
		p.add("version", "is %d, this build reads version %d", c.Version, Version)
	}
	c.validateTasks(&p)
	uniqueNames(&p, "products", c.Products)
	c.validateSurfaces(&p)
	c.validateFeatures(&p)
	c.validateSequence(&p)
	c.validateRouting(&p)
	c.validateCaps(&p)
	c.validateSplit(&p)
	c.validateScales(&p)
	c.validateSim(&p)
	c.validateModel(&p)
	return errors.Join(p...)
}

func uniqueNames(p *problems, path string, names []string) {
	if len(names) == 0 {
		p.add(path, "is empty")
	}
	seen := map[string]bool{}
	for i, n := range names {
		switch {
		case n == "":
			p.add(fmt.Sprintf("%s[%d]", path, i), "is empty")
		case seen[n]:
			p.add(fmt.Sprintf("%s[%d]", path, i), "repeats %q", n)
		}
		seen[n] = true
	}
}

func (c *Config) validateTasks(p *problems) {
	uniqueNames(p, "tasks", c.Tasks)
	for i, t := range c.Tasks {
		if t != "" && !slices.Contains(KnownTasks, t) {
			p.add(fmt.Sprintf("tasks[%d]", i), "unknown task %q (known: %s)", t, strings.Join(KnownTasks, ", "))
		}
	}
	if !slices.Contains(c.Tasks, "click") {
		p.add("tasks", "must include click (utility is bid x pCTR)")
	}
}

func (c *Config) validateSurfaces(p *problems) {
	if len(c.Surfaces) == 0 {
		p.add("surfaces", "is empty")
	}
	if len(c.Surfaces) > 255 {
		p.add("surfaces", "has %d entries, at most 255", len(c.Surfaces))
	}
	var traffic float64
	seen := map[string]bool{}
	for i, s := range c.Surfaces {
		at := fmt.Sprintf("surfaces[%d]", i)
		switch {
		case s.Name == "":
			p.add(at+".name", "is empty")
		case seen[s.Name]:
			p.add(at+".name", "repeats %q", s.Name)
		}
		seen[s.Name] = true
		if !(s.Traffic > 0 && s.Traffic <= 1) {
			p.add(at+".traffic", "is %v, want in (0, 1]", s.Traffic)
		}
		traffic += s.Traffic
		if !slices.Contains([]string{ContextNone, ContextQuery, ContextItem}, s.Context) {
			p.add(at+".context", "is %q, want none, query or item", s.Context)
		}
		if len(s.Tasks) == 0 {
			p.add(at+".tasks", "is empty")
		}
		for j, t := range s.Tasks {
			if !slices.Contains(c.Tasks, t) {
				p.add(fmt.Sprintf("%s.tasks[%d]", at, j), "%q is not in tasks", t)
			}
		}
		if len(s.ViewTypes) == 0 {
			p.add(at+".view_types", "is empty")
		}
		var share float64
		vseen := map[string]bool{}
		for j, v := range s.ViewTypes {
			vat := fmt.Sprintf("%s.view_types[%d]", at, j)
			switch {
			case v.Name == "":
				p.add(vat+".name", "is empty")
			case vseen[v.Name]:
				p.add(vat+".name", "repeats %q", v.Name)
			}
			vseen[v.Name] = true
			if !(v.Share > 0 && v.Share <= 1) {
				p.add(vat+".share", "is %v, want in (0, 1]", v.Share)
			}
			share += v.Share
			if v.Slots < 1 || v.Slots > 64 {
				p.add(vat+".slots", "is %d, want 1..64", v.Slots)
			}
		}
		if len(s.ViewTypes) > 0 && math.Abs(share-1) > 1e-9 {
			p.add(at+".view_types", "shares sum to %v, want 1", share)
		}
	}
	if len(c.Surfaces) > 0 && math.Abs(traffic-1) > 1e-9 {
		p.add("surfaces", "traffic shares sum to %v, want 1", traffic)
	}
}

func (c *Config) validateFeatures(p *problems) {
	sides := []struct {
		name string
		fs   []Feature
	}{{"user", c.Features.User}, {"ad", c.Features.Ad}, {"item", c.Features.Item}, {"context", c.Features.Context}}
	for _, side := range sides {
		seen := map[string]bool{}
		for i, f := range side.fs {
			at := fmt.Sprintf("features.%s[%d]", side.name, i)
			kinds, known := columnKinds[side.name][f.Name]
			switch {
			case f.Name == "":
				p.add(at+".name", "is empty")
			case seen[f.Name]:
				p.add(at+".name", "repeats %q", f.Name)
			case !known:
				p.add(at+".name", "%q is not a %s column", f.Name, side.name)
			}
			seen[f.Name] = true
			if known && !slices.Contains(kinds, f.Kind) {
				p.add(at+".kind", "is %q, column %q can be %s", f.Kind, f.Name, strings.Join(kinds, " or "))
			}
			validateFeatureShape(p, at, f)
		}
	}
	c.checkVocabCovers(p, "surface", func(yield func(string) bool) {
		for _, s := range c.Surfaces {
			if !yield(s.Name) {
				return
			}
		}
	})
	c.checkVocabCovers(p, "view_type", func(yield func(string) bool) {
		for _, v := range c.ViewTypes() {
			if !yield(v) {
				return
			}
		}
	})
}

func validateFeatureShape(p *problems, at string, f Feature) {
	switch f.Kind {
	case KindCategorical:
		if (len(f.Vocab) > 0) == (f.HashBuckets > 0) {
			p.add(at, "a categorical needs exactly one of vocab and hash_buckets")
		}
		if f.HashBuckets < 0 {
			p.add(at+".hash_buckets", "is %d, want > 0", f.HashBuckets)
		}
		if len(f.Vocab) > 0 {
			uniqueNames(p, at+".vocab", f.Vocab)
		}
		if f.Dim != 0 {
			p.add(at+".dim", "is set on a categorical")
		}
	case KindDense:
		if len(f.Vocab) > 0 || f.HashBuckets != 0 || f.Dim != 0 {
			p.add(at, "a dense feature takes no vocab, hash_buckets or dim")
		}
	case KindEmbedding:
		if f.Dim < 1 || f.Dim > 4096 {
			p.add(at+".dim", "is %d, want 1..4096", f.Dim)
		}
		if len(f.Vocab) > 0 || f.HashBuckets != 0 {
			p.add(at, "an embedding takes no vocab or hash_buckets")
		}
	default:
		p.add(at+".kind", "is %q, want dense, categorical or embedding", f.Kind)
	}
}

// checkVocabCovers reports names a context feature's vocab misses.
func (c *Config) checkVocabCovers(p *problems, feature string, names func(func(string) bool)) {
	for i, f := range c.Features.Context {
		if f.Name != feature || len(f.Vocab) == 0 {
			continue
		}
		for n := range names {
			if !slices.Contains(f.Vocab, n) {
				p.add(fmt.Sprintf("features.context[%d].vocab", i), "misses %q", n)
			}
		}
	}
}

func (c *Config) validateSequence(p *problems) {
	if c.Sequence.Length < 1 || c.Sequence.Length > 1024 {
		p.add("sequence.length", "is %d, want 1..1024", c.Sequence.Length)
	}
	if c.Sequence.ShortTerm < 1 || c.Sequence.ShortTerm > c.Sequence.Length {
		p.add("sequence.short_term", "is %d, want 1..sequence.length", c.Sequence.ShortTerm)
	}
}

func (c *Config) validateRouting(p *problems) {
	if len(c.Routing) == 0 {
		p.add("routing", "is empty")
		return
	}
	for i, r := range c.Routing {
		at := fmt.Sprintf("routing[%d]", i)
		if r.Surface != "*" && c.SurfaceIndex(r.Surface) < 0 {
			p.add(at+".surface", "%q is neither \"*\" nor a surface", r.Surface)
		}
		if r.Product != "*" && !slices.Contains(c.Products, r.Product) {
			p.add(at+".product", "%q is neither \"*\" nor a product", r.Product)
		}
		if !routeName.MatchString(r.Route) {
			p.add(at+".route", "%q is not a route name ([a-z0-9_-], starting with a letter or digit)", r.Route)
		}
	}
	for _, s := range c.Surfaces {
		for _, pr := range c.Products {
			if _, err := c.RouteFor(s.Name, pr); err != nil {
				p.add("routing", "no rule matches surface %q product %q", s.Name, pr)
			}
		}
	}
}

func (c *Config) validateCaps(p *problems) {
	for _, f := range []struct {
		path string
		v    int
	}{
		{"caps.candidates_per_request", c.Caps.CandidatesPerRequest},
		{"caps.distill_logged_candidates", c.Caps.DistillLoggedCandidates},
		{"caps.distill_random_ads", c.Caps.DistillRandomAds},
		{"caps.max_rank_candidates", c.Caps.MaxRankCandidates},
		{"caps.max_retrieve_k", c.Caps.MaxRetrieveK},
	} {
		if f.v < 1 {
			p.add(f.path, "is %d, want ≥ 1", f.v)
		}
	}
	for i, s := range c.Surfaces {
		for j, v := range s.ViewTypes {
			if v.Slots > c.Caps.CandidatesPerRequest {
				p.add(fmt.Sprintf("surfaces[%d].view_types[%d].slots", i, j), "is %d, more than caps.candidates_per_request", v.Slots)
			}
		}
	}
}

func (c *Config) validateSplit(p *problems) {
	if _, err := time.Parse(time.DateOnly, c.Split.StartDate); err != nil {
		p.add("split.start_date", "is %q, want YYYY-MM-DD", c.Split.StartDate)
	}
	if c.Split.HistoryDays < 0 {
		p.add("split.history_days", "is %d, want ≥ 0", c.Split.HistoryDays)
	}
	for _, f := range []struct {
		path string
		v    int
	}{{"split.train_days", c.Split.TrainDays}, {"split.validation_days", c.Split.ValidationDays}, {"split.test_days", c.Split.TestDays}} {
		if f.v < 1 {
			p.add(f.path, "is %d, want ≥ 1", f.v)
		}
	}
}

func (c *Config) validateScales(p *problems) {
	if len(c.Scales) == 0 {
		p.add("scales", "is empty")
	}
	for _, name := range sortedKeys(c.Scales) {
		s := c.Scales[name]
		at := "scales." + name
		for _, f := range []struct {
			field string
			v     int
		}{{"users", s.Users}, {"ads", s.Ads}, {"organic_items", s.OrganicItems}, {"advertisers", s.Advertisers}} {
			if f.v < 1 {
				p.add(at+"."+f.field, "is %d, want ≥ 1", f.v)
			}
		}
		if s.Topics < 2 || s.Topics > 1024 {
			p.add(at+".topics", "is %d, want 2..1024", s.Topics)
		}
		if s.HistoryDays < 0 || s.TrainDays < 0 {
			p.add(at, "day counts must be ≥ 0 (0 inherits split)")
		}
		if !(s.SessionsPerDay > 0 && s.SessionsPerDay < 100) {
			p.add(at+".sessions_per_day", "is %v, want in (0, 100)", s.SessionsPerDay)
		}
	}
}

func (c *Config) validateSim(p *problems) {
	s := c.Sim
	for _, f := range []struct {
		path   string
		v      float64
		lo, hi float64
	}{
		{"sim.item_spread", s.ItemSpread, 0, 100},
		{"sim.user_spread", s.UserSpread, 0, 100},
		{"sim.topic_zipf", s.TopicZipf, 0, 10},
		{"sim.advertiser_zipf", s.AdvertiserZipf, 0, 10},
		{"sim.session_events", s.SessionEvents, 0, 1000},
		{"sim.event_gap_s", s.EventGapS, 1, 86400},
		{"sim.short_term_share", s.ShortTermShare, 0, 1},
		{"sim.short_term_switch", s.ShortTermSwitch, 0, 1},
		{"sim.request_rate", s.RequestRate, 0, 1},
		{"sim.short_term_tau_s", s.ShortTermTauS, 1, 1e7},
		{"sim.advertiser_sd", s.AdvertiserSD, 0, 10},
		{"sim.logging.interest_share", s.Logging.InterestShare, 0, 1},
		{"sim.logging.context_share", s.Logging.ContextShare, 0, 1},
		{"sim.logging.noise_sd", s.Logging.NoiseSD, 0, 10},
		{"sim.logging.gumbel_scale", s.Logging.GumbelScale, 0, 10},
		{"sim.logging.affinity_weight", s.Logging.AffinityWeight, -10, 10},
		{"sim.logging.quality_weight", s.Logging.QualityWeight, -10, 10},
		{"sim.logging.context_weight", s.Logging.ContextWeight, -10, 10},
	} {
		if !(f.v >= f.lo && f.v <= f.hi) { // also rejects NaN
			p.add(f.path, "is %v, want in [%v, %v]", f.v, f.lo, f.hi)
		}
	}
	if s.Logging.InterestShare+s.Logging.ContextShare > 1 {
		p.add("sim.logging", "interest_share + context_share is %v, want ≤ 1", s.Logging.InterestShare+s.Logging.ContextShare)
	}
	if s.UserTopics < 1 {
		p.add("sim.user_topics", "is %d, want ≥ 1", s.UserTopics)
	}
	for _, t := range c.Tasks {
		w, ok := s.Weights[t]
		if !ok {
			p.add("sim.weights."+t, "is missing")
			continue
		}
		for _, v := range []float64{w.LongTerm, w.ShortTerm, w.Context, w.Quality} {
			if math.IsNaN(v) || math.Abs(v) > 20 {
				p.add("sim.weights."+t, "has %v, want |w| ≤ 20", v)
			}
		}
	}
	for _, k := range sortedKeys(s.Weights) {
		if !slices.Contains(c.Tasks, k) {
			p.add("sim.weights."+k, "%q is not a task", k)
		}
	}
	for _, v := range c.ViewTypes() {
		if d, ok := s.PositionDecay[v]; !ok || !(d >= 0 && d <= 10) {
			p.add("sim.position_decay."+v, "is missing or outside [0, 10]")
		}
		if o, ok := s.ViewOffset[v]; !ok || !(math.Abs(o) <= 10) {
			p.add("sim.view_offset."+v, "is missing or outside [-10, 10]")
		}
	}
	for _, sf := range c.Surfaces {
		for _, t := range c.Tasks {
			if b, ok := s.Base[sf.Name][t]; !ok || !(math.Abs(b) <= 20) {
				p.add("sim.base."+sf.Name+"."+t, "is missing or outside [-20, 20]")
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
