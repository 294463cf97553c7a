package data

// Table names, one file each in a data directory: "<name>.parquet" or
// "<name>.jsonl".
const (
	TableItems       = "items"
	TableAds         = "ads"
	TableUsers       = "users"
	TableEvents      = "events"
	TableRequests    = "requests"
	TableImpressions = "impressions"
	TableCandidates  = "candidates"
)

// Tables lists every table of a simulated data directory in the order the
// simulator writes them.
var Tables = []string{TableItems, TableAds, TableUsers, TableEvents, TableRequests, TableImpressions, TableCandidates}

// Item kinds.
const (
	KindAd      = "ad"
	KindOrganic = "organic"
)

// Event actions. Every action is an engagement except hide, which is negative.
const (
	ActionClick     = "click"
	ActionSave      = "save"
	ActionLongClick = "long_click"
	ActionHide      = "hide"
)

// NoQueryTopic and NoContextItem fill Request.QueryTopic and
// Request.ContextItemID on surfaces that have no query or no context item.
const (
	NoQueryTopic  int32 = -1
	NoContextItem int64 = -1
)

// Item is a piece of content users can engage with. Every ad is also an item
// (Ad.AdID == Item.ItemID, Kind == KindAd).
type Item struct {
	ItemID int64 `parquet:"item_id" json:"item_id"`
	// Kind is KindAd or KindOrganic.
	Kind string `parquet:"kind,dict" json:"kind"`
	// Category is the item's primary topic, a small non-negative integer.
	Category int32 `parquet:"category" json:"category"`
	// ContentEmb is a pretrained content embedding of fixed width
	// (config: features.item content_emb dim).
	ContentEmb []float32 `parquet:"content_emb,list" json:"content_emb"`
}

// Ad is an ad's serving-side metadata.
type Ad struct {
	AdID       int64  `parquet:"ad_id" json:"ad_id"`
	Advertiser int64  `parquet:"advertiser" json:"advertiser"`
	Campaign   int64  `parquet:"campaign" json:"campaign"`
	Category   int32  `parquet:"category" json:"category"`
	Product    string `parquet:"product,dict" json:"product"`
	// Bid is the advertiser's bid per click, > 0.
	Bid float32 `parquet:"bid" json:"bid"`
	// QualityCreative and QualityLanding are quality scores from upstream
	// systems, standardised to mean 0 and unit variance over the catalog.
	QualityCreative float32 `parquet:"quality_creative" json:"quality_creative"`
	QualityLanding  float32 `parquet:"quality_landing" json:"quality_landing"`
	// EligibleSurfaces names the surfaces the ad may be shown on.
	EligibleSurfaces []string `parquet:"eligible_surfaces,list" json:"eligible_surfaces"`
	Active           bool     `parquet:"active" json:"active"`
}

// User holds a user's profile features.
type User struct {
	UserID    int64  `parquet:"user_id" json:"user_id"`
	Country   string `parquet:"country,dict" json:"country"`
	Device    string `parquet:"device,dict" json:"device"`
	AgeBucket string `parquet:"age_bucket,dict" json:"age_bucket"`
	// Activity is log(1 + expected sessions per day).
	Activity       float32 `parquet:"activity" json:"activity"`
	AccountAgeDays float32 `parquet:"account_age_days" json:"account_age_days"`
	// PretrainedEmb is an embedding from an upstream system of fixed width
	// (config: features.user pretrained_emb dim).
	PretrainedEmb []float32 `parquet:"pretrained_emb,list" json:"pretrained_emb"`
}

// Event is one engagement of a user with an item (ad or organic). The events
// table is sorted by (user_id, ts_ms).
type Event struct {
	UserID  int64  `parquet:"user_id" json:"user_id"`
	TsMs    int64  `parquet:"ts_ms" json:"ts_ms"`
	ItemID  int64  `parquet:"item_id" json:"item_id"`
	Action  string `parquet:"action,dict" json:"action"`
	Surface string `parquet:"surface,dict" json:"surface"`
}

// Request is one ad request: a user on a surface at a time.
type Request struct {
	RequestID int64  `parquet:"request_id" json:"request_id"`
	UserID    int64  `parquet:"user_id" json:"user_id"`
	TsMs      int64  `parquet:"ts_ms" json:"ts_ms"`
	Surface   string `parquet:"surface,dict" json:"surface"`
	ViewType  string `parquet:"view_type,dict" json:"view_type"`
	// QueryTopic is the search query's topic on surfaces with a query,
	// NoQueryTopic elsewhere.
	QueryTopic int32 `parquet:"query_topic" json:"query_topic"`
	// ContextItemID is the item the page is about on surfaces with a context
	// item, NoContextItem elsewhere.
	ContextItemID int64 `parquet:"context_item_id" json:"context_item_id"`
}

// Impression is one ad shown in a request, with its observed labels and the
// simulator's true probabilities. Position 0 is the top slot.
type Impression struct {
	RequestID int64 `parquet:"request_id" json:"request_id"`
	AdID      int64 `parquet:"ad_id" json:"ad_id"`
	Position  int32 `parquet:"position" json:"position"`
	// Labels, 0 or 1. LongClick is 1 only when Click is 1; Hide only when
	// Click is 0.
	Click     int8 `parquet:"click" json:"click"`
	Save      int8 `parquet:"save" json:"save"`
	LongClick int8 `parquet:"long_click" json:"long_click"`
	Hide      int8 `parquet:"hide" json:"hide"`
	// True marginal probabilities of each label, in (0, 1).
	PTrueClick     float64 `parquet:"p_true_click" json:"p_true_click"`
	PTrueSave      float64 `parquet:"p_true_save" json:"p_true_save"`
	PTrueLongClick float64 `parquet:"p_true_long_click" json:"p_true_long_click"`
	PTrueHide      float64 `parquet:"p_true_hide" json:"p_true_hide"`
}

// Candidate is one ad the logging policy scored for a request. Shown ads
// also appear in impressions.
type Candidate struct {
	RequestID    int64   `parquet:"request_id" json:"request_id"`
	AdID         int64   `parquet:"ad_id" json:"ad_id"`
	LoggingScore float32 `parquet:"logging_score" json:"logging_score"`
	Shown        bool    `parquet:"shown" json:"shown"`
}
