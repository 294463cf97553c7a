package manifest

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Object is a rendered Kubernetes object: typed, with its TypeMeta set.
type Object interface {
	runtime.Object
	metav1.Object
}

// Label keys and the components they name.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelComponent = "app.kubernetes.io/component"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelShard is the shard number on a shard's objects and pods.
	LabelShard = "tandem/shard"
	// LabelVersion is the refresh version on its Jobs and their pods.
	LabelVersion = "tandem/version"
	// LabelStep is the refresh step (embed, build, publish, rollout).
	LabelStep = "tandem/step"

	ComponentNamespace = "namespace"
	ComponentShard     = "shard"
	ComponentRoot      = "root"
	ComponentRefresh   = "refresh"
)

// Names of the fixed objects, and the health services the probes ask.
const (
	RootName            = "tandem-root"
	RootServiceName     = "tandem"
	RefreshName         = "tandem-refresh"
	ShardHealthService  = "tandem.shard.v1.Shard"
	RootHealthService   = "tandem.v1.Tandem"
	OrchestratorConfig  = "config.json"
	orchestratorCfgPath = "/etc/tandem-k8s"
)

// Mount points inside the containers.
const (
	SnapshotsPath = "/snapshots"
	ModelsPath    = "/models"
	DataPath      = "/data"
	StorePath     = "/store"
)

// nonRootUID is the user the containers run as.
const nonRootUID = 65532

// ShardName is shard s's StatefulSet, headless Service and PDB name.
func ShardName(s int) string { return "tandem-shard-" + strconv.Itoa(s) }

// ShardTargets are the gRPC targets of every shard, in shard order:
// grpc-go's dns resolver over each shard's headless Service.
func ShardTargets(cfg Config) []string {
	t := make([]string, cfg.Shards)
	for s := range t {
		t[s] = fmt.Sprintf("dns:///%s.%s.svc.cluster.local:%d", ShardName(s), cfg.Namespace, cfg.ShardPort)
	}
	return t
}

// Render builds every object of a deployment in apply order: the
// namespace, the shards, the root, then the refresh CronJob and its
// RBAC. The refresh Jobs themselves come from RefreshJobs, per version.
func Render(cfg Config) ([]Object, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("manifest: invalid config: %w", err)
	}
	objs := []Object{namespace(cfg)}
	for s := range cfg.Shards {
		objs = append(objs, shardService(cfg, s), shardStatefulSet(cfg, s), shardPDB(cfg, s))
	}
	objs = append(objs, rootDeployment(cfg), rootService(cfg), rootHPA(cfg))
	refresh, err := refreshObjects(cfg)
	if err != nil {
		return nil, err
	}
	return append(objs, refresh...), nil
}

func namespace(cfg Config) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: cfg.Namespace, Labels: objLabels(ComponentNamespace)},
	}
}

// objLabels are the labels every object of a component carries.
func objLabels(component string, extra ...string) map[string]string {
	l := map[string]string{
		LabelName:      "tandem",
		LabelComponent: component,
		LabelPartOf:    "tandem",
		LabelManagedBy: "tandem-k8s",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// selector is the subset of labels that picks a component's pods.
func selector(component string, extra ...string) map[string]string {
	l := map[string]string{LabelName: "tandem", LabelComponent: component}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

func meta(cfg Config, name string, l map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: cfg.Namespace, Labels: l}
}

// resources turns r into requests, with the memory request as a limit.
func resources(r Resources) corev1.ResourceRequirements {
	mem := resource.MustParse(r.Memory)
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(r.CPU), corev1.ResourceMemory: mem},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: mem},
	}
}

// grpcProbe asks the gRPC health service on port for service.
func grpcProbe(port int, service string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port), Service: ptr(service)}},
		PeriodSeconds:    period,
		TimeoutSeconds:   2,
		FailureThreshold: failures,
	}
}

// containerSecurity runs a container unprivileged with a read-only root.
func containerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

func podSecurity() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot: ptr(true),
		RunAsUser:    ptr[int64](nonRootUID),
		RunAsGroup:   ptr[int64](nonRootUID),
		FSGroup:      ptr[int64](nonRootUID),
		// Large snapshot volumes are not re-chowned at every mount.
		FSGroupChangePolicy: ptr(corev1.FSGroupChangeOnRootMismatch),
		SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// claimVolume mounts a PersistentVolumeClaim.
func claimVolume(name, claim string, readOnly bool) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly}}}
}

func mount(name, path string, readOnly bool) corev1.VolumeMount {
	return corev1.VolumeMount{Name: name, MountPath: path, ReadOnly: readOnly}
}

// arg renders a --name=value argument.
func arg(name string, v any) string { return fmt.Sprintf("--%s=%v", name, v) }

// drain is the --drain argument.
func drain(cfg Config) string { return arg("drain", strconv.Itoa(cfg.DrainSeconds)+"s") }

// gracePeriod leaves a terminating server its drain plus time to exit.
func gracePeriod(cfg Config) *int64 { return ptr(int64(cfg.DrainSeconds + 20)) }

func ptr[T any](v T) *T { return &v }

// lowerVersion is a version as it appears in object names.
func lowerVersion(v string) string { return strings.ToLower(v) }
