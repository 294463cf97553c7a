package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseInts(t *testing.T) {
	for in, want := range map[string][]int{"1,4": {1, 4}, " 4 , 1,4 ": {4, 1}, "8": {8}, "": nil} {
		if got, err := parseInts(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "-1", "x", "1,,y"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func TestThreadsPer(t *testing.T) {
	for _, c := range [][4]int{{0, 2, 2, 1}, {0, 16, 4, 4}, {0, 2, 4, 1}, {3, 2, 2, 3}} {
		if got := threadsPer(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("threadsPer(%d, %d, %d) = %d, want %d", c[0], c[1], c[2], got, c[3])
		}
	}
}

// TestRunPool: never more than parallel jobs at once, every job runs, and
// a failure is returned after the others finish.
func TestRunPool(t *testing.T) {
	jobs := make([]*job, 9)
	for i := range jobs {
		jobs[i] = &job{}
	}
	var now, peak, done atomic.Int32
	boom := errors.New("boom")
	err := runPool(3, jobs, func(j *job) error {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		now.Add(-1)
		done.Add(1)
		if j == jobs[4] {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || done.Load() != 9 || peak.Load() > 3 || peak.Load() < 2 {
		t.Fatalf("err %v, %d done, peak %d", err, done.Load(), peak.Load())
	}
}

func TestPrintTable(t *testing.T) {
	r := &Result{Date: "2026-12-08T00:00:00Z", CPUs: 2, Data: "D", Variants: []Variant{
		{Name: "one process", Phases: []Phase{{Name: "refresh", Processes: 1, Threads: 2, Seconds: 10}}, Seconds: 10, Ads: 5, Recall10: 0.99},
		{Name: "8 parts, S=4", Phases: []Phase{{Name: "embed", Processes: 8, Parallel: 2, Threads: 1, Seconds: 3}, {Name: "build", Processes: 4, Parallel: 2, Threads: 1, Seconds: 4}}, Seconds: 7},
	}}
	var b bytes.Buffer
	printTable(&b, r)
	for _, want := range []string{"8 (2 at a time)", "10.0", "one process: 5 ads, recall@10 0.9900", "total"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
}
