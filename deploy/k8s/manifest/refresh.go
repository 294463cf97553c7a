package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// JobNameEnv is the orchestrator pod's environment variable holding the
// name of the CronJob-created Job it runs in; the orchestrator derives
// the version from that Job, so a retried pod continues the same run.
const JobNameEnv = "TANDEM_JOB_NAME"

// refreshObjects are the standing refresh pieces: the orchestrator's
// identity and rights, its configuration and its schedule.
func refreshObjects(cfg Config) ([]Object, error) {
	cm, err := orchestratorConfigMap(cfg)
	if err != nil {
		return nil, err
	}
	return []Object{refreshServiceAccount(cfg), refreshRole(cfg), refreshRoleBinding(cfg), cm, refreshCronJob(cfg)}, nil
}

func refreshServiceAccount(cfg Config) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: meta(cfg, RefreshName, objLabels(ComponentRefresh)),
	}
}

// refreshRole lets the orchestrator run Jobs in its namespace and look
// at their pods; nothing else.
func refreshRole(cfg Config) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: meta(cfg, RefreshName, objLabels(ComponentRefresh)),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		},
	}
}

func refreshRoleBinding(cfg Config) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: meta(cfg, RefreshName, objLabels(ComponentRefresh)),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: RefreshName},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: RefreshName, Namespace: cfg.Namespace}},
	}
}

// orchestratorConfigMap holds cfg as JSON, which the orchestrator reads
// to build the same Jobs RefreshJobs does here.
func orchestratorConfigMap(cfg Config) (*corev1.ConfigMap, error) {
	b, err := ConfigJSON(cfg)
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta(cfg, RefreshName, objLabels(ComponentRefresh)),
		Data:       map[string]string{OrchestratorConfig: string(b)},
	}, nil
}

// ConfigJSON is cfg as indented JSON, the format DecodeConfig reads.
func ConfigJSON(cfg Config) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(cfg); err != nil {
		return nil, fmt.Errorf("manifest: config: %w", err)
	}
	return b.Bytes(), nil
}

// DecodeConfig reads a JSON Config; fields it leaves out keep their
// Default values, and unknown fields are errors.
func DecodeConfig(b []byte) (Config, error) {
	cfg := Default()
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("manifest: config: %w", err)
	}
	return cfg, nil
}

// OrchestratorDeadline bounds one orchestrator run: four steps, each
// bounded by StepDeadlineSeconds, and some slack for scheduling.
func OrchestratorDeadline(cfg Config) int64 { return int64(4*cfg.StepDeadlineSeconds + 600) }

// refreshCronJob starts one orchestrator run per schedule tick and never
// two at once. A failed orchestrator pod is retried within the same Job
// and picks up that run's Jobs.
func refreshCronJob(cfg Config) *batchv1.CronJob {
	return &batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: meta(cfg, RefreshName, objLabels(ComponentRefresh)),
		Spec: batchv1.CronJobSpec{
			Schedule:                   cfg.Schedule,
			TimeZone:                   ptr("Etc/UTC"),
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			StartingDeadlineSeconds:    ptr[int64](3600),
			SuccessfulJobsHistoryLimit: ptr[int32](3),
			FailedJobsHistoryLimit:     ptr[int32](3),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: objLabels(ComponentRefresh)},
				Spec: batchv1.JobSpec{
					BackoffLimit:          ptr[int32](2),
					ActiveDeadlineSeconds: ptr(OrchestratorDeadline(cfg)),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: objLabels(ComponentRefresh)},
						Spec:       orchestratorPod(cfg),
					},
				},
			},
		},
	}
}

func orchestratorPod(cfg Config) corev1.PodSpec {
	return corev1.PodSpec{
		ServiceAccountName: RefreshName,
		RestartPolicy:      corev1.RestartPolicyNever,
		SecurityContext:    podSecurity(),
		Containers: []corev1.Container{{
			Name:    "orchestrate",
			Image:   cfg.OrchestratorImage,
			Command: []string{"tandem-k8s"},
			Args:    []string{"orchestrate", arg("config", orchestratorCfgPath+"/"+OrchestratorConfig)},
			Env: []corev1.EnvVar{{Name: JobNameEnv, ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['" + batchv1.JobNameLabel + "']"}}}},
			Resources:       resources(Resources{CPU: "100m", Memory: "128Mi"}),
			VolumeMounts:    []corev1.VolumeMount{mount("config", orchestratorCfgPath, true)},
			SecurityContext: containerSecurity(),
		}},
		Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: RefreshName}}}}},
	}
}
