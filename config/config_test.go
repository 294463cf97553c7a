package config

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Sequence.Length != 32 || c.Sequence.ShortTerm != 8 {
		t.Errorf("sequence = %+v, want length 32, short_term 8", c.Sequence)
	}
	if r, err := c.RouteFor("search", "shopping"); err != nil || r != "all" {
		t.Errorf("RouteFor = %q, %v; want all", r, err)
	}
}

func TestSchemaHashStableAndSensitive(t *testing.T) {
	a, b := Default(), Default()
	if a.SchemaHash() != b.SchemaHash() {
		t.Fatal("hash differs between two loads of the same file")
	}
	b.Sim.Weights["click"] = Weights{LongTerm: 3}
	if a.SchemaHash() != b.SchemaHash() {
		t.Error("sim difficulty changed the schema hash")
	}
	b.Features.User[0].Vocab = append(b.Features.User[0].Vocab, "xx")
	if a.SchemaHash() == b.SchemaHash() {
		t.Error("a vocab change left the schema hash unchanged")
	}
}

// TestValidateReportsEveryProblem breaks several fields at once and wants
// each named in one error.
func TestValidateReportsEveryProblem(t *testing.T) {
	src := string(DefaultYAML())
	for _, r := range []struct{ old, new string }{
		{"version: 1", "version: 7"},
		{"traffic: 0.20", "traffic: 0.25"},
		{"{name: list, share: 0.2, slots: 3}", "{name: list, share: 0.3, slots: 0}"},
		{"length: 32", "length: 0"},
		{"{name: pretrained_emb, kind: embedding, dim: 32}", "{name: pretrained_emb, kind: dense, dim: 32}"},
		{"{name: bid, kind: dense}", "{name: bogus, kind: dense}"},
		{`start_date: "2026-03-02"`, `start_date: "March"`},
		{"context: query", "context: nearby"},
		{"{surface: \"*\", product: \"*\", route: all}", "{surface: search, product: \"*\", route: all}"},
	} {
		if !strings.Contains(src, r.old) {
			t.Fatalf("default.yaml no longer contains %q; update the test", r.old)
		}
		src = strings.Replace(src, r.old, r.new, 1)
	}
	_, err := Parse([]byte(src))
	if err == nil {
		t.Fatal("broken config accepted")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error does not wrap ErrInvalid: %v", err)
	}
	for _, want := range []string{
		"version:", "surfaces: traffic shares sum to 1.05",
		"surfaces[0].view_types[1].slots", "surfaces[0].view_types: shares sum to 1.1",
		"sequence.length", "sequence.short_term", "features.user[5].kind", "features.ad[4].name",
		"split.start_date", "surfaces[1].context", `no rule matches surface "home_feed" product "standard"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error misses %q:\n%v", want, err)
		}
	}
}

func TestParseRejectsUnknownKey(t *testing.T) {
	src := strings.Replace(string(DefaultYAML()), "sequence:\n", "sequence:\n  lenght: 3\n", 1)
	_, err := Parse([]byte(src))
	if err == nil || !strings.Contains(err.Error(), "lenght") {
		t.Fatalf("unknown key: err = %v, want it named", err)
	}
}

func TestParseRejectsNonYAML(t *testing.T) {
	if _, err := Parse([]byte("{[")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestScaleNamed(t *testing.T) {
	c := Default()
	s, sp, err := c.ScaleNamed("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if s.Users <= 0 || sp.TrainDays != 4 || sp.TestDays != c.Split.TestDays {
		t.Errorf("tiny = %+v, split %+v", s, sp)
	}
	if _, _, err := c.ScaleNamed("huge"); err == nil {
		t.Error("unknown scale accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("version: 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil && c.Validate() != nil {
			t.Fatal("Parse accepted a config Validate rejects")
		}
	})
}

func TestValidateModelAndTrain(t *testing.T) {
	src := string(DefaultYAML())
	for _, r := range []struct{ old, new string }{
		{"    heads: 2\n", "    heads: 3\n"},
		{"    arch: mmoe_dcn       # mmoe_dcn | mlp | logistic", "    arch: transformer"},
		{"    calibration: slice", "    calibration: isotonic"},
		{"    ad_arch: mmoe_dcn", "    ad_arch: logistic"},
		{"  optimizer: adam", "  optimizer: sgd"},
		{"  seq_drop_prob: 0.5", "  seq_drop_prob: 1.5"},
		{"  batch: 256", "  batch: 8"},
		{"  max_steps: 0", "  max_steps: -1"},
		{"  bn_clamp: 5", "  bn_clamp: 0"},
	} {
		if !strings.Contains(src, r.old) {
			t.Fatalf("default.yaml no longer contains %q; update the test", r.old)
		}
		src = strings.Replace(src, r.old, r.new, 1)
	}
	_, err := Parse([]byte(src))
	if err == nil {
		t.Fatal("broken model config accepted")
	}
	for _, want := range []string{"model.seq.heads", "model.l2.arch", "model.l2.calibration", "model.l1.ad_arch",
		"train.optimizer", "train.seq_drop_prob", "train.batch", "train.max_steps", "model.bn_clamp"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error misses %q:\n%v", want, err)
		}
	}
}
