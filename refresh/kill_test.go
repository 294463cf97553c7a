//go:build !race

package refresh

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemml/tandem/snapshot"
)

// Where the child refresh is killed, as fractions of a whole run.
var killPoints = []float64{0.05, 0.3, 0.6, 0.85, 0.97}

// TestKilledRefreshLeavesLiveVersion kills a refresh child process with
// SIGKILL at several points of its run: the live version stays live and
// verifiable every time, and the next run completes and removes the
// leftovers. Outside -race (scripts/test.sh runs it in its no-race step):
// the race detector adds nothing to a test of processes and files, and
// slows every child run tenfold.
func TestKilledRefreshLeavesLiveVersion(t *testing.T) {
	db := t.TempDir()
	// Version names sort in creation order, as the job's timestamps do.
	live := "v01"
	if _, err := Run(context.Background(), Options{Data: dataDir, ModelDir: modelDir, DBDir: db, Version: live, Threads: 2, CheckQueries: 50}); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := func(v string) *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+strings.Join([]string{dataDir, modelDir, db, v}, "|"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// How long a whole child run takes, to spread the kills over it.
	t0 := time.Now()
	if err := start("v02").Wait(); err != nil {
		t.Fatalf("child refresh: %v", err)
	}
	whole := time.Since(t0)
	live = "v02"
	for i, frac := range killPoints {
		v := fmt.Sprintf("v%02d", i+3)
		cmd := start(v)
		time.Sleep(time.Duration(frac * float64(whole)))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cur, err := snapshot.Current(db)
		if err != nil {
			t.Fatal(err)
		}
		if cur != live && cur != v {
			t.Fatalf("kill at %.0f%%: CURRENT is %q, want %s (or %s had it finished)", 100*frac, cur, live, v)
		}
		s, err := snapshot.Open(db, cur)
		if err != nil {
			t.Fatalf("kill at %.0f%%: the live version %s does not verify: %v", 100*frac, cur, err)
		}
		s.Close()
		live = cur
	}
	rep, err := Run(context.Background(), Options{Data: dataDir, ModelDir: modelDir, DBDir: db, Version: "v99", Threads: 2, CheckQueries: 50})
	if err != nil {
		t.Fatalf("the run after the kills: %v", err)
	}
	if cur, _ := snapshot.Current(db); cur != "v99" {
		t.Fatalf("CURRENT is %q", cur)
	}
	vs, _ := snapshot.List(db)
	if len(vs) != 2 || vs[0].Version != live {
		t.Fatalf("after GC: %+v (removed %v), want %s and v99", vs, rep.Removed, live)
	}
}
