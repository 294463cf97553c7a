package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemml/tandem/internal/fixture"
)

// syncBuffer is a bytes.Buffer safe for the server's log goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeDeviceAutoFallsBack: on a host without a usable GPU (here the
// driver library is pointed at a missing file), `serve --device auto`
// logs one line saying why and serves from the CPU engine, and
// `--device gpu` refuses to start with the same reason.
func TestServeDeviceAutoFallsBack(t *testing.T) {
	w, err := fixture.Build(context.Background(), t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TANDEM_LIBCUDA", "/nonexistent/libcuda.so.1")
	var logb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{"-model", w.Models, "-db", w.DB, "-addr", "127.0.0.1:0", "-poll", "0", "-device", "auto"}, &logb, &logb)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(logb.String(), "msg=serving") {
		if time.Now().After(deadline) {
			t.Fatalf("no serving line in 60 s:\n%s", logb.String())
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, logb.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	out := logb.String()
	if n := strings.Count(out, "falling back to the CPU engine"); n != 1 || !strings.Contains(out, "/nonexistent/libcuda.so.1") {
		t.Errorf("want one fallback line naming the path tried, got:\n%s", out)
	}
	var eb syncBuffer
	err = runServe(context.Background(), []string{"-model", w.Models, "-db", w.DB, "-addr", "127.0.0.1:0", "-device", "gpu"}, &eb, &eb)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/libcuda.so.1") {
		t.Errorf("--device gpu without a GPU: err = %v", err)
	}
}
