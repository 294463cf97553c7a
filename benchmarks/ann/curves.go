package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// point is one measured operating point of a library.
type point struct {
	Ef      int     `json:"ef"`
	Threads int     `json:"threads"`
	Recall  float64 `json:"recall"`
	QPS     float64 `json:"qps"`
}

// qpsAt returns the queries/s of the curve at recall r by linear
// interpolation between the two measured points that bracket r, after
// sorting by recall and dropping points that a point of higher recall and
// higher speed dominates (the curve's upper envelope). ok is false when r
// lies outside the measured recalls.
func qpsAt(pts []point, r float64) (qps float64, ok bool) {
	env := envelope(pts)
	for i, p := range env {
		if p.Recall == r {
			return p.QPS, true
		}
		if i > 0 && env[i-1].Recall < r && r < p.Recall {
			a := env[i-1]
			t := (r - a.Recall) / (p.Recall - a.Recall)
			return a.QPS + t*(p.QPS-a.QPS), true
		}
	}
	return 0, false
}

// envelope sorts points by recall and keeps those that no other point
// beats on both recall and speed.
func envelope(pts []point) []point {
	s := slices.Clone(pts)
	slices.SortFunc(s, func(a, b point) int {
		if a.Recall != b.Recall {
			if a.Recall < b.Recall {
				return -1
			}
			return 1
		}
		if a.QPS > b.QPS {
			return -1
		}
		return 0
	})
	var out []point
	for i, p := range s {
		dominated := false
		for _, q := range s[i+1:] {
			if q.Recall >= p.Recall && q.QPS >= p.QPS {
				dominated = true
				break
			}
		}
		if !dominated {
			out = append(out, p)
		}
	}
	return out
}

// fmtQPS prints a rate with three significant digits.
func fmtQPS(q float64, ok bool) string {
	if !ok || math.IsNaN(q) {
		return "—"
	}
	switch {
	case q >= 100000:
		return fmt.Sprintf("%.0fk", q/1000)
	case q >= 10000:
		return fmt.Sprintf("%.1fk", q/1000)
	case q >= 1000:
		return fmt.Sprintf("%.2fk", q/1000)
	}
	return fmt.Sprintf("%.0f", q)
}

// mdTable renders a markdown table.
func mdTable(header []string, rows [][]string) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}
