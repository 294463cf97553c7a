package main

import (
	"strings"
	"testing"
)

// TestTrainRejectsBadInput: bad flags and data fail fast with a message
// naming the problem.
func TestTrainRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"train"}, 2, "need -data DIR and -out MODELDIR"},
		{[]string{"train", "-data", dir + "/missing", "-out", dir + "/m"}, 1, "manifest.json"},
		{[]string{"train", "-data", dir, "-out", dir + "/m", "-model", "l3"}, 1, ""},
		{[]string{"train", "-data", dir, "-out", dir + "/m", "-baselines", "magic"}, 1, ""},
		{[]string{"eval", "-data", dir}, 2, "need -data DIR and -oracle or -model MODELDIR"},
		{[]string{"eval", "-data", dir, "-model", dir + "/nothing"}, 1, "CURRENT"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.want)
		}
	}
}
