package config

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Version is the config schema version this build reads.
const Version = 1

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the committed default configuration file.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is the whole configuration. The schema part (Tasks, Products,
// Surfaces, Features, Sequence) is hashed into every artifact.
type Config struct {
	Version  int       `yaml:"version" json:"version"`
	Tasks    []string  `yaml:"tasks" json:"tasks"`
	Products []string  `yaml:"products" json:"products"`
	Surfaces []Surface `yaml:"surfaces" json:"surfaces"`
	Features Features  `yaml:"features" json:"features"`
	Sequence Sequence  `yaml:"sequence" json:"sequence"`

	Routing []Route          `yaml:"routing" json:"routing"`
	Caps    Caps             `yaml:"caps" json:"caps"`
	Split   Split            `yaml:"split" json:"split"`
	Scales  map[string]Scale `yaml:"scales" json:"scales"`
	Sim     Sim              `yaml:"sim" json:"sim"`

	Model Model `yaml:"model" json:"model"`
	Train Train `yaml:"train" json:"train"`
}

// Surface is a place ads are shown.
type Surface struct {
	Name string `yaml:"name" json:"name"`
	// Traffic is the share of ad requests on this surface; shares sum to 1.
	Traffic float64 `yaml:"traffic" json:"traffic"`
	// Context is what a request carries beside the user: ContextNone,
	// ContextQuery (a query topic) or ContextItem (a context item id).
	Context   string     `yaml:"context" json:"context"`
	Tasks     []string   `yaml:"tasks" json:"tasks"`
	ViewTypes []ViewType `yaml:"view_types" json:"view_types"`
}

// Surface context kinds.
const (
	ContextNone  = "none"
	ContextQuery = "query"
	ContextItem  = "item"
)

// ViewType is a layout of a surface.
type ViewType struct {
	Name string `yaml:"name" json:"name"`
	// Share of the surface's requests; shares within a surface sum to 1.
	Share float64 `yaml:"share" json:"share"`
	// Slots is the number of ads shown per request, ≥ 1.
	Slots int `yaml:"slots" json:"slots"`
}

// Features lists model inputs by side.
type Features struct {
	User    []Feature `yaml:"user" json:"user"`
	Ad      []Feature `yaml:"ad" json:"ad"`
	Item    []Feature `yaml:"item" json:"item"`
	Context []Feature `yaml:"context" json:"context"`
}

// Feature kinds.
const (
	KindDense       = "dense"
	KindCategorical = "categorical"
	KindEmbedding   = "embedding"
)

// Feature is one input column.
type Feature struct {
	Name string `yaml:"name" json:"name"`
	Kind string `yaml:"kind" json:"kind"`
	// Vocab lists a categorical's known values (unseen values share one OOV
	// row); HashBuckets hashes values instead. Exactly one is set for a
	// categorical, neither for other kinds.
	Vocab       []string `yaml:"vocab,omitempty" json:"vocab,omitempty"`
	HashBuckets int      `yaml:"hash_buckets,omitempty" json:"hash_buckets,omitempty"`
	// Dim is an embedding's width.
	Dim int `yaml:"dim,omitempty" json:"dim,omitempty"`
}

// Sequence shapes user sequences.
type Sequence struct {
	// Length is L, the most events in a sequence (default 32).
	Length int `yaml:"length" json:"length"`
	// ShortTerm is the number of newest positions kept as-is (default 8).
	ShortTerm int `yaml:"short_term" json:"short_term"`
}

// Route maps (surface, product) to an L1 route; "*" matches anything.
type Route struct {
	Surface string `yaml:"surface" json:"surface"`
	Product string `yaml:"product" json:"product"`
	Route   string `yaml:"route" json:"route"`
}

// Caps bounds per-request work.
type Caps struct {
	CandidatesPerRequest    int `yaml:"candidates_per_request" json:"candidates_per_request"`
	DistillLoggedCandidates int `yaml:"distill_logged_candidates" json:"distill_logged_candidates"`
	DistillRandomAds        int `yaml:"distill_random_ads" json:"distill_random_ads"`
	MaxRankCandidates       int `yaml:"max_rank_candidates" json:"max_rank_candidates"`
	MaxRetrieveK            int `yaml:"max_retrieve_k" json:"max_retrieve_k"`
}

// Split fixes the time-only train/validation/test split, in whole UTC days
// from StartDate.
type Split struct {
	StartDate      string `yaml:"start_date" json:"start_date"`
	HistoryDays    int    `yaml:"history_days" json:"history_days"`
	TrainDays      int    `yaml:"train_days" json:"train_days"`
	ValidationDays int    `yaml:"validation_days" json:"validation_days"`
	TestDays       int    `yaml:"test_days" json:"test_days"`
}

// Scale sizes a simulated data set. Zero day counts inherit Split's.
type Scale struct {
	Users          int     `yaml:"users" json:"users"`
	Ads            int     `yaml:"ads" json:"ads"`
	OrganicItems   int     `yaml:"organic_items" json:"organic_items"`
	Topics         int     `yaml:"topics" json:"topics"`
	Advertisers    int     `yaml:"advertisers" json:"advertisers"`
	HistoryDays    int     `yaml:"history_days,omitempty" json:"history_days,omitempty"`
	TrainDays      int     `yaml:"train_days,omitempty" json:"train_days,omitempty"`
	SessionsPerDay float64 `yaml:"sessions_per_day" json:"sessions_per_day"`
}

// Sim is the simulator's difficulty; docs/SIMULATOR.md has the equations.
type Sim struct {
	ItemSpread      float64 `yaml:"item_spread" json:"item_spread"`
	UserSpread      float64 `yaml:"user_spread" json:"user_spread"`
	UserTopics      int     `yaml:"user_topics" json:"user_topics"`
	TopicZipf       float64 `yaml:"topic_zipf" json:"topic_zipf"`
	AdvertiserZipf  float64 `yaml:"advertiser_zipf" json:"advertiser_zipf"`
	SessionEvents   float64 `yaml:"session_events" json:"session_events"`
	EventGapS       float64 `yaml:"event_gap_s" json:"event_gap_s"`
	ShortTermShare  float64 `yaml:"short_term_share" json:"short_term_share"`
	ShortTermSwitch float64 `yaml:"short_term_switch" json:"short_term_switch"`
	RequestRate     float64 `yaml:"request_rate" json:"request_rate"`
	ShortTermTauS   float64 `yaml:"short_term_tau_s" json:"short_term_tau_s"`
	AdvertiserSD    float64 `yaml:"advertiser_sd" json:"advertiser_sd"`

	// Weights[task] weighs each named component in the task's log-odds.
	Weights map[string]Weights `yaml:"weights" json:"weights"`
	// PositionDecay[view type] multiplies -log2(1+position).
	PositionDecay map[string]float64 `yaml:"position_decay" json:"position_decay"`
	// Base[surface][task] is the base log-odds; ViewOffset[view type] adds.
	Base       map[string]map[string]float64 `yaml:"base" json:"base"`
	ViewOffset map[string]float64            `yaml:"view_offset" json:"view_offset"`
	Logging    Logging                       `yaml:"logging" json:"logging"`
}

// Weights weighs the named components of one task's log-odds.
type Weights struct {
	LongTerm  float64 `yaml:"long_term" json:"long_term"`
	ShortTerm float64 `yaml:"short_term" json:"short_term"`
	Context   float64 `yaml:"context" json:"context"`
	Quality   float64 `yaml:"quality" json:"quality"`
}

// Logging shapes the simulated logging policy.
type Logging struct {
	InterestShare  float64 `yaml:"interest_share" json:"interest_share"`
	ContextShare   float64 `yaml:"context_share" json:"context_share"`
	AffinityWeight float64 `yaml:"affinity_weight" json:"affinity_weight"`
	QualityWeight  float64 `yaml:"quality_weight" json:"quality_weight"`
	ContextWeight  float64 `yaml:"context_weight" json:"context_weight"`
	NoiseSD        float64 `yaml:"noise_sd" json:"noise_sd"`
	GumbelScale    float64 `yaml:"gumbel_scale" json:"gumbel_scale"`
}

// Default returns the committed default configuration.
func Default() *Config {
	c, err := Parse(defaultYAML)
	if err != nil {
		panic("config: committed default.yaml is invalid: " + err.Error())
	}
	return c
}

// Load reads, parses and validates a YAML (or JSON) config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a YAML or JSON document (JSON is YAML), rejecting unknown
// keys, and validates it. The error lists every problem found.
func Parse(b []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Schema is the part of a Config that shapes data and model inputs.
type Schema struct {
	Version  int       `json:"version"`
	Tasks    []string  `json:"tasks"`
	Products []string  `json:"products"`
	Surfaces []Surface `json:"surfaces"`
	Features Features  `json:"features"`
	Sequence Sequence  `json:"sequence"`
}

// Schema returns the schema part of c.
func (c *Config) Schema() Schema {
	return Schema{c.Version, c.Tasks, c.Products, c.Surfaces, c.Features, c.Sequence}
}

// SchemaHash is the hex sha256 of the schema's canonical JSON. Traffic
// shares are part of the surfaces and so of the hash.
func (c *Config) SchemaHash() string {
	b, err := json.Marshal(c.Schema())
	if err != nil {
		panic("config: marshal schema: " + err.Error()) // plain structs always marshal
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// JSON returns the whole config as canonical JSON, the form stored inside
// artifacts.
func (c *Config) JSON() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic("config: marshal: " + err.Error())
	}
	return b
}

// Start returns the UTC instant the split's day 0 begins.
func (c *Config) Start() time.Time {
	t, _ := time.Parse(time.DateOnly, c.Split.StartDate) // validated
	return t
}

// ScaleNamed returns the named scale with its day counts resolved against
// the split.
func (c *Config) ScaleNamed(name string) (Scale, Split, error) {
	s, ok := c.Scales[name]
	if !ok {
		return Scale{}, Split{}, fmt.Errorf("config: unknown scale %q", name)
	}
	sp := c.Split
	if s.HistoryDays > 0 {
		sp.HistoryDays = s.HistoryDays
	}
	if s.TrainDays > 0 {
		sp.TrainDays = s.TrainDays
	}
	return s, sp, nil
}

// SurfaceIndex returns the index of the named surface, or -1.
func (c *Config) SurfaceIndex(name string) int {
	for i, s := range c.Surfaces {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// TaskIndex returns the index of the named task, or -1.
func (c *Config) TaskIndex(name string) int {
	for i, t := range c.Tasks {
		if t == name {
			return i
		}
	}
	return -1
}

// ViewTypes lists every view type name once, in first-seen order.
func (c *Config) ViewTypes() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range c.Surfaces {
		for _, v := range s.ViewTypes {
			if !seen[v.Name] {
				seen[v.Name] = true
				out = append(out, v.Name)
			}
		}
	}
	return out
}

// RouteFor returns the L1 route of a (surface, product) pair.
func (c *Config) RouteFor(surface, product string) (string, error) {
	for _, r := range c.Routing {
		if (r.Surface == "*" || r.Surface == surface) && (r.Product == "*" || r.Product == product) {
			return r.Route, nil
		}
	}
	return "", fmt.Errorf("config: no route for surface %q product %q", surface, product)
}

// ErrInvalid marks a configuration that fails validation.
var ErrInvalid = errors.New("config: invalid")
