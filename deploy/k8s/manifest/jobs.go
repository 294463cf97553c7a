package manifest

import (
	"net/url"
	"path"
	"regexp"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The refresh steps, in the order they run.
const (
	StepEmbed   = "embed"
	StepBuild   = "build"
	StepPublish = "publish"
	StepRollout = "rollout"
)

// Steps lists the refresh steps in order.
func Steps() []string { return []string{StepEmbed, StepBuild, StepPublish, StepRollout} }

// JobName is the name of version's Job for step: the same for every
// attempt at that version, which is what lets a rerun find it.
func JobName(step, version string) string {
	return "tandem-" + step + "-" + lowerVersion(version)
}

// jobTTLSeconds keeps finished refresh Jobs (and their logs) for a week.
const jobTTLSeconds = 7 * 24 * 3600

// RefreshJobs builds version's four Jobs in the order they must run:
// embed (Indexed, one index per part), build (Indexed, one index per
// shard), publish and rollout (one pod each). Every Job and pod is
// labelled with the version and its step; the tasks share the store
// under a prefix of their own version.
func RefreshJobs(cfg Config, version string) ([]*batchv1.Job, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ValidateVersion(version); err != nil {
		return nil, err
	}
	store := StoreURL(cfg.Store, version)
	common := []string{arg("data", DataPath), arg("model", ModelsPath), arg("store", store)}
	embed := indexedJob(cfg, version, StepEmbed, cfg.Parts,
		append([]string{"refresh", "embed", arg("parts", cfg.Parts)}, common...))
	build := indexedJob(cfg, version, StepBuild, cfg.Shards,
		append([]string{"refresh", "build", arg("shards", cfg.Shards)}, common...))
	publish := singleJob(cfg, version, StepPublish, append(append([]string{"refresh", "publish"}, common...),
		arg("db", SnapshotsPath), arg("version", version)))
	rollout := singleJob(cfg, version, StepRollout, []string{"rollout",
		arg("shard-targets", strings.Join(ShardTargets(cfg), ",")), arg("version", version)})
	return []*batchv1.Job{embed, build, publish, rollout}, nil
}

// indexedJob runs n pods, each told its index by JOB_COMPLETION_INDEX;
// an index that fails more than BackoffLimitPerIndex times fails the Job.
func indexedJob(cfg Config, version, step string, n int, args []string) *batchv1.Job {
	j := job(cfg, version, step, args)
	parallel := n
	if cfg.Parallelism > 0 {
		parallel = min(n, cfg.Parallelism)
	}
	j.Spec.CompletionMode = ptr(batchv1.IndexedCompletion)
	j.Spec.Completions = ptr(int32(n))
	j.Spec.Parallelism = ptr(int32(parallel))
	j.Spec.BackoffLimitPerIndex = ptr(int32(cfg.BackoffLimitPerIndex))
	return j
}

// singleJob runs one pod, retried up to BackoffLimitPerIndex times.
func singleJob(cfg Config, version, step string, args []string) *batchv1.Job {
	j := job(cfg, version, step, args)
	j.Spec.Completions = ptr[int32](1)
	j.Spec.Parallelism = ptr[int32](1)
	j.Spec.BackoffLimit = ptr(int32(cfg.BackoffLimitPerIndex))
	return j
}

func job(cfg Config, version, step string, args []string) *batchv1.Job {
	l := objLabels(ComponentRefresh, LabelVersion, version, LabelStep, step)
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta(cfg, JobName(step, version), l),
		Spec: batchv1.JobSpec{
			ActiveDeadlineSeconds:   ptr(int64(cfg.StepDeadlineSeconds)),
			TTLSecondsAfterFinished: ptr[int32](jobTTLSeconds),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       taskPod(cfg, step, args),
			},
		},
	}
}

// taskPod runs one refresh task with the volumes its step needs: every
// step but rollout reads the data and models, publish writes snapshots.
func taskPod(cfg Config, step string, args []string) corev1.PodSpec {
	var vols []corev1.Volume
	var mounts []corev1.VolumeMount
	add := func(name, claim, at string, readOnly bool) {
		vols = append(vols, claimVolume(name, claim, readOnly))
		mounts = append(mounts, mount(name, at, readOnly))
	}
	if step != StepRollout {
		add("data", cfg.DataClaim, DataPath, true)
		add("models", cfg.ModelsClaim, ModelsPath, true)
		if cfg.StoreClaim != "" {
			add("store", cfg.StoreClaim, StorePath, false)
		}
	}
	if step == StepPublish {
		add("snapshots", cfg.SnapshotsClaim, SnapshotsPath, false)
	}
	return corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		AutomountServiceAccountToken: ptr(false),
		SecurityContext:              podSecurity(),
		Volumes:                      vols,
		Containers: []corev1.Container{{
			Name:            step,
			Image:           cfg.Image,
			Command:         []string{"tandem"},
			Args:            args,
			Resources:       resources(cfg.RefreshResources),
			VolumeMounts:    mounts,
			SecurityContext: containerSecurity(),
		}},
	}
}

// schemeRE matches a URL's scheme.
var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// StoreURL is base narrowed to one run: version is appended to an
// object-store URL's prefix parameter (added if absent), or to the path
// of a directory or file:// URL. Other parameters keep their order.
func StoreURL(base, version string) string {
	if !schemeRE.MatchString(base) {
		return path.Join(base, version)
	}
	if strings.HasPrefix(base, "file://") {
		head, query, hasQuery := strings.Cut(base, "?")
		u := "file://" + path.Join(strings.TrimPrefix(head, "file://"), version)
		if hasQuery {
			u += "?" + query
		}
		return u
	}
	head, query, _ := strings.Cut(base, "?")
	var params []string
	found := false
	for _, p := range strings.Split(query, "&") {
		if p == "" {
			continue
		}
		if k, v, _ := strings.Cut(p, "="); k == "prefix" {
			p, found = prefixParam(v, version), true
		}
		params = append(params, p)
	}
	if !found {
		params = append(params, prefixParam("", version))
	}
	return head + "?" + strings.Join(params, "&")
}

// safePrefixRE matches a prefix that needs no escaping in a query.
var safePrefixRE = regexp.MustCompile(`^[A-Za-z0-9/._-]*$`)

// prefixParam is prefix=OLD/VERSION/, the old value unescaped first.
func prefixParam(old, version string) string {
	if u, err := url.QueryUnescape(old); err == nil {
		old = u
	}
	if old != "" && !strings.HasSuffix(old, "/") {
		old += "/"
	}
	v := old + version + "/"
	if !safePrefixRE.MatchString(v) {
		v = url.QueryEscape(v)
	}
	return "prefix=" + v
}
