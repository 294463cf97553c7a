package index

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// The benchmark set: 20,000 clustered vectors of dimension 32 and 500
// queries, with the exact top 10 of every query.
var (
	benchOnce    sync.Once
	benchBase    []float32
	benchQueries []float32
	benchTruth   [][]Result
	benchGraph   *Graph
)

const (
	benchN  = 20000
	benchNQ = 500
	benchD  = 32
)

func benchSet(b *testing.B) (*Graph, []float32, []float32, [][]Result) {
	b.Helper()
	benchOnce.Do(func() {
		benchBase = clustered(benchN, benchD, 101)
		benchQueries = clustered(benchNQ, benchD, 102)
		benchTruth = make([][]Result, benchNQ)
		for i := range benchNQ {
			benchTruth[i], _ = Exact(benchBase, benchD, L2, row(benchQueries, benchD, i), 10, nil)
		}
		var err error
		benchGraph, err = Build(benchBase, benchD, Config{M: 16, EfConstruction: 200, Seed: 1}, 1)
		if err != nil {
			panic(err)
		}
	})
	return benchGraph, benchBase, benchQueries, benchTruth
}

func BenchmarkBuild(b *testing.B) {
	_, base, _, _ := benchSet(b)
	for _, threads := range []int{1, 0} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Build(base, benchD, Config{M: 16, EfConstruction: 200, Seed: 1}, threads); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchN)*float64(b.N)/b.Elapsed().Seconds(), "vectors/s")
		})
	}
}

// BenchmarkSearch runs every query once per iteration, on one goroutine,
// and reports queries/s and the mean recall@10.
func BenchmarkSearch(b *testing.B) {
	g, _, queries, truth := benchSet(b)
	for _, ef := range []int{10, 20, 40, 80, 160} {
		b.Run(fmt.Sprintf("ef=%d", ef), func(b *testing.B) {
			s := NewSearcher()
			recall := 0.0
			dists := 0
			if _, err := g.Search(row(queries, benchD, 0), 10, ef, nil, s); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				recall, dists = 0, 0
				for i := range benchNQ {
					res, err := g.Search(row(queries, benchD, i), 10, ef, nil, s)
					if err != nil {
						b.Fatal(err)
					}
					recall += recallAt(res, truth[i])
					dists += s.Stats().Distances
				}
			}
			el := time.Since(start).Seconds()
			b.ReportMetric(float64(benchNQ)*float64(b.N)/el, "queries/s")
			b.ReportMetric(recall/benchNQ, "recall@10")
			b.ReportMetric(float64(dists)/benchNQ, "dists/query")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkSearchFiltered compares the filtered graph search, with and
// without a pass-rate hint, and the exact scan of the admitted ids.
func BenchmarkSearchFiltered(b *testing.B) {
	g, _, queries, _ := benchSet(b)
	for _, rate := range []float64{0.5, 0.1, 0.01} {
		mod := uint64(1/rate + 0.5)
		filter := func(id int32) bool { return mix64(uint64(id))%mod == 0 }
		for _, mode := range []string{"graph", "hint", "exact"} {
			b.Run(fmt.Sprintf("pass=%g/%s", rate, mode), func(b *testing.B) {
				s := NewSearcher()
				o := SearchOptions{K: 10, Ef: 80, Filter: filter}
				if mode == "hint" {
					o.PassRate = rate
				}
				if _, err := g.SearchExact(row(queries, benchD, 0), 10, nil, s); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				start := time.Now()
				for b.Loop() {
					for i := range benchNQ {
						q := row(queries, benchD, i)
						var err error
						if mode == "exact" {
							_, err = g.SearchExact(q, 10, filter, s)
						} else {
							_, err = g.SearchWith(q, o, s)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(benchNQ)*float64(b.N)/time.Since(start).Seconds(), "queries/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
