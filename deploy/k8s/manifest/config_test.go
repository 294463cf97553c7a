package manifest

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestValidateNamesTheField breaks one field at a time and checks that
// Validate's error names it.
func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"Shards", func(c *Config) { c.Shards = 0 }},
		{"Replicas", func(c *Config) { c.Replicas = 0 }},
		{"Image", func(c *Config) { c.Image = "" }},
		{"OrchestratorImage", func(c *Config) { c.OrchestratorImage = "" }},
		{"Namespace", func(c *Config) { c.Namespace = "Not_A_Name" }},
		{"Namespace", func(c *Config) { c.Namespace = "" }},
		{"RootMinReplicas", func(c *Config) { c.RootMinReplicas = 0 }},
		{"RootMaxReplicas", func(c *Config) { c.RootMaxReplicas = 1 }},
		{"ShardPort", func(c *Config) { c.ShardPort = 70000 }},
		{"MetricsPort", func(c *Config) { c.MetricsPort = c.RootPort }},
		{"Parts", func(c *Config) { c.Parts = -1 }},
		{"Parallelism", func(c *Config) { c.Parallelism = -1 }},
		{"Store", func(c *Config) { c.Store = "" }},
		{"Schedule", func(c *Config) { c.Schedule = "" }},
		{"SnapshotsClaim", func(c *Config) { c.SnapshotsClaim = "" }},
		{"DataClaim", func(c *Config) { c.DataClaim = "UPPER" }},
		{"ShardResources.Memory", func(c *Config) { c.ShardResources.Memory = "lots" }},
		{"RootResources.CPU", func(c *Config) { c.RootResources.CPU = "" }},
	}
	for _, tc := range cases {
		c := Default()
		tc.edit(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: no error", tc.field)
			continue
		}
		if !hasFieldError(err, tc.field) {
			t.Errorf("%s: error does not name it: %v", tc.field, err)
		}
		if _, rerr := Render(c); rerr == nil || !strings.Contains(rerr.Error(), tc.field) {
			t.Errorf("%s: Render error %v", tc.field, rerr)
		}
	}
}

func hasFieldError(err error, field string) bool {
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if errors.As(e, &fe) && fe.Field == field {
			return true
		}
	}
	return false
}

func TestValidateReportsEveryField(t *testing.T) {
	c := Default()
	c.Shards, c.Replicas, c.Image = 0, 0, ""
	err := c.Validate()
	for _, f := range []string{"Shards", "Replicas", "Image"} {
		if err == nil || !hasFieldError(err, f) {
			t.Errorf("error %v does not name %s", err, f)
		}
	}
}

func TestConfigJSONRoundTrip(t *testing.T) {
	c := Default()
	c.Shards, c.AllowPartial, c.StoreClaim = 7, true, "runs"
	b, err := ConfigJSON(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeConfig(b)
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := DecodeConfig([]byte(`{"shards": 2, "shardz": 3}`)); err == nil {
		t.Error("unknown field accepted")
	}
	partial, err := DecodeConfig([]byte(`{"shards": 2}`))
	if err != nil || partial.Shards != 2 || partial.Image != Default().Image {
		t.Errorf("partial config: %+v, %v", partial, err)
	}
}

func TestValidateVersion(t *testing.T) {
	for _, v := range []string{"20261208T010203Z", "v1", "a-b"} {
		if err := ValidateVersion(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	for _, v := range []string{"", "-a", "a_b", "a/b", "a.b", strings.Repeat("x", 41)} {
		if err := ValidateVersion(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestStoreURL(t *testing.T) {
	const v = "20261208T010203Z"
	cases := map[string]string{
		"s3://b?region=r&prefix=runs/": "s3://b?region=r&prefix=runs/" + v + "/",
		"s3://b?prefix=runs&region=r":  "s3://b?prefix=runs/" + v + "/&region=r",
		"s3://b?region=r":              "s3://b?region=r&prefix=" + v + "/",
		"s3://b":                       "s3://b?prefix=" + v + "/",
		"s3://b?prefix=a%20b/":         "s3://b?prefix=a+b%2F" + v + "%2F",
		"/store/runs":                  "/store/runs/" + v,
		"file:///store/runs/":          "file:///store/runs/" + v,
		"s3://b?endpoint=http://h:9000&use_path_style=1": "s3://b?endpoint=http://h:9000&use_path_style=1&prefix=" + v + "/",
	}
	for base, want := range cases {
		if got := StoreURL(base, v); got != want {
			t.Errorf("StoreURL(%q) = %q, want %q", base, got, want)
		}
	}
}

func TestJobNamesAreValid(t *testing.T) {
	js, err := RefreshJobs(Default(), "20261208T010203Z")
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range js {
		if j.Name != JobName(Steps()[i], "20261208T010203Z") || strings.ToLower(j.Name) != j.Name {
			t.Errorf("Job %d named %s", i, j.Name)
		}
	}
	if _, err := RefreshJobs(Default(), "bad/version"); err == nil {
		t.Error("bad version accepted")
	}
}

func TestWriteYAMLNeedsTypeMeta(t *testing.T) {
	var b strings.Builder
	if err := WriteYAML(&b, []Object{&corev1.ConfigMap{}}); err == nil {
		t.Error("object without apiVersion and kind written")
	}
	if err := WriteYAML(&b, []Object{namespace(Default())}); err != nil || strings.Contains(b.String(), "status") {
		t.Errorf("namespace: %v\n%s", err, b.String())
	}
}
