package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Arrivals returns the send offsets of a Poisson process of the given rate
// (per second) from 0: exponential gaps with mean 1/rate, drawn from a PCG
// seeded with seed, up to (not including) dur and at most max of them
// (max ≤ 0: no cap). The same arguments give the same offsets.
func Arrivals(rate float64, dur time.Duration, max int, seed uint64) []time.Duration {
	if rate <= 0 || dur <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c6f6164))
	want := int(math.Ceil(rate * dur.Seconds()))
	if max > 0 && want > max {
		want = max
	}
	out := make([]time.Duration, 0, want)
	t := 0.0 // seconds
	for max <= 0 || len(out) < max {
		t += rng.ExpFloat64() / rate
		d := time.Duration(t * float64(time.Second))
		if d >= dur {
			break
		}
		out = append(out, d)
	}
	return out
}

// Percentiles returns the nearest-rank percentile of lat for each p in ps
// (0 < p ≤ 1): the smallest latency that at least ⌈p·n⌉ of the n latencies
// do not exceed. lat is sorted in place. An empty lat gives zeros.
func Percentiles(lat []time.Duration, ps []float64) []time.Duration {
	out := make([]time.Duration, len(ps))
	if len(lat) == 0 {
		return out
	}
	slices.Sort(lat)
	n := len(lat)
	for i, p := range ps {
		// ⌈p·n⌉ computed with a small tolerance so that 0.999·1000 is 999,
		// not 1000 by floating-point rounding.
		r := int(math.Ceil(p*float64(n) - 1e-9))
		r = min(max(r, 1), n)
		out[i] = lat[r-1]
	}
	return out
}

// MaxRateWithin returns the highest rate of a sweep (steps in increasing
// rate order) such that it and every lower rate passed; 0 when the lowest
// rate failed. A pass that follows a failure does not count: a sweep that
// fails at 1,000 req/s and passes at 1,500 is noisy, not good to 1,500.
func MaxRateWithin(steps []Step) float64 {
	best := 0.0
	for _, s := range steps {
		if !s.Pass {
			break
		}
		best = s.Rate
	}
	return best
}

// pinProcess restricts every thread of this process to cpu and sets
// GOMAXPROCS to 1. Threads started later inherit the mask of the thread that
// creates them, so the whole generator stays on the one core. The calling
// goroutine holds its OS thread while the masks are set (so that its own
// thread, tid 0 in sched_setaffinity, is one of those listed); it is then
// released, since a goroutine locked to a thread makes the runtime hand the
// single P between threads on every block, which costs more than it saves.
func pinProcess(cpu int) error {
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity(self, cpu %d): %w", cpu, err)
	}
	tids, err := threads()
	if err != nil {
		return err
	}
	for _, tid := range tids {
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("sched_setaffinity(thread %d, cpu %d): %w", tid, cpu, err)
		}
	}
	return nil
}

// affinity returns the CPUs every thread of this process may run on (the
// union), to check pinProcess.
func affinity() ([]int, error) {
	tids, err := threads()
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	for _, tid := range tids {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			if err == unix.ESRCH {
				continue
			}
			return nil, err
		}
		for c := 0; c < 1024; c++ {
			if set.IsSet(c) {
				seen[c] = true
			}
		}
	}
	var cpus []int
	for c := range seen {
		cpus = append(cpus, c)
	}
	slices.Sort(cpus)
	return cpus, nil
}

func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// cpuSelf is this process's user + system CPU time (getrusage).
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOf is process pid's user + system CPU time from /proc/PID/stat (0 when
// it cannot be read).
func cpuOf(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after its closing
	// parenthesis start at field 3. utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}
