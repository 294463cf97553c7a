package batch

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/feature"
)

// Data is a data directory loaded for training and evaluation: the catalog
// and users as dense arrays indexed by row, the event index for as-of
// sequences, and the requests with their impressions in (user, time) order.
type Data struct {
	Cfg      *config.Config
	Manifest *data.Manifest
	Feat     *Features

	ItemRow map[int64]int32
	ItemIDs []int64
	ItemEmb []float32 // items × Feat.ContentDim

	AdRow      map[int64]int32
	AdIDs      []int64
	AdItem     []int32   // item row of each ad
	AdCats     []int32   // ads × len(Feat.AdCat): category codes
	AdDense    []float32 // ads × len(Feat.AdDense)
	AdProduct  []uint8   // index into cfg.Products
	AdBid      []float32
	AdEligible []uint8 // bit s: eligible on surface s
	AdActive   []bool

	UserRow   map[int64]int32
	UserCats  []int32   // users × len(Feat.UserCat)
	UserDense []float32 // users × len(Feat.UserDense)
	UserEmb   []float32 // users × UserEmbDim
	UserIDs   []int64

	Seq *feature.Index

	Requests []Request
	Imps     []Imp
}

// Request is one ad request with its impressions Imps[First:First+Count].
type Request struct {
	ID         int64
	UserID     int64
	UserRow    int32
	TsMs       int64
	Surface    uint8
	View       uint8 // index into cfg.ViewTypes()
	QueryTopic int32
	CtxItemRow int32 // −1: none or unknown
	First      int32
	Count      int32
}

// Imp is one impression.
type Imp struct {
	AdRow    int32
	Position int32
	Labels   [4]float32 // by cfg.Tasks order
	PTrue    [4]float64
}

// Features resolves the config's feature lists to the columns the loader
// knows. Categorical features become codes in [0, Rows): vocab index + 1
// (0 is the out-of-vocabulary row) or an integer/string hash bucket.
type Features struct {
	UserCat    []config.Feature
	UserDense  []string
	UserEmb    string
	UserEmbDim int
	AdCat      []config.Feature
	AdDense    []string
	ContentDim int
	Context    []config.Feature // categorical context features (surface, view_type, query_topic, position)
}

// CatRows is the table size of a categorical feature.
func CatRows(f config.Feature) int {
	if f.HashBuckets > 0 {
		return f.HashBuckets
	}
	return len(f.Vocab) + 1
}

// CodeString maps a string value to its row.
func CodeString(f config.Feature, v string) int32 {
	if f.HashBuckets > 0 {
		h := fnv.New64a()
		h.Write([]byte(v))
		return int32(h.Sum64() % uint64(f.HashBuckets))
	}
	if i := slices.Index(f.Vocab, v); i >= 0 {
		return int32(i + 1)
	}
	return 0
}

// CodeInt maps an integer value to its row: v mod buckets for hashed
// features (ids below the bucket count never collide), else the vocab
// index of its decimal string.
func CodeInt(f config.Feature, v int64) int32 {
	if f.HashBuckets > 0 {
		b := int64(f.HashBuckets)
		return int32(((v % b) + b) % b)
	}
	return CodeString(f, fmt.Sprint(v))
}

var (
	userCats  = []string{"country", "device", "age_bucket"}
	userDense = []string{"activity", "account_age_days"}
	adCats    = []string{"advertiser", "campaign", "category", "product"}
	adDense   = []string{"bid", "quality_creative", "quality_landing"}
	ctxCats   = []string{"surface", "view_type", "query_topic", "position"}
)

// ResolveFeatures checks that every configured feature is one the loader
// can fill, naming the first that is not.
func ResolveFeatures(cfg *config.Config) (*Features, error) {
	f := &Features{}
	var errs []error
	bad := func(side string, i int, ft config.Feature) {
		errs = append(errs, fmt.Errorf("features.%s[%d]: no loader for %s feature %q", side, i, ft.Kind, ft.Name))
	}
	for i, ft := range cfg.Features.User {
		switch {
		case ft.Kind == config.KindCategorical && slices.Contains(userCats, ft.Name):
			f.UserCat = append(f.UserCat, ft)
		case ft.Kind == config.KindDense && slices.Contains(userDense, ft.Name):
			f.UserDense = append(f.UserDense, ft.Name)
		case ft.Kind == config.KindEmbedding && ft.Name == "pretrained_emb" && f.UserEmb == "":
			f.UserEmb, f.UserEmbDim = ft.Name, ft.Dim
		default:
			bad("user", i, ft)
		}
	}
	for i, ft := range cfg.Features.Ad {
		switch {
		case ft.Kind == config.KindCategorical && slices.Contains(adCats, ft.Name):
			f.AdCat = append(f.AdCat, ft)
		case ft.Kind == config.KindDense && slices.Contains(adDense, ft.Name):
			f.AdDense = append(f.AdDense, ft.Name)
		default:
			bad("ad", i, ft)
		}
	}
	for i, ft := range cfg.Features.Item {
		if ft.Kind == config.KindEmbedding && ft.Name == "content_emb" && f.ContentDim == 0 {
			f.ContentDim = ft.Dim
		} else {
			bad("item", i, ft)
		}
	}
	if f.ContentDim == 0 {
		errs = append(errs, errors.New("features.item: the models need the content_emb embedding"))
	}
	for i, ft := range cfg.Features.Context {
		if ft.Kind == config.KindCategorical && slices.Contains(ctxCats, ft.Name) {
			f.Context = append(f.Context, ft)
		} else {
			bad("context", i, ft)
		}
	}
	return f, errors.Join(errs...)
}

// userCat returns user u's value of a categorical feature.
func userCat(u *data.User, name string) string {
	switch name {
	case "country":
		return u.Country
	case "device":
		return u.Device
	}
	return u.AgeBucket
}

func userDenseVal(u *data.User, name string) float32 {
	if name == "activity" {
		return u.Activity
	}
	return u.AccountAgeDays
}

func adCat(f config.Feature, a *data.Ad) int32 {
	switch f.Name {
	case "advertiser":
		return CodeInt(f, a.Advertiser)
	case "campaign":
		return CodeInt(f, a.Campaign)
	case "category":
		return CodeInt(f, int64(a.Category))
	}
	return CodeString(f, a.Product)
}

func adDenseVal(a *data.Ad, name string) float32 {
	switch name {
	case "bid":
		return a.Bid
	case "quality_creative":
		return a.QualityCreative
	}
	return a.QualityLanding
}
