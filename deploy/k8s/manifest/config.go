// Package manifest renders tandem's Kubernetes objects: the sharded
// serving tier (one StatefulSet and headless Service per shard, a
// stateless root behind a Service and an autoscaler) and the refresh
// pipeline (a CronJob that runs the orchestrator, its RBAC, and the four
// Jobs the orchestrator creates for each version).
//
// Everything is built from a Config as typed k8s.io/api objects, so the
// rendered YAML is checked by the Go compiler and by strict decoding in
// the tests rather than by templates.
package manifest

import (
	"errors"
	"fmt"
	"regexp"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Resources are a container's requests. Memory is also its limit (a
// serving process that outgrows its request is better restarted than
// left to push its node into swap or eviction); CPU has no limit.
type Resources struct {
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
}

// Config is everything the rendered objects depend on. Default gives a
// working configuration; Validate says which field is wrong.
type Config struct {
	// Namespace holds every object.
	Namespace string `json:"namespace"`
	// Image is the tandem image; its PATH has the tandem binary.
	Image string `json:"image"`
	// OrchestratorImage is the image whose PATH has tandem-k8s, which the
	// refresh CronJob runs.
	OrchestratorImage string `json:"orchestratorImage"`

	// Shards is the number of shards (S); each is a StatefulSet.
	Shards int `json:"shards"`
	// Replicas is the number of replicas per shard (R).
	Replicas int `json:"replicas"`
	// RootMinReplicas and RootMaxReplicas bound the root's autoscaler.
	RootMinReplicas int `json:"rootMinReplicas"`
	RootMaxReplicas int `json:"rootMaxReplicas"`
	// RootCPUTarget is the autoscaler's target CPU utilisation, in
	// percent of the root's CPU request.
	RootCPUTarget int `json:"rootCPUTarget"`
	// AllowPartial lets the root answer from the shards that respond.
	AllowPartial bool `json:"allowPartial"`

	// ShardPort, RootPort and MetricsPort are the containers' ports: a
	// shard's gRPC port, the root's gRPC port and the root's /metrics.
	ShardPort   int `json:"shardPort"`
	RootPort    int `json:"rootPort"`
	MetricsPort int `json:"metricsPort"`
	// DrainSeconds is how long a terminating server waits for in-flight
	// calls (tandem's --drain); the grace period is longer.
	DrainSeconds int `json:"drainSeconds"`
	// StageSeconds is the longest a shard replica may report NOT_SERVING
	// while it loads a version before its liveness probe restarts it.
	StageSeconds int `json:"stageSeconds"`

	// Parts is the number of embed tasks (the embed Job's completions).
	Parts int `json:"parts"`
	// Parallelism caps the embed and build pods that run at once
	// (0: all of them).
	Parallelism int `json:"parallelism"`
	// BackoffLimitPerIndex is how often one embed or build index is
	// retried before it counts as failed.
	BackoffLimitPerIndex int `json:"backoffLimitPerIndex"`
	// StepDeadlineSeconds bounds each refresh Job (activeDeadlineSeconds).
	StepDeadlineSeconds int `json:"stepDeadlineSeconds"`
	// Store is where a refresh run's artifacts go: an object-store URL
	// (s3://bucket?region=R&prefix=runs/) or a directory. Each run adds
	// its version to the prefix (or the path).
	Store string `json:"store"`
	// StoreClaim, when set, is a PersistentVolumeClaim mounted at
	// /store in the refresh pods, for a directory Store.
	StoreClaim string `json:"storeClaim,omitempty"`
	// Schedule is the refresh CronJob's schedule (cron syntax, UTC).
	Schedule string `json:"schedule"`

	// SnapshotsClaim (ReadWriteMany), ModelsClaim and DataClaim name the
	// PersistentVolumeClaims mounted at /snapshots, /models and /data.
	// They are not rendered: the cluster provides them.
	SnapshotsClaim string `json:"snapshotsClaim"`
	ModelsClaim    string `json:"modelsClaim"`
	DataClaim      string `json:"dataClaim"`

	// ShardResources, RootResources and RefreshResources are the
	// containers' requests.
	ShardResources   Resources `json:"shardResources"`
	RootResources    Resources `json:"rootResources"`
	RefreshResources Resources `json:"refreshResources"`
}

// Default is a 4-shard, 2-replica deployment in namespace "tandem" with
// tandem's default ports, refreshed nightly.
func Default() Config {
	return Config{
		Namespace:            "tandem",
		Image:                "ghcr.io/tandemml/tandem:latest",
		OrchestratorImage:    "ghcr.io/tandemml/tandem-k8s:latest",
		Shards:               4,
		Replicas:             2,
		RootMinReplicas:      2,
		RootMaxReplicas:      10,
		RootCPUTarget:        70,
		ShardPort:            7001,
		RootPort:             7070,
		MetricsPort:          9090,
		DrainSeconds:         10,
		StageSeconds:         600,
		Parts:                8,
		Parallelism:          0,
		BackoffLimitPerIndex: 2,
		StepDeadlineSeconds:  4 * 3600,
		Store:                "s3://tandem-refresh?region=us-east-1&prefix=runs/",
		Schedule:             "0 3 * * *",
		SnapshotsClaim:       "tandem-snapshots",
		ModelsClaim:          "tandem-models",
		DataClaim:            "tandem-data",
		ShardResources:       Resources{CPU: "2", Memory: "8Gi"},
		RootResources:        Resources{CPU: "2", Memory: "4Gi"},
		RefreshResources:     Resources{CPU: "2", Memory: "8Gi"},
	}
}

// FieldError says which Config field is wrong and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Validate checks c and returns every problem it finds, each a
// *FieldError naming the field (joined with errors.Join).
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)})
	}
	c.checkNames(bad)
	c.checkCounts(bad)
	c.checkPorts(bad)
	c.checkResources(bad)
	return errors.Join(errs...)
}

type badFunc func(field, format string, a ...any)

// named is a Config field's value with the field's name.
type named[T any] struct {
	field string
	v     T
}

func (c Config) checkNames(bad badFunc) {
	for _, m := range validation.IsDNS1123Label(c.Namespace) {
		bad("Namespace", "%q: %s", c.Namespace, m)
	}
	for _, f := range []named[string]{{"Image", c.Image}, {"OrchestratorImage", c.OrchestratorImage},
		{"Store", c.Store}, {"Schedule", c.Schedule}} {
		if f.v == "" {
			bad(f.field, "empty")
		}
	}
	claims := []named[string]{{"SnapshotsClaim", c.SnapshotsClaim}, {"ModelsClaim", c.ModelsClaim}, {"DataClaim", c.DataClaim}}
	if c.StoreClaim != "" {
		claims = append(claims, named[string]{"StoreClaim", c.StoreClaim})
	}
	for _, f := range claims {
		for _, m := range validation.IsDNS1123Subdomain(f.v) {
			bad(f.field, "%q: %s", f.v, m)
		}
	}
}

func (c Config) checkCounts(bad badFunc) {
	positive := []named[int]{
		{"Shards", c.Shards}, {"Replicas", c.Replicas}, {"RootMinReplicas", c.RootMinReplicas},
		{"RootCPUTarget", c.RootCPUTarget}, {"DrainSeconds", c.DrainSeconds}, {"StageSeconds", c.StageSeconds},
		{"Parts", c.Parts}, {"StepDeadlineSeconds", c.StepDeadlineSeconds},
	}
	for _, p := range positive {
		if p.v <= 0 {
			bad(p.field, "%d: must be at least 1", p.v)
		}
	}
	if c.RootMaxReplicas < c.RootMinReplicas {
		bad("RootMaxReplicas", "%d: below RootMinReplicas (%d)", c.RootMaxReplicas, c.RootMinReplicas)
	}
	if c.Parallelism < 0 {
		bad("Parallelism", "%d: negative", c.Parallelism)
	}
	if c.BackoffLimitPerIndex < 0 {
		bad("BackoffLimitPerIndex", "%d: negative", c.BackoffLimitPerIndex)
	}
	// Shard Service names must stay DNS labels.
	if c.Shards > 0 {
		for _, m := range validation.IsDNS1123Label(ShardName(c.Shards - 1)) {
			bad("Shards", "%d: %s", c.Shards, m)
		}
	}
}

func (c Config) checkPorts(bad badFunc) {
	for _, f := range []named[int]{{"ShardPort", c.ShardPort}, {"RootPort", c.RootPort}, {"MetricsPort", c.MetricsPort}} {
		if f.v < 1 || f.v > 65535 {
			bad(f.field, "%d: not a port", f.v)
		}
	}
	if c.RootPort == c.MetricsPort {
		bad("MetricsPort", "%d: the same as RootPort", c.MetricsPort)
	}
}

func (c Config) checkResources(bad badFunc) {
	for _, f := range []named[Resources]{{"ShardResources", c.ShardResources},
		{"RootResources", c.RootResources}, {"RefreshResources", c.RefreshResources}} {
		if _, err := resource.ParseQuantity(f.v.CPU); err != nil {
			bad(f.field+".CPU", "%q: %v", f.v.CPU, err)
		}
		if _, err := resource.ParseQuantity(f.v.Memory); err != nil {
			bad(f.field+".Memory", "%q: %v", f.v.Memory, err)
		}
	}
}

// versionRE is what a refresh version may look like: it is part of Job
// names (lower-cased) and a label value.
var versionRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,38}[A-Za-z0-9])?$`)

// ValidateVersion checks that v can name a refresh run.
func ValidateVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("version %q: want 1 to 40 letters, digits and inner dashes", v)
	}
	return nil
}
