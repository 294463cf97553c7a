// Command bf16 measures what bf16 storage of the big matmul blocks changes
// in a trained model version, on the test days of its data: per L2 surface
// the p99 and maximum |Δlogit| over trained tasks and the log loss of the
// calibrated probabilities in fp32 and bf16; per L1 route the p99 |Δz| of
// z_t = ⟨u_t, a_t⟩ + β_t on test impressions; and the packed weights'
// memory in both precisions (SYSTEM.md §2: p99 |Δlogit| ≤ 0.05, log-loss
// change ≤ 0.1%).
//
//	go run ./benchmarks/bf16 -data DIR -model MODELDIR
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"path/filepath"
	"slices"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/eval"
	"github.com/tandemml/tandem/train"
)

func main() {
	dataDir := flag.String("data", "", "data directory (required)")
	modelDir := flag.String("model", "", "model directory; its CURRENT version is measured (required)")
	flag.Parse()
	log.SetFlags(0)
	if *dataDir == "" || *modelDir == "" {
		log.Fatal("bf16: -data and -model are required")
	}
	v, err := eval.OpenVersion(*modelDir)
	if err != nil {
		log.Fatal(err)
	}
	d, err := v.OpenData(*dataDir)
	if err != nil {
		log.Fatal(err)
	}
	test := d.RequestsIn(batch.Test)
	trains := batch.TrainsMatrix(d.Cfg)
	fmt.Printf("version %s, %d test requests\n\n", filepath.Base(v.Dir), len(test))
	fmt.Println("| model | rows | p99 |Δlogit| | max |Δlogit| | log loss fp32 | log loss bf16 | change | weights fp32 | weights bf16 |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	w := engine.NewWorker()
	for _, s := range eval.Names(v.Manifest.L2) {
		si := d.Cfg.SurfaceIndex(s)
		path := filepath.Join(v.Dir, v.Manifest.L2[s].Files[0])
		m32, err := engine.LoadL2(path, engine.Options{})
		if err != nil {
			log.Fatal(err)
		}
		m16, err := engine.LoadL2(path, engine.Options{BF16: true})
		if err != nil {
			log.Fatal(err)
		}
		rows := train.ImpressionRows(d, test, []int{si})
		nt := len(m32.Tasks)
		var diffs []float64
		var ll32, ll16 float64
		var n int
		var b engine.Batch
		for lo := 0; lo < len(rows); lo += 4096 {
			part := rows[lo:min(lo+4096, len(rows))]
			d.EngineBatch(&b, part, false)
			z32, p32 := make([]float32, b.N*nt), make([]float32, b.N*nt)
			z16, p16 := make([]float32, b.N*nt), make([]float32, b.N*nt)
			if err := m32.Run(w, &b, z32, p32); err != nil {
				log.Fatal(err)
			}
			if err := m16.Run(w, &b, z16, p16); err != nil {
				log.Fatal(err)
			}
			for r, row := range part {
				for t := 0; t < nt; t++ {
					if !trains[si][t] {
						continue
					}
					i := r*nt + t
					diffs = append(diffs, math.Abs(float64(z16[i]-z32[i])))
					y := float64(row.Labels[t])
					ll32 += logLoss(p32[i], y)
					ll16 += logLoss(p16[i], y)
					n++
				}
			}
		}
		slices.Sort(diffs)
		fmt.Printf("| L2 %s | %d | %.4f | %.4f | %.5f | %.5f | %+.4f%% | %s | %s |\n", s, len(rows), diffs[len(diffs)*99/100], diffs[len(diffs)-1],
			ll32/float64(n), ll16/float64(n), 100*(ll16-ll32)/ll32, mib(m32.WeightBytes()), mib(m16.WeightBytes()))
	}
	for _, r := range eval.Names(v.Manifest.L1) {
		f := v.Manifest.L1[r].Files
		up, ap := filepath.Join(v.Dir, f[0]), filepath.Join(v.Dir, f[1])
		var us [2]*engine.L1User
		var as [2]*engine.L1Ad
		for i, b16 := range []bool{false, true} {
			if us[i], err = engine.LoadL1User(up, engine.Options{BF16: b16}); err != nil {
				log.Fatal(err)
			}
			if as[i], err = engine.LoadL1Ad(ap, engine.Options{BF16: b16}); err != nil {
				log.Fatal(err)
			}
		}
		rows := train.ImpressionRows(d, test, []int{0, 1, 2})
		rows = rows[:min(len(rows), 20000)]
		var ub, ab engine.Batch
		d.EngineBatch(&ub, rows, true)
		d.EngineBatch(&ab, rows, false)
		u0, nt, od := us[0], len(us[0].Tasks), us[0].OutDim
		var z [2][]float64
		for i := range 2 {
			uo := make([]float32, ub.U*nt*od)
			ao := make([]float32, ab.N*nt*od)
			if err := us[i].Run(w, &ub, uo); err != nil {
				log.Fatal(err)
			}
			if err := as[i].Run(w, &ab, ao); err != nil {
				log.Fatal(err)
			}
			for k := range ab.N {
				c := int(ub.Ctx[k])
				for t := 0; t < nt; t++ {
					if !u0.HasTask(t) {
						continue
					}
					var dot float64
					for j := 0; j < od; j++ {
						dot += float64(uo[(c*nt+t)*od+j]) * float64(ao[(k*nt+t)*od+j])
					}
					z[i] = append(z[i], dot+float64(u0.Beta(t)))
				}
			}
		}
		diffs := make([]float64, len(z[0]))
		for i := range diffs {
			diffs[i] = math.Abs(z[1][i] - z[0][i])
		}
		slices.Sort(diffs)
		fmt.Printf("| L1 %s | %d | %.4f | %.4f | – | – | – | %s | %s |\n", r, len(rows), diffs[len(diffs)*99/100], diffs[len(diffs)-1],
			mib(us[0].WeightBytes()+as[0].WeightBytes()), mib(us[1].WeightBytes()+as[1].WeightBytes()))
	}
}

func logLoss(p float32, y float64) float64 {
	q := min(max(float64(p), 1e-7), 1-1e-7)
	return -(y*math.Log(q) + (1-y)*math.Log(1-q))
}

func mib(n int) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
