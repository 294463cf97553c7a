package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/typed/batch/v1/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tandemml/tandem/deploy/k8s/manifest"
)

const version = "20261208T010203Z"

// newFake is client-go's fake batch/v1 client over an object tracker
// holding objs: creates, gets, lists and status updates behave as an API
// server's would for Jobs, without the rest of the clientset.
func newFake(t *testing.T, objs ...runtime.Object) *fake.FakeBatchV1 {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := batchv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	tracker := k8stesting.NewObjectTracker(scheme, serializer.NewCodecFactory(scheme).UniversalDecoder())
	for _, o := range objs {
		if err := tracker.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	f := &fake.FakeBatchV1{Fake: &k8stesting.Fake{}}
	f.AddReactor("*", "*", k8stesting.ObjectReaction(tracker))
	return f
}

// controller plays the Job controller against the fake client: it
// completes every Job it sees, fails the steps in fail, and finishes
// nothing while hold is set. It records the order of creates and any
// Job created before the steps before it had completed.
type controller struct {
	client *fake.FakeBatchV1
	ns     string
	fail   map[string]bool
	hold   bool

	mu         sync.Mutex
	created    []string // steps, in create order
	completed  map[string]bool
	violations []string
}

func newController(t *testing.T, objs ...runtime.Object) *controller {
	c := &controller{client: newFake(t, objs...), ns: manifest.Default().Namespace,
		fail: map[string]bool{}, completed: map[string]bool{}}
	for _, o := range objs {
		if j, ok := o.(*batchv1.Job); ok && hasCondition(j, batchv1.JobComplete) {
			c.completed[j.Labels[manifest.LabelStep]] = true
		}
	}
	c.client.PrependReactor("create", "jobs", c.onCreate)
	return c
}

// onCreate checks, before the fake stores a Job, that every earlier
// step has completed.
func (c *controller) onCreate(a k8stesting.Action) (bool, runtime.Object, error) {
	j := a.(k8stesting.CreateAction).GetObject().(*batchv1.Job)
	step := j.Labels[manifest.LabelStep]
	c.mu.Lock()
	defer c.mu.Unlock()
	c.created = append(c.created, step)
	for _, s := range manifest.Steps() {
		if s == step {
			break
		}
		if !c.completed[s] {
			c.violations = append(c.violations, fmt.Sprintf("%s created before %s completed", step, s))
		}
	}
	return false, nil, nil
}

// run finishes Jobs until ctx ends.
func (c *controller) run(ctx context.Context) {
	for ctx.Err() == nil {
		list, err := c.client.Jobs(c.ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for i := range list.Items {
				c.finish(ctx, &list.Items[i])
			}
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *controller) finish(ctx context.Context, j *batchv1.Job) {
	if hasCondition(j, batchv1.JobComplete) || hasCondition(j, batchv1.JobFailed) {
		return
	}
	step := j.Labels[manifest.LabelStep]
	c.mu.Lock()
	hold, fail := c.hold, c.fail[step]
	if !hold && !fail {
		c.completed[step] = true // before the status says so
	}
	c.mu.Unlock()
	switch {
	case fail:
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobFailed,
			Status: corev1.ConditionTrue, Reason: "FailedIndexes", Message: "Job has failed indexes"})
	case hold:
		return
	default:
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue})
	}
	_, _ = c.client.Jobs(c.ns).UpdateStatus(ctx, j, metav1.UpdateOptions{})
}

func (c *controller) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (c *controller) check(t *testing.T, wantCreated ...string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.violations {
		t.Error(v)
	}
	if !slices.Equal(c.created, wantCreated) {
		t.Errorf("created %v, want %v", c.created, wantCreated)
	}
}

func hasCondition(j *batchv1.Job, t batchv1.JobConditionType) bool { return condition(j, t) != nil }

func fast() Options { return Options{Poll: time.Millisecond} }

func run(t *testing.T, c *controller, timeout time.Duration, o Options) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return Run(ctx, c.client, manifest.Default(), version, o)
}

func TestRunCreatesJobsInOrder(t *testing.T) {
	c := newController(t)
	c.start(t)
	if err := run(t, c, 10*time.Second, fast()); err != nil {
		t.Fatal(err)
	}
	c.check(t, manifest.Steps()...)
	list, err := c.client.Jobs(c.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 4 {
		t.Fatalf("%d Jobs (%v), want 4", len(list.Items), err)
	}
	for _, j := range list.Items {
		if j.Labels[manifest.LabelVersion] != version {
			t.Errorf("%s: version label %q", j.Name, j.Labels[manifest.LabelVersion])
		}
	}
}

func TestFailureStopsTheChain(t *testing.T) {
	c := newController(t)
	c.fail[manifest.StepBuild] = true
	c.start(t)
	err := run(t, c, 10*time.Second, fast())
	var je *JobError
	if !errors.As(err, &je) || je.Job != manifest.JobName(manifest.StepBuild, version) {
		t.Fatalf("error %v, want a JobError for the build Job", err)
	}
	for _, want := range []string{"tandem-build-20261208t010203z", "Failed", "FailedIndexes", "Job has failed indexes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	c.check(t, manifest.StepEmbed, manifest.StepBuild)
}

// existing is a Job of this version as an earlier orchestrator pod left
// it, marked so a test can tell it was not recreated.
func existing(t *testing.T, step string, complete bool) *batchv1.Job {
	js, err := manifest.RefreshJobs(manifest.Default(), version)
	if err != nil {
		t.Fatal(err)
	}
	j := js[slices.Index(manifest.Steps(), step)]
	j.Annotations = map[string]string{"test/earlier": "yes"}
	if complete {
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	}
	return j
}

func TestRerunAdoptsExistingJobs(t *testing.T) {
	c := newController(t, existing(t, manifest.StepEmbed, true), existing(t, manifest.StepBuild, false))
	c.start(t)
	if err := run(t, c, 10*time.Second, fast()); err != nil {
		t.Fatal(err)
	}
	// The creates of embed and build were refused (AlreadyExists) and
	// the Jobs there were waited for.
	c.check(t, manifest.Steps()...)
	for _, step := range []string{manifest.StepEmbed, manifest.StepBuild} {
		j, err := c.client.Jobs(c.ns).Get(context.Background(), manifest.JobName(step, version), metav1.GetOptions{})
		if err != nil || j.Annotations["test/earlier"] != "yes" {
			t.Errorf("%s: not the earlier Job (%v)", step, err)
		}
	}
	// A rerun after success creates nothing new and succeeds at once.
	if err := run(t, c, 10*time.Second, fast()); err != nil {
		t.Fatal(err)
	}
	list, _ := c.client.Jobs(c.ns).List(context.Background(), metav1.ListOptions{})
	if len(list.Items) != 4 {
		t.Errorf("%d Jobs after the rerun", len(list.Items))
	}
}

func TestRerunAdoptsFailedJobAsFailure(t *testing.T) {
	j := existing(t, manifest.StepEmbed, false)
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue,
		Reason: "DeadlineExceeded", Message: "Job was active longer than specified deadline"}}
	c := newController(t, j)
	c.start(t)
	err := run(t, c, 10*time.Second, fast())
	if err == nil || !strings.Contains(err.Error(), "DeadlineExceeded") {
		t.Fatalf("error %v, want the earlier failure", err)
	}
	c.check(t, manifest.StepEmbed)
}

func TestForeignJobIsNotAdopted(t *testing.T) {
	j := existing(t, manifest.StepEmbed, true)
	j.Labels[manifest.LabelVersion] = "someone-else"
	c := newController(t, j)
	c.start(t)
	err := run(t, c, 10*time.Second, fast())
	if err == nil || !strings.Contains(err.Error(), "not adopting") {
		t.Fatalf("error %v, want a refusal to adopt", err)
	}
	c.check(t, manifest.StepEmbed)
}

func TestContextTimeoutStopsTheChain(t *testing.T) {
	c := newController(t)
	c.hold = true
	c.start(t)
	err := run(t, c, 50*time.Millisecond, fast())
	var je *JobError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &je) || je.Job != manifest.JobName(manifest.StepEmbed, version) {
		t.Fatalf("error %v, want the embed Job's deadline", err)
	}
	c.check(t, manifest.StepEmbed)
}

func TestStepTimeout(t *testing.T) {
	c := newController(t)
	c.hold = true
	c.start(t)
	o := fast()
	o.StepTimeout = 30 * time.Millisecond
	err := run(t, c, 10*time.Second, o)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "tandem-embed-") {
		t.Fatalf("error %v, want the embed step's timeout", err)
	}
	c.check(t, manifest.StepEmbed)
}

func TestInvalidVersionCreatesNothing(t *testing.T) {
	c := newController(t)
	if err := Run(context.Background(), c.client, manifest.Default(), "not/a/version", fast()); err == nil {
		t.Fatal("bad version accepted")
	}
	bad := manifest.Default()
	bad.Shards = 0
	if err := Run(context.Background(), c.client, bad, version, fast()); err == nil || !strings.Contains(err.Error(), "Shards") {
		t.Fatalf("invalid config: %v", err)
	}
	c.check(t)
}

func TestVersion(t *testing.T) {
	at := time.Date(2026, 12, 8, 1, 2, 3, 0, time.FixedZone("X", 3600))
	if v := Version(at); v != "20261208T000203Z" {
		t.Errorf("Version = %s", v)
	}
	if err := manifest.ValidateVersion(Version(at)); err != nil {
		t.Error(err)
	}
}

func TestVersionFromJob(t *testing.T) {
	ns := manifest.Default().Namespace
	scheduled := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "tandem-refresh-29000000", Namespace: ns,
		Annotations: map[string]string{batchv1.CronJobScheduledTimestampAnnotation: "2026-12-08T03:00:00Z"}}}
	byHand := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "manual", Namespace: ns,
		CreationTimestamp: metav1.NewTime(time.Date(2026, 12, 8, 4, 5, 6, 0, time.UTC))}}
	client := newFake(t, scheduled, byHand)
	for name, want := range map[string]string{scheduled.Name: "20261208T030000Z", byHand.Name: "20261208T040506Z"} {
		v, err := VersionFromJob(context.Background(), client, ns, name)
		if err != nil || v != want {
			t.Errorf("%s: %q, %v; want %s", name, v, err, want)
		}
	}
	if _, err := VersionFromJob(context.Background(), client, ns, "missing"); err == nil {
		t.Error("missing Job gave a version")
	}
}
