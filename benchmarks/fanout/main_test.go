package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p := pct(ds, 0.5); p != 50 {
		t.Errorf("p50 %v, want 50", p)
	}
	if p := pct(ds, 0.99); p != 99 {
		t.Errorf("p99 %v, want 99", p)
	}
	if p := pct(ds, 1); p != 100 {
		t.Errorf("p100 %v, want 100", p)
	}
	if m := mean(ds); m != 50.5 {
		t.Errorf("mean %v, want 50.5", m)
	}
	if pct(nil, 0.5) != 0 || mean(nil) != 0 {
		t.Error("empty input")
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("pct sorted its input in place")
	}
}

func TestListeningLine(t *testing.T) {
	line := `time=2026-12-08T00:00:00Z level=INFO msg=listening grpc=127.0.0.1:4321 metrics=127.0.0.1:9999`
	m := listening.FindStringSubmatch(line)
	if m == nil || m[1] != "127.0.0.1:4321" || m[2] != "127.0.0.1:9999" {
		t.Fatalf("parsed %q", m)
	}
	if m := listening.FindStringSubmatch(strings.Replace(line, " metrics=127.0.0.1:9999", " metrics=\"\"", 1)); m == nil || m[1] != "127.0.0.1:4321" {
		t.Fatalf("without metrics: %q", m)
	}
}

func TestRunNeedsItsDirectories(t *testing.T) {
	var out, errb strings.Builder
	if err := run([]string{"-data", "x"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "-data, -model and -db are required") {
		t.Fatalf("err = %v", err)
	}
}
