// Package progress draws a one-line progress bar with rate and ETA.
//
// # Use
//
// A Bar is made for a known total and updated with Set from any goroutine;
// it redraws at most every Interval, in place on a terminal and as plain
// lines elsewhere (logs, CI), and prints a final line on Done.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar is a progress bar. Its methods are safe for concurrent use.
type Bar struct {
	label string
	total int64
	unit  string
	out   io.Writer
	tty   bool
	// Interval between redraws (default 200 ms on a terminal, 5 s else).
	Interval time.Duration

	mu struct {
		sync.Mutex
		start time.Time
		last  time.Time
		done  int64
		extra string
	}
}

// New returns a bar drawing to out; unit names what is counted.
func New(out io.Writer, label string, total int64, unit string) *Bar {
	b := &Bar{label: label, total: total, unit: unit, out: out}
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	b.Interval = 5 * time.Second
	if b.tty {
		b.Interval = 200 * time.Millisecond
	}
	b.mu.start = time.Now()
	return b
}

// Set records done units and an optional note (e.g. a running loss).
func (b *Bar) Set(done int64, note string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.done, b.mu.extra = done, note
	if now := time.Now(); now.Sub(b.mu.last) >= b.Interval {
		b.mu.last = now
		b.drawLocked(false)
	}
}

// Done draws the final state and ends the line.
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drawLocked(true)
}

func (b *Bar) drawLocked(final bool) {
	el := time.Since(b.mu.start)
	frac := 0.0
	if b.total > 0 {
		frac = min(1, float64(b.mu.done)/float64(b.total))
	}
	const width = 24
	fill := int(frac * width)
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	eta := "?"
	if frac > 0 && !final {
		eta = (time.Duration(float64(el) * (1 - frac) / frac)).Round(time.Second).String()
	}
	line := fmt.Sprintf("%s [%s] %3.0f%% %d/%d %s  %s elapsed  ETA %s", b.label, bar, 100*frac,
		b.mu.done, b.total, b.unit, el.Round(100*time.Millisecond), eta)
	if final {
		line = fmt.Sprintf("%s [%s] %3.0f%% %d/%d %s in %s", b.label, bar, 100*frac, b.mu.done, b.total, b.unit,
			el.Round(100*time.Millisecond))
	}
	if b.mu.extra != "" {
		line += "  " + b.mu.extra
	}
	switch {
	case b.tty && final:
		fmt.Fprintf(b.out, "\r%s\033[K\n", line)
	case b.tty:
		fmt.Fprintf(b.out, "\r%s\033[K", line)
	default:
		fmt.Fprintln(b.out, line)
	}
}
