package sim

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/tandemml/tandem/config"
)

// Stream tags keep the random streams of different entities apart: entity
// e of kind k draws from PCG(seed, mix(k, e)), so any entity can be
// regenerated alone and generation can run in parallel.
const (
	tagTopics uint64 = iota + 1
	tagItem
	tagAd
	tagAdvertiser
	tagUser
	tagProjection
	tagTimeline
)

// mix is splitmix64 over a tag and an id.
func mix(tag uint64, id uint64) uint64 {
	z := tag*0x9e3779b97f4a7c15 + id + 0x632be59bd9b4e019
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (w *World) rng(tag, id uint64) *rand.Rand {
	return rand.New(rand.NewPCG(w.seed, mix(tag, id)))
}

// Countries, devices and age buckets of simulated users, with their shares.
var (
	countries   = []string{"us", "gb", "de", "fr", "br", "in", "jp", "other"}
	countryCum  = cumulative([]float64{0.35, 0.08, 0.08, 0.06, 0.1, 0.15, 0.06, 0.12})
	devices     = []string{"ios", "android", "web"}
	deviceCum   = cumulative([]float64{0.45, 0.4, 0.15})
	ageBuckets  = []string{"18-24", "25-34", "35-44", "45-54", "55+"}
	ageCum      = cumulative([]float64{0.2, 0.32, 0.24, 0.14, 0.1})
	productsCum = cumulative([]float64{0.7, 0.3}) // standard, shopping
)

// interestSharpness turns a long-term interest into topic choice odds:
// P(topic k) ∝ exp(interestSharpness·θ_k).
const interestSharpness = 6.0

// World holds every persistent latent of a simulated data set: topics,
// items, ads, advertisers and users. It is a pure function of the config,
// the scale and the seed, so evaluation rebuilds it rather than reading it.
type World struct {
	cfg   *config.Config
	scale config.Scale
	split config.Split
	seed  uint64

	k          int       // topics
	topicCum   []float64 // topic popularity CDF
	contentDim int
	userDim    int
	q          []float64 // contentDim × k: content_emb = q·φ
	r          []float64 // userDim × k: pretrained_emb = r·θ

	numAds   int       // items [0, numAds) are the ads
	itemPhi  []float32 // items × k, unit rows
	itemCat  []int32
	adBid    []float32
	adQC     []float32 // quality_creative
	adQL     []float32 // quality_landing
	adAdv    []int32
	adCamp   []int32
	adProd   []uint8
	adElig   []uint64 // bit s set: eligible on surface s
	adActive []bool
	advEff   []float64 // advertiser quality latent

	userTheta []float32 // users × k, unit rows
	userRate  []float64 // sessions per day

	organicByTopic [][]int32   // topic → organic item indexes
	adsBySurface   [][]int32   // surface → eligible active ad indexes
	adsByST        [][][]int32 // surface → topic → eligible active ad indexes
	surfaceCum     []float64
	viewCum        [][]float64
}

// NewWorld builds the world of the named scale for a seed.
func NewWorld(cfg *config.Config, scaleName string, seed uint64) (*World, error) {
	sc, sp, err := cfg.ScaleNamed(scaleName)
	if err != nil {
		return nil, err
	}
	return NewWorldScale(cfg, sc, sp, seed)
}

// NewWorldScale builds a world for an explicit scale and split.
func NewWorldScale(cfg *config.Config, sc config.Scale, sp config.Split, seed uint64) (*World, error) {
	w := &World{cfg: cfg, scale: sc, split: sp, seed: seed, k: sc.Topics, numAds: sc.Ads}
	w.contentDim = featureDim(cfg.Features.Item, "content_emb")
	w.userDim = featureDim(cfg.Features.User, "pretrained_emb")
	if w.contentDim == 0 || w.userDim == 0 {
		return nil, fmt.Errorf("sim: config needs embedding features item.content_emb and user.pretrained_emb")
	}
	for _, s := range cfg.Surfaces {
		w.surfaceCum = append(w.surfaceCum, s.Traffic)
		var shares []float64
		for _, v := range s.ViewTypes {
			shares = append(shares, v.Share)
		}
		w.viewCum = append(w.viewCum, cumulative(shares))
	}
	w.surfaceCum = cumulative(w.surfaceCum)
	w.buildTopics()
	w.buildItems()
	w.buildAds()
	w.buildUsers()
	w.buildIndexes()
	return w, nil
}

func featureDim(fs []config.Feature, name string) int {
	for _, f := range fs {
		if f.Name == name && f.Kind == config.KindEmbedding {
			return f.Dim
		}
	}
	return 0
}

func (w *World) buildTopics() {
	pop := make([]float64, w.k)
	for i := range pop {
		pop[i] = math.Pow(float64(i+1), -w.cfg.Sim.TopicZipf)
	}
	w.topicCum = cumulative(pop)
	r := w.rng(tagProjection, 0)
	w.q = gaussianMatrix(r, w.contentDim, w.k)
	w.r = gaussianMatrix(r, w.userDim, w.k)
}

// gaussianMatrix returns rows×cols entries N(0, 1/cols).
func gaussianMatrix(r *rand.Rand, rows, cols int) []float64 {
	m := make([]float64, rows*cols)
	s := 1 / math.Sqrt(float64(cols))
	for i := range m {
		m[i] = r.NormFloat64() * s
	}
	return m
}

// NumItems is the number of items, ads included.
func (w *World) NumItems() int { return w.numAds + w.scale.OrganicItems }

func (w *World) buildItems() {
	n := w.NumItems()
	w.itemPhi = make([]float32, n*w.k)
	w.itemCat = make([]int32, n)
	spread := w.cfg.Sim.ItemSpread / math.Sqrt(float64(w.k))
	v := make([]float64, w.k)
	for i := range n {
		r := w.rng(tagItem, uint64(i))
		c := draw(r, w.topicCum)
		for j := range v {
			v[j] = spread * r.NormFloat64()
		}
		v[c]++
		normalize(v)
		w.itemCat[i] = int32(c)
		for j, x := range v {
			w.itemPhi[i*w.k+j] = float32(x)
		}
	}
}

func (w *World) buildAds() {
	n := w.numAds
	w.adBid, w.adQC, w.adQL = make([]float32, n), make([]float32, n), make([]float32, n)
	w.adAdv, w.adCamp = make([]int32, n), make([]int32, n)
	w.adProd, w.adElig, w.adActive = make([]uint8, n), make([]uint64, n), make([]bool, n)
	sizes := make([]float64, w.scale.Advertisers)
	for i := range sizes {
		sizes[i] = math.Pow(float64(i+1), -w.cfg.Sim.AdvertiserZipf)
	}
	advCum := cumulative(sizes)
	w.advEff = make([]float64, w.scale.Advertisers)
	for a := range w.advEff {
		w.advEff[a] = w.cfg.Sim.AdvertiserSD * w.rng(tagAdvertiser, uint64(a)).NormFloat64()
	}
	// Eligibility odds fall with surface order: the first surface takes
	// nearly every ad, later ones fewer.
	for i := range n {
		r := w.rng(tagAd, uint64(i))
		adv := draw(r, advCum)
		w.adAdv[i] = int32(adv)
		w.adCamp[i] = int32(adv*16 + r.IntN(16))
		w.adProd[i] = uint8(draw(r, productsCum))
		bid := math.Exp(0.5 * r.NormFloat64())
		if w.adProd[i] == 1 {
			bid *= 0.7
		}
		w.adBid[i] = float32(bid)
		w.adQC[i] = float32(r.NormFloat64())
		w.adQL[i] = float32(r.NormFloat64())
		var elig uint64
		for s := range w.cfg.Surfaces {
			if r.Float64() < 0.95-0.12*float64(s) {
				elig |= 1 << s
			}
		}
		if elig == 0 {
			elig = 1
		}
		w.adElig[i] = elig
		w.adActive[i] = r.Float64() < 0.95
	}
}

func (w *World) buildUsers() {
	n := w.scale.Users
	w.userTheta = make([]float32, n*w.k)
	w.userRate = make([]float64, n)
	spread := w.cfg.Sim.UserSpread / math.Sqrt(float64(w.k))
	v := make([]float64, w.k)
	for u := range n {
		r := w.rng(tagUser, uint64(u))
		for j := range v {
			v[j] = spread * r.NormFloat64()
		}
		var tot float64
		wts := make([]float64, w.cfg.Sim.UserTopics)
		for m := range wts {
			wts[m] = r.ExpFloat64()
			tot += wts[m]
		}
		for m := range wts {
			v[draw(r, w.topicCum)] += wts[m] / tot
		}
		normalize(v)
		for j, x := range v {
			w.userTheta[u*w.k+j] = float32(x)
		}
		// Lognormal activity with mean sessions_per_day.
		w.userRate[u] = w.scale.SessionsPerDay * math.Exp(0.6*r.NormFloat64()-0.18)
	}
}

func (w *World) buildIndexes() {
	w.organicByTopic = make([][]int32, w.k)
	for i := w.numAds; i < w.NumItems(); i++ {
		c := w.itemCat[i]
		w.organicByTopic[c] = append(w.organicByTopic[c], int32(i))
	}
	ns := len(w.cfg.Surfaces)
	w.adsBySurface = make([][]int32, ns)
	w.adsByST = make([][][]int32, ns)
	for s := range ns {
		w.adsByST[s] = make([][]int32, w.k)
	}
	for i := range w.numAds {
		if !w.adActive[i] {
			continue
		}
		for s := range ns {
			if w.adElig[i]&(1<<s) != 0 {
				w.adsBySurface[s] = append(w.adsBySurface[s], int32(i))
				w.adsByST[s][w.itemCat[i]] = append(w.adsByST[s][w.itemCat[i]], int32(i))
			}
		}
	}
}

// ItemID, AdID and UserID map dense indexes to the ids in the data files:
// ids start at 1, and ad ids are the item ids of the first NumAds items.
func ItemID(index int) int64 { return int64(index) + 1 }

// UserID maps a user index to its id.
func UserID(index int) int64 { return int64(index) + 1 }

// itemIndex maps an item id back, or -1.
func (w *World) itemIndex(id int64) int {
	if id < 1 || id > int64(w.NumItems()) {
		return -1
	}
	return int(id - 1)
}

func (w *World) userIndex(id int64) int {
	if id < 1 || id > int64(w.scale.Users) {
		return -1
	}
	return int(id - 1)
}

func (w *World) phi(item int) []float32 { return w.itemPhi[item*w.k : (item+1)*w.k] }

func (w *World) theta(user int) []float32 { return w.userTheta[user*w.k : (user+1)*w.k] }

// contentEmb writes q·φ of an item into dst.
func (w *World) contentEmb(dst []float32, item int) []float32 {
	return project(dst, w.q, w.phi(item), w.contentDim)
}

// pretrainedEmb writes r·θ of a user into dst.
func (w *World) pretrainedEmb(dst []float32, user int) []float32 {
	return project(dst, w.r, w.theta(user), w.userDim)
}

func project(dst []float32, m []float64, v []float32, rows int) []float32 {
	k := len(v)
	for i := range rows {
		var s float64
		for j, x := range v {
			s += m[i*k+j] * float64(x)
		}
		dst = append(dst, float32(s))
	}
	return dst
}

// cumulative returns the normalised cumulative sums of weights w.
func cumulative(w []float64) []float64 {
	return cumulativeInPlace(append([]float64(nil), w...))
}

// draw samples an index from a cumulative distribution.
func draw(r *rand.Rand, cum []float64) int {
	u := r.Float64()
	lo, hi := 0, len(cum)-1
	for lo < hi {
		m := (lo + hi) / 2
		if cum[m] > u {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

func normalize(v []float64) {
	var s float64
	for _, x := range v {
		s += x * x
	}
	s = 1 / math.Sqrt(s)
	for i := range v {
		v[i] *= s
	}
}
