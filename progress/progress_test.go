package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestBarPlainLines(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "simulate", 10, "users")
	b.Interval = 0
	b.Set(5, "loss 0.5")
	b.Done()
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out)
	}
	if !strings.Contains(lines[0], " 50% 5/10 users") || !strings.Contains(lines[0], "loss 0.5") || !strings.Contains(lines[0], "ETA") {
		t.Errorf("progress line = %q", lines[0])
	}
	if !strings.Contains(lines[1], "5/10 users in") {
		t.Errorf("final line = %q", lines[1])
	}
	if strings.Contains(out, "\r") {
		t.Error("carriage return written to a non-terminal")
	}
}
