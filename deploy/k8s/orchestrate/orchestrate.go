// Package orchestrate runs one tandem refresh on Kubernetes: it creates
// the version's four Jobs (embed, build, publish, rollout) one after the
// other, each only once the one before it has completed.
//
// Kubernetes runs, retries and schedules the pods; the orchestrator only
// sequences the Jobs and stops at the first that fails. It keeps no
// state of its own: a Job's name is fixed by its step and version, so a
// rerun for the same version adopts the Jobs that already exist.
package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	batchclient "k8s.io/client-go/kubernetes/typed/batch/v1"

	"github.com/tandemml/tandem/deploy/k8s/manifest"
)

// VersionLayout is the layout of a default version: the UTC time.
const VersionLayout = "20060102T150405Z"

// Version names a refresh run started at t, e.g. 20261208T010203Z.
func Version(t time.Time) string { return t.UTC().Format(VersionLayout) }

// Options tune Run. The zero value is usable.
type Options struct {
	// Poll is how often a Job's status is read (default 5s).
	Poll time.Duration
	// StepTimeout bounds the wait for each Job (0: only ctx bounds it).
	StepTimeout time.Duration
	// Log receives one line per Job created, adopted and finished
	// (default: discarded).
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// JobError reports a Job that failed or was not waited for to the end.
type JobError struct {
	Job    string
	Reason string
	Err    error
}

func (e *JobError) Error() string { return fmt.Sprintf("orchestrate: job %s: %s", e.Job, e.Reason) }

func (e *JobError) Unwrap() error { return e.Err }

// Run creates version's Jobs in cfg.Namespace in order, waiting after
// each for its Complete condition. A Failed condition, a timeout or ctx
// ending returns a *JobError naming the Job, and no later Job is
// created. A Job that already exists under its name is adopted (waited
// for, not recreated) provided its labels say it is that step of that
// version.
func Run(ctx context.Context, client batchclient.JobsGetter, cfg manifest.Config, version string, opts Options) error {
	opts = opts.withDefaults()
	jobs, err := manifest.RefreshJobs(cfg, version)
	if err != nil {
		return fmt.Errorf("orchestrate: %w", err)
	}
	log := opts.Log.With("version", version)
	for _, j := range jobs {
		if err := runJob(ctx, client, j, opts, log); err != nil {
			return err
		}
	}
	log.Info("refresh complete")
	return nil
}

// runJob creates (or adopts) j and waits for it to finish.
func runJob(ctx context.Context, client batchclient.JobsGetter, j *batchv1.Job, opts Options, log *slog.Logger) error {
	if opts.StepTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.StepTimeout)
		defer cancel()
	}
	if err := ensure(ctx, client, j, log); err != nil {
		return err
	}
	t0 := time.Now()
	if err := wait(ctx, client, j, opts.Poll, log); err != nil {
		return err
	}
	log.Info("job complete", "job", j.Name, "seconds", time.Since(t0).Seconds())
	return nil
}

// ensure creates j, or adopts the Job already there under its name.
func ensure(ctx context.Context, client batchclient.JobsGetter, j *batchv1.Job, log *slog.Logger) error {
	jobs := client.Jobs(j.Namespace)
	_, err := jobs.Create(ctx, j, metav1.CreateOptions{})
	switch {
	case err == nil:
		log.Info("job created", "job", j.Name)
		return nil
	case !apierrors.IsAlreadyExists(err):
		return &JobError{Job: j.Name, Reason: "create: " + err.Error(), Err: err}
	}
	have, err := jobs.Get(ctx, j.Name, metav1.GetOptions{})
	if err != nil {
		return &JobError{Job: j.Name, Reason: "get existing: " + err.Error(), Err: err}
	}
	if err := sameRun(have, j); err != nil {
		return &JobError{Job: j.Name, Reason: err.Error()}
	}
	log.Info("job adopted", "job", j.Name)
	return nil
}

// sameRun checks that an existing Job is the one want would create.
func sameRun(have, want *batchv1.Job) error {
	for _, k := range []string{manifest.LabelVersion, manifest.LabelStep} {
		if h, w := have.Labels[k], want.Labels[k]; h != w {
			return fmt.Errorf("exists with label %s=%q, not %q: not adopting it", k, h, w)
		}
	}
	return nil
}

// errFailed marks a Job whose Failed condition is true.
var errFailed = errors.New("job failed")

// wait polls j until it is Complete, Failed or ctx ends.
func wait(ctx context.Context, client batchclient.JobsGetter, j *batchv1.Job, poll time.Duration, log *slog.Logger) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		done, err := finished(ctx, client, j, log)
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return &JobError{Job: j.Name, Reason: "waiting for Complete: " + ctx.Err().Error(), Err: ctx.Err()}
		case <-t.C:
		}
	}
}

// finished reads j's conditions: true once it is Complete, an error
// once it has Failed. A failed read is retried at the next poll unless
// the Job is gone.
func finished(ctx context.Context, client batchclient.JobsGetter, j *batchv1.Job, log *slog.Logger) (bool, error) {
	cur, err := client.Jobs(j.Namespace).Get(ctx, j.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, &JobError{Job: j.Name, Reason: "deleted while waiting", Err: err}
	}
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reading job status", "job", j.Name, "err", err)
		}
		return false, nil
	}
	if c := condition(cur, batchv1.JobFailed); c != nil {
		return false, &JobError{Job: j.Name, Reason: fmt.Sprintf("Failed: %s: %s", c.Reason, c.Message), Err: errFailed}
	}
	return condition(cur, batchv1.JobComplete) != nil, nil
}

// condition is j's condition of type t when its status is True.
func condition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

// VersionFromJob names the run of the CronJob-created Job name: its
// scheduled time (or, for a Job created by hand, its creation time), so
// every pod the Job retries continues the same version.
func VersionFromJob(ctx context.Context, client batchclient.JobsGetter, namespace, name string) (string, error) {
	j, err := client.Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("orchestrate: own job %s: %w", name, err)
	}
	if s, ok := j.Annotations[batchv1.CronJobScheduledTimestampAnnotation]; ok {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return "", fmt.Errorf("orchestrate: own job %s: annotation %s: %w", name, batchv1.CronJobScheduledTimestampAnnotation, err)
		}
		return Version(t), nil
	}
	if j.CreationTimestamp.IsZero() {
		return "", fmt.Errorf("orchestrate: own job %s: no scheduled or creation time", name)
	}
	return Version(j.CreationTimestamp.Time), nil
}
