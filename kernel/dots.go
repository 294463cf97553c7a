package kernel

import (
	"fmt"
	"math"
)

// Dots scores one query against many rows: out[i] = <q, rows[i*d:(i+1)*d]>
// for every i < len(out). q has at least d entries (the first d are used)
// and rows at least len(out)·d; Dots panics otherwise, or when d < 0.
// d = 0 gives zeros.
//
// The sum runs in eight float32 lanes, column j into lane j mod 8, and the
// lanes are added pairwise at the end; see the package documentation. On
// amd64 with AVX2 and FMA, rows of width d ≥ 8 are scored four at a time by
// an assembly loop; when d is not a multiple of 8, the last columns are
// handled by re-reading the row's last 8 columns with those already summed
// masked to zero, so no byte past a row is ever read. Each row goes
// through the same instructions whatever len(out) and its position, so its
// score is bit-identical in any batch.
func Dots(out []float32, q []float32, rows []float32, d int) {
	checkDots("Dots", len(out), len(q), len(rows), d)
	if len(out) == 0 {
		return
	}
	if d == 0 {
		clear(out)
		return
	}
	dotsF32(out, q[:d:d], rows[:len(out)*d:len(out)*d], d)
}

// DotsBF16 is [Dots] with the rows stored as bfloat16 bit patterns: row
// value b stands for math.Float32frombits(uint32(b)<<16). The query stays
// float32 and the sums are float32 as in Dots; widening a bfloat16 is exact,
// so DotsBF16 gives the same bits as Dots on the widened rows.
func DotsBF16(out []float32, q []float32, rows []uint16, d int) {
	checkDots("DotsBF16", len(out), len(q), len(rows), d)
	if len(out) == 0 {
		return
	}
	if d == 0 {
		clear(out)
		return
	}
	dotsBF16(out, q[:d:d], rows[:len(out)*d:len(out)*d], d)
}

func checkDots(name string, nout, nq, nrows, d int) {
	if d < 0 || nq < d || (d > 0 && nrows/d < nout) {
		panic(fmt.Sprintf("kernel.%s: len(out)=%d len(q)=%d len(rows)=%d d=%d", name, nout, nq, nrows, d))
	}
}

// dotsF32Go is the pure-Go twin of the assembly: len(q) == d ≥ 1 and
// len(rows) == len(out)·d.
func dotsF32Go(out, q, rows []float32, d int) {
	for i := range out {
		out[i] = dotF32(q, rows[i*d:(i+1)*d:(i+1)*d])
	}
}

// dotsBF16Go is the pure-Go twin for bfloat16 rows.
func dotsBF16Go(out, q []float32, rows []uint16, d int) {
	for i := range out {
		out[i] = dotBF16(q, rows[i*d:(i+1)*d:(i+1)*d])
	}
}

// dotF32 is one row of dotsF32Go. It follows the assembly step by step:
// eight lane sums over the full blocks of 8 columns; for a tail of t
// columns when len(r) ≥ 8, the last 8 columns with the first 8−t products
// replaced by +0; then the pairwise lane sum. Each product is rounded
// before its add (the explicit conversions forbid fusing).
func dotF32(q, r []float32) float32 {
	d := len(r)
	q = q[:d]
	var a0, a1, a2, a3, a4, a5, a6, a7 float32
	j := 0
	for ; j+8 <= d; j += 8 {
		rr := r[j : j+8 : j+8]
		qq := q[j : j+8 : j+8]
		a0 += float32(rr[0] * qq[0])
		a1 += float32(rr[1] * qq[1])
		a2 += float32(rr[2] * qq[2])
		a3 += float32(rr[3] * qq[3])
		a4 += float32(rr[4] * qq[4])
		a5 += float32(rr[5] * qq[5])
		a6 += float32(rr[6] * qq[6])
		a7 += float32(rr[7] * qq[7])
	}
	if t := d - j; t > 0 {
		acc := [8]float32{a0, a1, a2, a3, a4, a5, a6, a7}
		if d >= 8 {
			rr := r[d-8 : d : d]
			qq := q[d-8 : d : d]
			for l := range acc {
				var p float32
				if l >= 8-t {
					p = float32(rr[l] * qq[l])
				}
				acc[l] += p
			}
		} else {
			for l := 0; l < t; l++ {
				acc[l] += float32(r[l] * q[l])
			}
		}
		a0, a1, a2, a3, a4, a5, a6, a7 = acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]
	}
	return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
}

// dotBF16 is dotF32 with the row widened from bfloat16.
func dotBF16(q []float32, r []uint16) float32 {
	d := len(r)
	q = q[:d]
	var a0, a1, a2, a3, a4, a5, a6, a7 float32
	j := 0
	for ; j+8 <= d; j += 8 {
		rr := r[j : j+8 : j+8]
		qq := q[j : j+8 : j+8]
		a0 += float32(widen(rr[0]) * qq[0])
		a1 += float32(widen(rr[1]) * qq[1])
		a2 += float32(widen(rr[2]) * qq[2])
		a3 += float32(widen(rr[3]) * qq[3])
		a4 += float32(widen(rr[4]) * qq[4])
		a5 += float32(widen(rr[5]) * qq[5])
		a6 += float32(widen(rr[6]) * qq[6])
		a7 += float32(widen(rr[7]) * qq[7])
	}
	if t := d - j; t > 0 {
		acc := [8]float32{a0, a1, a2, a3, a4, a5, a6, a7}
		if d >= 8 {
			rr := r[d-8 : d : d]
			qq := q[d-8 : d : d]
			for l := range acc {
				var p float32
				if l >= 8-t {
					p = float32(widen(rr[l]) * qq[l])
				}
				acc[l] += p
			}
		} else {
			for l := 0; l < t; l++ {
				acc[l] += float32(widen(r[l]) * q[l])
			}
		}
		a0, a1, a2, a3, a4, a5, a6, a7 = acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]
	}
	return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
}

func widen(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }
