// Command simlr measures how easy a simulated data set is for a model with
// no interactions: it fits a logistic regression for click on the raw
// features of the training days and reports, per surface on the test days,
// its captured share (LL_base − LL_lr) / (LL_base − LL_bayes). A simulator
// whose signal a linear model captures is too easy to judge the real models
// by (docs/SIMULATOR.md; the goal is ≤ 0.7).
//
//	go run ./benchmarks/simlr -data DIR
//
// Features, all raw: surface × view type, position, bid, the two quality
// scores, product, ad category, advertiser, the ad's content embedding, the
// user's categoricals, activity, account age and pretrained embedding, the
// query topic and the context item's category. No crosses and no sequence:
// those are what the real models add.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/metric"
)

func main() {
	dir := flag.String("data", "", "simulated data directory (required)")
	epochs := flag.Int("epochs", 4, "passes over the training days")
	lr := flag.Float64("lr", 0.05, "Adagrad learning rate")
	l2 := flag.Float64("l2", 1e-6, "L2 penalty per example")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "simlr: -data is required")
		os.Exit(2)
	}
	if err := run(*dir, *epochs, *lr, *l2); err != nil {
		fmt.Fprintln(os.Stderr, "simlr:", err)
		os.Exit(1)
	}
}

// example is one impression as a sparse feature vector: dense values at
// fixed slots 0..len(dense)-1 plus one-hot slots.
type example struct {
	dense  []float32
	hot    []int32
	y      int8
	pTrue  float64
	slice  string // surface/view type
	sf     string
	isTest bool
}

// vocab assigns one-hot slots to named values.
type vocab map[string]int32

func (v vocab) slot(key string) int32 {
	if s, ok := v[key]; ok {
		return s
	}
	s := int32(len(v))
	v[key] = s
	return s
}

func run(dir string, epochs int, lr, l2 float64) error {
	m, err := data.ReadManifest(dir)
	if err != nil {
		return err
	}
	if !m.GroundTruth {
		return fmt.Errorf("%s has no ground truth", dir)
	}
	items, itemIdx, err := readIndexed(dir, data.TableItems, func(r *data.Item) int64 { return r.ItemID })
	if err != nil {
		return err
	}
	ads, adIdx, err := readIndexed(dir, data.TableAds, func(r *data.Ad) int64 { return r.AdID })
	if err != nil {
		return err
	}
	users, userIdx, err := readIndexed(dir, data.TableUsers, func(r *data.User) int64 { return r.UserID })
	if err != nil {
		return err
	}
	reqs := map[int64]data.Request{}
	if err := data.ForEach(dir, data.TableRequests, 8192, func(rs []data.Request) error {
		for _, r := range rs {
			if r.TsMs < m.ValidationStartMs || r.TsMs >= m.TestStartMs { // train and test days
				reqs[r.RequestID] = r
			}
		}
		return nil
	}); err != nil {
		return err
	}
	hot := vocab{}
	var exs []example
	if err := data.ForEach(dir, data.TableImpressions, 8192, func(is []data.Impression) error {
		for _, im := range is {
			r, ok := reqs[im.RequestID]
			if !ok {
				continue
			}
			a := ads[adIdx[im.AdID]]
			u := users[userIdx[r.UserID]]
			it := items[itemIdx[im.AdID]]
			dense := []float32{a.Bid, a.QualityCreative, a.QualityLanding, u.Activity, float32(math.Log1p(float64(u.AccountAgeDays)))}
			dense = append(dense, it.ContentEmb...)
			dense = append(dense, u.PretrainedEmb...)
			slice := r.Surface + "/" + r.ViewType
			h := []int32{
				hot.slot("slice=" + slice), hot.slot("pos=" + strconv.Itoa(int(im.Position))),
				hot.slot("product=" + a.Product), hot.slot("category=" + strconv.Itoa(int(a.Category))),
				hot.slot("advertiser=" + strconv.FormatInt(a.Advertiser, 10)),
				hot.slot("country=" + u.Country), hot.slot("device=" + u.Device), hot.slot("age=" + u.AgeBucket),
				hot.slot("query=" + strconv.Itoa(int(r.QueryTopic))),
			}
			if r.ContextItemID >= 0 {
				h = append(h, hot.slot("context_category="+strconv.Itoa(int(items[itemIdx[r.ContextItemID]].Category))))
			}
			exs = append(exs, example{dense: dense, hot: h, y: im.Click, pTrue: im.PTrueClick, slice: slice, sf: r.Surface, isTest: r.TsMs >= m.TestStartMs})
		}
		return nil
	}); err != nil {
		return err
	}
	if len(exs) == 0 {
		return fmt.Errorf("no impressions")
	}
	nd := len(exs[0].dense)
	standardize(exs, nd)
	w := make([]float64, nd+len(hot)+1) // dense, one-hot, bias
	g2 := make([]float64, len(w))
	var train []int
	for i, e := range exs {
		if !e.isTest {
			train = append(train, i)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for ep := range epochs {
		r.Shuffle(len(train), func(i, j int) { train[i], train[j] = train[j], train[i] })
		var ll metric.LogLossAcc
		for _, i := range train {
			e := &exs[i]
			p := predict(w, e, nd)
			ll.Add(p, e.y)
			g := p - float64(e.y)
			step := func(k int, x float64) {
				gk := g*x + l2*w[k]
				g2[k] += gk * gk
				w[k] -= lr * gk / (math.Sqrt(g2[k]) + 1e-8)
			}
			for k, x := range e.dense {
				step(k, float64(x))
			}
			for _, h := range e.hot {
				step(nd+int(h), 1)
			}
			step(len(w)-1, 1)
		}
		fmt.Fprintf(os.Stderr, "epoch %d: train log loss %.5f\n", ep+1, ll.LogLoss())
	}
	report(exs, w, nd)
	return nil
}

// readIndexed reads a whole table and maps each row's id to its index.
func readIndexed[T any](dir, table string, id func(*T) int64) ([]T, map[int64]int, error) {
	rows, err := data.ReadAll[T](dir, table)
	if err != nil {
		return nil, nil, err
	}
	idx := make(map[int64]int, len(rows))
	for i := range rows {
		idx[id(&rows[i])] = i
	}
	return rows, idx, nil
}

// standardize rescales each dense slot to mean 0, sd 1 over the training rows.
func standardize(exs []example, nd int) {
	mean, sq := make([]float64, nd), make([]float64, nd)
	var n float64
	for _, e := range exs {
		if e.isTest {
			continue
		}
		n++
		for k, x := range e.dense {
			mean[k] += float64(x)
			sq[k] += float64(x) * float64(x)
		}
	}
	for k := range mean {
		mean[k] /= n
		sd := math.Sqrt(max(sq[k]/n-mean[k]*mean[k], 1e-12))
		for i := range exs {
			exs[i].dense[k] = float32((float64(exs[i].dense[k]) - mean[k]) / sd)
		}
	}
}

func predict(w []float64, e *example, nd int) float64 {
	z := w[len(w)-1]
	for k, x := range e.dense {
		z += w[k] * float64(x)
	}
	for _, h := range e.hot {
		z += w[nd+int(h)]
	}
	return 1 / (1 + math.Exp(-z))
}

// report prints, per surface on the test days, click log losses and the
// captured share; the base predictor is each surface × view type's own
// test-day rate, as in the oracle report.
func report(exs []example, w []float64, nd int) {
	type acc struct{ lr, bayes metric.LogLossAcc }
	bySlice := map[string]*metric.LogLossAcc{}
	bySurface := map[string]*acc{}
	for i := range exs {
		e := &exs[i]
		if !e.isTest {
			continue
		}
		if bySlice[e.slice] == nil {
			bySlice[e.slice] = &metric.LogLossAcc{}
		}
		bySlice[e.slice].Add(0, e.y) // only counts and positives are used
		if bySurface[e.sf] == nil {
			bySurface[e.sf] = &acc{}
		}
		bySurface[e.sf].lr.Add(predict(w, e, nd), e.y)
		bySurface[e.sf].bayes.Add(e.pTrue, e.y)
	}
	base := map[string]float64{} // surface → count-weighted base log loss
	for slice, a := range bySlice {
		sf, _, _ := strings.Cut(slice, "/")
		base[sf] += a.BaseLogLoss() * float64(a.Count())
	}
	fmt.Println("| surface | test impressions | base LL | LR LL | Bayes LL | LR captured share |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, sf := range []string{"home_feed", "search", "related"} {
		a := bySurface[sf]
		if a == nil {
			continue
		}
		b := base[sf] / float64(a.lr.Count())
		share := (b - a.lr.LogLoss()) / (b - a.bayes.LogLoss())
		fmt.Printf("| %s | %d | %.4f | %.4f | %.4f | %.3f |\n", sf, a.lr.Count(), b, a.lr.LogLoss(), a.bayes.LogLoss(), share)
	}
}
