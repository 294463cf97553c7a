package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRefreshAndIndexRejectBadInput: missing flags are usage errors, a
// missing directory an error naming it; nothing panics.
func TestRefreshAndIndexRejectBadInput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"refresh"}, 2, "-data, -model and -db are required"},
		{[]string{"refresh", "-data", missing, "-model", missing, "-db", t.TempDir()}, 1, "missing"},
		{[]string{"index"}, 2, "usage: tandem index ls|rollback"},
		{[]string{"index", "drop", "-db", missing}, 2, "usage: tandem index ls|rollback"},
		{[]string{"index", "ls"}, 2, "-db is required"},
		{[]string{"index", "ls", "-db", missing}, 1, "missing"},
		{[]string{"index", "rollback", "-db", t.TempDir()}, 1, "no version before the live one"},
	} {
		code, out, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(out+stderr, c.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", c.args, code, c.code, c.want, out, stderr)
		}
	}
}
