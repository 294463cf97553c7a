//go:build slow

package eval

import (
	"context"
	"testing"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/sim"
)

// TestDemoDifficultyOnDrawnLabels checks the default difficulty at demo
// scale with log losses over the drawn labels, as the report prints them.
// Run with: go test -tags slow -run Demo ./eval
func TestDemoDifficultyOnDrawnLabels(t *testing.T) {
	dir := t.TempDir()
	if _, err := sim.Generate(context.Background(), config.Default(), sim.Options{Dir: dir, Scale: "demo", Seed: 1}); err != nil {
		t.Fatal(err)
	}
	rep, err := Oracle(dir, OracleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Slices {
		if s.Task != "click" || s.ViewType != AllViewTypes {
			continue
		}
		if s.NEBayes > 0.85 {
			t.Errorf("%s click: NE_bayes %.3f > 0.85", s.Surface, s.NEBayes)
		}
		for _, c := range sim.ComponentNames {
			rise := s.Ablated[c]/s.BayesLogLoss - 1
			if c == "context" && s.Surface == "home_feed" {
				continue
			}
			want := 0.01
			if c == "short_term" {
				want = 0.02
			}
			if rise < want {
				t.Errorf("%s click: ablating %s raises the log loss by %.2f%%, want ≥ %.0f%%", s.Surface, c, 100*rise, 100*want)
			}
		}
	}
}
