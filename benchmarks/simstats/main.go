// Command simstats measures the properties docs/SIMULATOR.md promises of a
// simulated data directory: label rates per surface, events per user
// before the first test day, and how many training impressions each
// persistent latent (user, advertiser) is seen in.
//
//	go run ./benchmarks/simstats -data DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"

	"github.com/tandemml/tandem/data"
)

func main() {
	dir := flag.String("data", "", "simulated data directory (required)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "simstats: -data is required")
		os.Exit(2)
	}
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "simstats:", err)
		os.Exit(1)
	}
}

type rates struct{ n, click, save, long, hide float64 }

func run(dir string) error {
	m, err := data.ReadManifest(dir)
	if err != nil {
		return err
	}
	advOf := map[int64]int64{}
	if err := data.ForEach(dir, data.TableAds, 8192, func(rs []data.Ad) error {
		for _, a := range rs {
			advOf[a.AdID] = a.Advertiser
		}
		return nil
	}); err != nil {
		return err
	}
	type req struct {
		user    int64
		surface string
		train   bool
	}
	reqs := map[int64]req{}
	if err := data.ForEach(dir, data.TableRequests, 8192, func(rs []data.Request) error {
		for _, r := range rs {
			reqs[r.RequestID] = req{r.UserID, r.Surface, r.TsMs < m.ValidationStartMs}
		}
		return nil
	}); err != nil {
		return err
	}
	bySurface := map[string]*rates{}
	userImps, advImps := map[int64]int{}, map[int64]int{}
	var trainImps int
	if err := data.ForEach(dir, data.TableImpressions, 8192, func(is []data.Impression) error {
		for _, im := range is {
			r := reqs[im.RequestID]
			s := bySurface[r.surface]
			if s == nil {
				s = &rates{}
				bySurface[r.surface] = s
			}
			s.n++
			s.click += float64(im.Click)
			s.save += float64(im.Save)
			s.long += float64(im.LongClick)
			s.hide += float64(im.Hide)
			if r.train {
				trainImps++
				userImps[r.user]++
				advImps[advOf[im.AdID]]++
			}
		}
		return nil
	}); err != nil {
		return err
	}
	events := map[int64]int{}
	if err := data.ForEach(dir, data.TableEvents, 8192, func(es []data.Event) error {
		for _, e := range es {
			if e.TsMs < m.TestStartMs {
				events[e.UserID]++
			}
		}
		return nil
	}); err != nil {
		return err
	}
	users := int(m.Rows[data.TableUsers])
	fmt.Printf("data %s: scale %s, seed %d, %d training impressions\n\n", dir, m.Scale, m.Seed, trainImps)
	fmt.Println("| surface | impressions | click | save | long_click | hide |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, name := range []string{"home_feed", "search", "related"} {
		if s := bySurface[name]; s != nil {
			fmt.Printf("| %s | %.0f | %.4f | %.4f | %.4f | %.4f |\n", name, s.n, s.click/s.n, s.save/s.n, s.long/s.n, s.hide/s.n)
		}
	}
	fmt.Println()
	fmt.Printf("events per user before the first test day: %s\n", quantiles(values(events, users)))
	fmt.Printf("training impressions per user:             %s\n", quantiles(values(userImps, users)))
	nAdv := 0
	seen := map[int64]bool{}
	for _, a := range advOf {
		if !seen[a] {
			seen[a] = true
			nAdv++
		}
	}
	fmt.Printf("training impressions per advertiser:       %s\n", quantiles(values(advImps, nAdv)))
	return nil
}

// values lists the counts, padding with zeros up to n keys.
func values(m map[int64]int, n int) []int {
	out := make([]int, 0, max(n, len(m)))
	for _, v := range m {
		out = append(out, v)
	}
	for len(out) < n {
		out = append(out, 0)
	}
	slices.Sort(out)
	return out
}

func quantiles(v []int) string {
	if len(v) == 0 {
		return "none"
	}
	q := func(p float64) int { return v[int(p*float64(len(v)-1))] }
	return fmt.Sprintf("min %d, p5 %d, p25 %d, median %d, p75 %d, max %d (n = %d)", v[0], q(0.05), q(0.25), q(0.5), q(0.75), v[len(v)-1], len(v))
}
