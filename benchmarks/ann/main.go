// Command ann measures the index package's HNSW graph on Fashion-MNIST
// beside hnswlib and faiss (Debian python3-hnswlib and python3-faiss,
// through pyann.py) and github.com/coder/hnsw: build time, then recall@k
// against exact search and queries/s for each ef, on one goroutine (all
// queries in one loop) and on all cores (queries split over NumCPU
// goroutines; the Python libraries get the same thread count), and finally
// queries/s compared at matched recall by linear interpolation of each
// curve.
//
//	go run ./benchmarks/ann [-data DIR] [-m 16] [-efc 200] [-ef 10,20,...] [-json FILE]
//
// The data are the 60,000 training images (base) and 10,000 test images
// (queries) of Fashion-MNIST as 784 unscaled pixel values (Debian package
// dataset-fashion-mnist, gzipped IDX files), compared by L2. The ground
// truth is exact: SGEMM inner products pick a shortlist that is re-ranked
// by distances computed from differences in float64. Every library builds
// on all cores with the same M and efConstruction (coder/hnsw has neither a
// separate layer-0 degree nor an efConstruction: it keeps M neighbours per
// layer and builds with EfSearch = efConstruction). Each timed pass runs
// all queries; it is repeated at least three times and until -min-time has
// passed, and the fastest pass counts (the same on the Python side).
//
// With -json FILE the results are written there and the recall-vs-queries/s
// curves beside it as a PNG (FILE with .png for .json).
//
// With -ads-data DIR -ads-model MODELDIR the vectors are instead those of
// retrieval, maximum inner product search on trained towers: the base is
// a_click of every ad the model version's route serves (its L1 ad tower on
// the inference engine, as the nightly refresh indexes them), from the
// catalog of -ads-catalog (default: DIR), and the queries are u_click of
// DIR's test requests (the same version's user tower). Both index.InnerProduct
// (norm augmentation) and index.RawIP are built and swept; the truth is the
// exact inner product.
//
//	go run ./benchmarks/ann -ads-data D/data -ads-model D/models [-ads-catalog DIR] [-nq 2000] [-json FILE] [-write-vectors DIR]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/hnsw"

	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/vecfile"
)

// library is one library's measurements.
type library struct {
	Name    string  `json:"name"`
	Version string  `json:"version,omitempty"`
	BuildS  float64 `json:"build_s"`
	Points  []point `json:"points"`
}

type report struct {
	Dataset    string             `json:"dataset"`
	Metric     string             `json:"metric"`
	Note       string             `json:"note,omitempty"`
	Base       int                `json:"base"`
	Queries    int                `json:"queries"`
	Dim        int                `json:"dim"`
	K          int                `json:"k"`
	M          int                `json:"m"`
	EfC        int                `json:"ef_construction"`
	Threads    int                `json:"threads"`
	CPU        string             `json:"cpu"`
	GoVersion  string             `json:"go"`
	TruthS     float64            `json:"truth_s"`
	Libraries  []library          `json:"libraries"`
	Matched    []matched          `json:"matched"`
	Errors     map[string]string  `json:"errors,omitempty"`
	TandemDist map[string]float64 `json:"tandem_distances_per_query,omitempty"`
}

// matched is the queries/s of every library at one target recall.
type matched struct {
	Recall  float64            `json:"recall"`
	Threads int                `json:"threads"`
	QPS     map[string]float64 `json:"qps"`
}

func main() {
	data := flag.String("data", "/usr/share/datasets/fashion-mnist", "directory of the Fashion-MNIST IDX files (.gz or not)")
	m := flag.Int("m", 16, "HNSW M (layer 0 keeps 2M)")
	efc := flag.Int("efc", 200, "efConstruction")
	efList := flag.String("ef", "10,20,40,80,120,200,400", "search beam widths")
	k := flag.Int("k", 10, "neighbours per query")
	threads := flag.Int("threads", runtime.NumCPU(), "cores for the parallel rows and for building")
	nb := flag.Int("nb", 0, "use only the first nb base vectors (0: all)")
	nq := flag.Int("nq", 0, "use only the first nq queries (0: all)")
	libs := flag.String("libs", "tandem,hnswlib,faiss,coder", "libraries to run")
	python := flag.String("python", "/usr/bin/python3", "Python with hnswlib, faiss and numpy")
	minTime := flag.Duration("min-time", time.Second, "minimum time of each measured point")
	targets := flag.String("recalls", "0.9,0.95,0.97,0.98,0.99,0.995", "recalls at which the curves are compared")
	jsonOut := flag.String("json", "", "write the results as JSON here and the curves beside it as PNG")
	adsData := flag.String("ads-data", "", "ads mode: data directory whose test requests give the queries u_click")
	adsModel := flag.String("ads-model", "", "ads mode: model directory; its CURRENT version embeds ads and requests")
	adsCatalog := flag.String("ads-catalog", "", "ads mode: data directory whose ads are indexed (default: -ads-data)")
	adsRoute := flag.String("ads-route", "", "ads mode: the L1 route (default: the first)")
	writeVecs := flag.String("write-vectors", "", "also write base.fvecs, queries.fvecs and the exact truth gt.ivecs here (for tandem index build/query)")
	flag.Parse()
	log.SetFlags(0)

	efs, err := parseInts(*efList)
	if err != nil {
		log.Fatalf("-ef: %v", err)
	}
	recalls, err := parseFloats(*targets)
	if err != nil {
		log.Fatalf("-recalls: %v", err)
	}
	rep := report{Dataset: "fashion-mnist", Metric: "L2", K: *k, M: *m, EfC: *efc,
		Threads: *threads, CPU: cpuName(), GoVersion: runtime.Version(), Errors: map[string]string{}}
	var base, queries []float32
	var dim int
	if *adsData != "" {
		if *adsModel == "" {
			log.Fatal("-ads-data needs -ads-model")
		}
		t0 := time.Now()
		set, err := loadAds(*adsData, *adsCatalog, *adsModel, *adsRoute, *nq, *threads)
		if err != nil {
			log.Fatal(err)
		}
		base, queries, dim = set.base, set.queries, set.dim
		rep.Dataset, rep.Metric = fmt.Sprintf("ads (%d ads, route %s)", len(base)/dim, set.route), "inner product"
		rep.Note = fmt.Sprintf("model version %s; a_click of the %d of %d catalog ads the route serves, catalog %s; u_click of test requests of %s",
			set.model, len(base)/dim, set.catalogAds, cmpOr(*adsCatalog, *adsData), *adsData)
		log.Printf("ads: embedded %d ads and %d requests (d = %d) in %.1fs", len(base)/dim, len(queries)/dim, dim, time.Since(t0).Seconds())
	} else {
		var nQuery, qdim int
		var err error
		base, _, dim, err = vecfile.ReadIDX(idxPath(*data, "train-images-idx3-ubyte"))
		if err != nil {
			log.Fatal(err)
		}
		queries, nQuery, qdim, err = vecfile.ReadIDX(idxPath(*data, "t10k-images-idx3-ubyte"))
		if err != nil {
			log.Fatal(err)
		}
		if qdim != dim {
			log.Fatalf("base rows have %d values, queries %d", dim, qdim)
		}
		if *nq > 0 && *nq < nQuery {
			queries = queries[:*nq*dim]
		}
	}
	if *nb > 0 && *nb < len(base)/dim {
		base = base[:*nb*dim]
	}
	nBase, nQuery := len(base)/dim, len(queries)/dim
	rep.Base, rep.Queries, rep.Dim = nBase, nQuery, dim
	log.Printf("%s: %d base, %d queries, dim %d, %d cores", rep.Dataset, nBase, nQuery, dim, *threads)

	t0 := time.Now()
	truth := groundTruth(base, nBase, queries, nQuery, dim, *k, *adsData != "")
	rep.TruthS = time.Since(t0).Seconds()
	log.Printf("ground truth: %.1fs", rep.TruthS)
	if *writeVecs != "" {
		if err := writeVectors(*writeVecs, base, queries, dim, truth, *k); err != nil {
			log.Fatal(err)
		}
	}

	run := map[string]bool{}
	for _, l := range strings.Split(*libs, ",") {
		run[strings.TrimSpace(l)] = true
	}
	if *adsData != "" {
		// Only our two inner-product variants: the other libraries run L2 here.
		rep.TandemDist = map[string]float64{}
		for _, v := range []struct {
			name   string
			metric index.Metric
		}{{"tandem ip", index.InnerProduct}, {"tandem rawip", index.RawIP}} {
			lib, dists := runTandem(v.name, v.metric, base, queries, dim, *k, *m, *efc, efs, *threads, *minTime, truth)
			rep.Libraries = append(rep.Libraries, lib)
			for ef, d := range dists {
				rep.TandemDist[v.name+" ef "+ef] = d
			}
		}
		run = map[string]bool{}
	}
	if run["tandem"] {
		lib, dists := runTandem("tandem", index.L2, base, queries, dim, *k, *m, *efc, efs, *threads, *minTime, truth)
		rep.Libraries = append(rep.Libraries, lib)
		rep.TandemDist = dists
	}
	if run["hnswlib"] || run["faiss"] {
		var names []string
		for _, l := range []string{"hnswlib", "faiss"} {
			if run[l] {
				names = append(names, l)
			}
		}
		got, err := runPython(*python, names, base, queries, dim, *k, *m, *efc, efs, *threads, *minTime, truth)
		if err != nil {
			log.Printf("python libraries: %v", err)
			rep.Errors["python"] = err.Error()
		}
		rep.Libraries = append(rep.Libraries, got...)
	}
	if run["coder"] {
		rep.Libraries = append(rep.Libraries, runCoder(base, queries, dim, *k, *m, *efc, efs, *threads, *minTime, truth))
	}

	fmt.Print(render(&rep, recalls))
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
		png := strings.TrimSuffix(*jsonOut, ".json") + ".png"
		if err := plotCurves(png, &rep); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s and %s", *jsonOut, png)
	}
}

// writeVectors writes the benchmark's vectors and its truth into dir.
func writeVectors(dir string, base, queries []float32, dim int, truth [][]int32, k int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := vecfile.WriteFvecs(filepath.Join(dir, "base.fvecs"), base, dim); err != nil {
		return err
	}
	if err := vecfile.WriteFvecs(filepath.Join(dir, "queries.fvecs"), queries, dim); err != nil {
		return err
	}
	gt := make([]int32, 0, len(truth)*k)
	for i, t := range truth {
		if len(t) != k {
			return fmt.Errorf("truth of query %d holds %d ids, want %d", i, len(t), k)
		}
		gt = append(gt, t...)
	}
	return vecfile.WriteIvecs(filepath.Join(dir, "gt.ivecs"), gt, k)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// idxPath prefers the gzipped file and falls back to the plain one.
func idxPath(dir, name string) string {
	p := filepath.Join(dir, name+".gz")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return filepath.Join(dir, name)
}

// timeQueries runs search over all queries, on one goroutine or split over
// threads goroutines, repeating the pass at least minPasses times and until
// minTime has passed, and returns the ids of the last pass and the queries
// per second of the fastest pass (the machine is shared: the fastest pass
// is the one least disturbed). search appends query i's result ids to
// dst[:0].
func timeQueries(nq, k, threads int, minTime time.Duration, search func(worker, i int, dst []int32) []int32) ([][]int32, float64) {
	ids := make([][]int32, nq)
	for i := range ids {
		ids[i] = make([]int32, 0, k)
	}
	var total time.Duration
	best := time.Duration(math.MaxInt64)
	for passes := 0; total < minTime || passes < minPasses; passes++ {
		t0 := time.Now()
		if threads <= 1 {
			for i := range nq {
				ids[i] = search(0, i, ids[i])
			}
		} else {
			var wg sync.WaitGroup
			chunk := (nq + threads - 1) / threads
			for w := range threads {
				wg.Go(func() {
					for i := w * chunk; i < min(nq, (w+1)*chunk); i++ {
						ids[i] = search(w, i, ids[i])
					}
				})
			}
			wg.Wait()
		}
		el := time.Since(t0)
		total += el
		best = min(best, el)
	}
	return ids, float64(nq) / best.Seconds()
}

// minPasses is the least number of timed passes per measured point.
const minPasses = 3

func runTandem(name string, metric index.Metric, base, queries []float32, dim, k, m, efc int, efs []int, threads int, minTime time.Duration, truth [][]int32) (library, map[string]float64) {
	lib := library{Name: name, Version: runtime.Version()}
	t0 := time.Now()
	g, err := index.Build(base, dim, index.Config{M: m, EfConstruction: efc, Metric: metric, Seed: 1}, threads)
	if err != nil {
		log.Fatal(err)
	}
	lib.BuildS = time.Since(t0).Seconds()
	log.Printf("%s: built in %.1fs (%d threads), %d layers", name, lib.BuildS, threads, g.Levels())
	nq := len(queries) / dim
	dists := map[string]float64{}
	for _, th := range []int{1, threads} {
		searchers := make([]*index.Searcher, th)
		for i := range searchers {
			searchers[i] = index.NewSearcher()
		}
		for _, ef := range efs {
			ids, qps := timeQueries(nq, k, th, minTime, func(w, i int, dst []int32) []int32 {
				res, err := g.Search(queries[i*dim:(i+1)*dim], k, ef, nil, searchers[w])
				if err != nil {
					log.Fatal(err)
				}
				dst = dst[:0]
				for _, r := range res {
					dst = append(dst, r.ID)
				}
				return dst
			})
			p := point{Ef: ef, Threads: th, Recall: recall(ids, truth), QPS: qps}
			lib.Points = append(lib.Points, p)
			log.Printf("%s: ef %d threads %d: recall %.4f, %.0f queries/s", name, ef, th, p.Recall, p.QPS)
		}
	}
	// Distances per query, from one more untimed single-thread pass.
	s := index.NewSearcher()
	for _, ef := range efs {
		total := 0
		for i := range nq {
			if _, err := g.Search(queries[i*dim:(i+1)*dim], k, ef, nil, s); err != nil {
				log.Fatal(err)
			}
			total += s.Stats().Distances
		}
		dists[strconv.Itoa(ef)] = float64(total) / float64(nq)
	}
	return lib, dists
}

func runCoder(base, queries []float32, dim, k, m, efc int, efs []int, threads int, minTime time.Duration, truth [][]int32) library {
	lib := library{Name: "coder/hnsw", Version: "v0.6.1"}
	g := hnsw.NewGraph[int32]()
	g.M = m
	g.EfSearch = efc
	g.Distance = hnsw.EuclideanDistance
	nb := len(base) / dim
	t0 := time.Now()
	for i := range nb {
		g.Add(hnsw.MakeNode(int32(i), base[i*dim:(i+1)*dim:(i+1)*dim]))
	}
	lib.BuildS = time.Since(t0).Seconds()
	log.Printf("coder/hnsw: built in %.1fs (1 thread: Add is not safe for concurrent use)", lib.BuildS)
	nq := len(queries) / dim
	for _, th := range []int{1, threads} {
		for _, ef := range efs {
			g.EfSearch = ef
			ids, qps := timeQueries(nq, k, th, minTime, func(_, i int, dst []int32) []int32 {
				res := g.Search(queries[i*dim:(i+1)*dim], k)
				dst = dst[:0]
				for _, r := range res {
					dst = append(dst, r.Key)
				}
				return dst
			})
			p := point{Ef: ef, Threads: th, Recall: recall(ids, truth), QPS: qps}
			lib.Points = append(lib.Points, p)
			log.Printf("coder/hnsw: ef %d threads %d: recall %.4f, %.0f queries/s", ef, th, p.Recall, p.QPS)
		}
	}
	return lib
}

// pyLib is what pyann.py reports for one library.
type pyLib struct {
	Version      string  `json:"version"`
	BuildS       float64 `json:"build_s"`
	BuildThreads int     `json:"build_threads"`
	Runs         []struct {
		Ef      int     `json:"ef"`
		Threads int     `json:"threads"`
		Seconds float64 `json:"seconds"` // the fastest pass over all queries
		IDs     string  `json:"ids"`
	} `json:"runs"`
}

func runPython(python string, names []string, base, queries []float32, dim, k, m, efc int, efs []int, threads int, minTime time.Duration, truth [][]int32) ([]library, error) {
	dir, err := os.MkdirTemp("", "tandem-ann-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bp, qp := filepath.Join(dir, "base.fvecs"), filepath.Join(dir, "queries.fvecs")
	if err := vecfile.WriteFvecs(bp, base, dim); err != nil {
		return nil, err
	}
	if err := vecfile.WriteFvecs(qp, queries, dim); err != nil {
		return nil, err
	}
	script := filepath.Join("benchmarks", "ann", "pyann.py")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("%s not found: run from the repository root", script)
	}
	efStr := make([]string, len(efs))
	for i, e := range efs {
		efStr[i] = strconv.Itoa(e)
	}
	cmd := exec.Command(python, script, "--base", bp, "--queries", qp, "--out", dir,
		"--k", strconv.Itoa(k), "--m", strconv.Itoa(m), "--efc", strconv.Itoa(efc),
		"--ef", strings.Join(efStr, ","), "--threads", strconv.Itoa(threads),
		"--min-time", strconv.FormatFloat(minTime.Seconds(), 'f', -1, 64), "--min-passes", strconv.Itoa(minPasses),
		"--libs", strings.Join(names, ","))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	// One BLAS/OpenMP pool per process, sized by the script itself.
	cmd.Env = append(os.Environ(), "OPENBLAS_NUM_THREADS=1")
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w", script, err)
	}
	var out map[string]pyLib
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("%s output: %w", script, err)
	}
	var libs []library
	for _, name := range names {
		pl, ok := out[name]
		if !ok {
			continue
		}
		lib := library{Name: name, Version: pl.Version, BuildS: pl.BuildS}
		log.Printf("%s: built in %.1fs (%d threads)", name, pl.BuildS, pl.BuildThreads)
		for _, r := range pl.Runs {
			flat, kd, err := vecfile.ReadIvecs(r.IDs)
			if err != nil {
				return libs, err
			}
			if kd != k {
				return libs, fmt.Errorf("%s: rows of %d ids, want %d", r.IDs, kd, k)
			}
			ids := make([][]int32, len(flat)/k)
			for i := range ids {
				ids[i] = flat[i*k : (i+1)*k]
			}
			if len(ids) != len(truth) {
				return libs, fmt.Errorf("%s: %d result rows for %d queries", r.IDs, len(ids), len(truth))
			}
			p := point{Ef: r.Ef, Threads: r.Threads, Recall: recall(ids, truth), QPS: float64(len(truth)) / r.Seconds}
			lib.Points = append(lib.Points, p)
			log.Printf("%s: ef %d threads %d: recall %.4f, %.0f queries/s", name, p.Ef, p.Threads, p.Recall, p.QPS)
		}
		libs = append(libs, lib)
	}
	return libs, nil
}

// render prints the measured points and the comparison at matched recall
// as markdown, and fills rep.Matched.
func render(rep *report, recalls []float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## %s: %d base, %d queries, dim %d, %s, k=%d, M=%d, efConstruction=%d\n\n",
		rep.Dataset, rep.Base, rep.Queries, rep.Dim, rep.Metric, rep.K, rep.M, rep.EfC)
	if rep.Note != "" {
		b.WriteString(rep.Note + ".\n\n")
	}
	fmt.Fprintf(&b, "CPU: %s, %d cores used for the parallel rows and for building. %s.\n\n", rep.CPU, rep.Threads, rep.GoVersion)

	header := []string{"library", "build s", "ef", "recall@" + strconv.Itoa(rep.K), "queries/s 1 thread", fmt.Sprintf("recall (%d threads)", rep.Threads), fmt.Sprintf("queries/s %d threads", rep.Threads)}
	var rows [][]string
	for _, l := range rep.Libraries {
		for i, p := range l.Points {
			if p.Threads != 1 {
				continue
			}
			build := ""
			if i == 0 {
				build = fmt.Sprintf("%.1f", l.BuildS)
			}
			rt, qt := "—", "—"
			for _, q := range l.Points {
				if q.Threads == rep.Threads && q.Ef == p.Ef && rep.Threads != 1 {
					rt, qt = fmt.Sprintf("%.4f", q.Recall), fmtQPS(q.QPS, true)
				}
			}
			rows = append(rows, []string{l.Name, build, strconv.Itoa(p.Ef), fmt.Sprintf("%.4f", p.Recall), fmtQPS(p.QPS, true), rt, qt})
		}
	}
	b.WriteString(mdTable(header, rows))

	ths := []int{1}
	if rep.Threads != 1 {
		ths = append(ths, rep.Threads)
	}
	rep.Matched = nil
	for _, th := range ths {
		fmt.Fprintf(&b, "\n### queries/s at matched recall@%d, %d thread(s) (linear interpolation; — outside the measured range)\n\n", rep.K, th)
		header := []string{"recall"}
		for _, l := range rep.Libraries {
			header = append(header, l.Name)
		}
		hasHnswlib := false
		for _, l := range rep.Libraries {
			if l.Name == "hnswlib" {
				hasHnswlib = true
			}
		}
		if hasHnswlib {
			header = append(header, "tandem / hnswlib")
		}
		var rows [][]string
		for _, r := range recalls {
			mt := matched{Recall: r, Threads: th, QPS: map[string]float64{}}
			row := []string{fmt.Sprintf("%.3f", r)}
			var ours, theirs float64
			for _, l := range rep.Libraries {
				var pts []point
				for _, p := range l.Points {
					if p.Threads == th {
						pts = append(pts, p)
					}
				}
				q, ok := qpsAt(pts, r)
				row = append(row, fmtQPS(q, ok))
				if ok {
					mt.QPS[l.Name] = q
					switch l.Name {
					case "tandem":
						ours = q
					case "hnswlib":
						theirs = q
					}
				}
			}
			if hasHnswlib {
				if ours > 0 && theirs > 0 {
					row = append(row, fmt.Sprintf("%.2f×", ours/theirs))
				} else {
					row = append(row, "—")
				}
			}
			rows = append(rows, row)
			rep.Matched = append(rep.Matched, mt)
		}
		b.WriteString(mdTable(header, rows))
	}
	return b.String()
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 || v > 1 {
			return nil, fmt.Errorf("%q is not a recall in (0, 1]", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// cpuName returns the processor's model name from /proc/cpuinfo.
func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if i := strings.IndexByte(line, ':'); i >= 0 {
				return strings.TrimSpace(line[i+1:])
			}
		}
	}
	return runtime.GOARCH
}
