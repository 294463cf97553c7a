package manifest

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func shardLabels(s int) map[string]string {
	return objLabels(ComponentShard, LabelShard, strconv.Itoa(s))
}

func shardSelector(s int) map[string]string {
	return selector(ComponentShard, LabelShard, strconv.Itoa(s))
}

// shardService is shard s's headless Service: its DNS name resolves to
// the replicas' pod IPs, which the root and the rollout balance over.
// Addresses are published before a pod is ready because both callers
// check gRPC health themselves, and a rollout must reach a replica that
// reports NOT_SERVING while it stages.
func shardService(cfg Config, s int) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(cfg, ShardName(s), shardLabels(s)),
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 shardSelector(s),
			PublishNotReadyAddresses: true,
			Ports: []corev1.ServicePort{{Name: "grpc", Port: int32(cfg.ShardPort), TargetPort: intstr.FromString("grpc"),
				AppProtocol: ptr("grpc")}},
		},
	}
}

// shardStatefulSet runs shard s's replicas. They are independent (each
// loads the same shard from the shared snapshot volume), so they start
// and stop in parallel; the StatefulSet gives them stable names.
func shardStatefulSet(cfg Config, s int) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta(cfg, ShardName(s), shardLabels(s)),
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr(int32(cfg.Replicas)),
			ServiceName:         ShardName(s),
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Selector:            &metav1.LabelSelector{MatchLabels: shardSelector(s)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: shardLabels(s)},
				Spec:       shardPod(cfg, s),
			},
		},
	}
}

func shardPod(cfg Config, s int) corev1.PodSpec {
	return corev1.PodSpec{
		Containers:                    []corev1.Container{shardContainer(cfg, s)},
		Volumes:                       []corev1.Volume{claimVolume("snapshots", cfg.SnapshotsClaim, true)},
		TerminationGracePeriodSeconds: gracePeriod(cfg),
		SecurityContext:               podSecurity(),
		Affinity:                      spreadAcrossNodes(shardSelector(s)),
		AutomountServiceAccountToken:  ptr(false),
	}
}

// shardContainer serves shard s. Readiness follows the gRPC health of
// the shard service (NOT_SERVING while staging or draining). Liveness
// asks the same health service but tolerates NOT_SERVING for
// StageSeconds, the longest a version may take to load; a startup
// probe gives the first load as long.
func shardContainer(cfg Config, s int) corev1.Container {
	const period = 10
	stageFailures := int32(max(1, (cfg.StageSeconds+period-1)/period))
	return corev1.Container{
		Name:    "shard",
		Image:   cfg.Image,
		Command: []string{"tandem"},
		Args: []string{"serve", "--role=shard", arg("shard", s), arg("shards", cfg.Shards),
			arg("db", SnapshotsPath), arg("addr", ":"+strconv.Itoa(cfg.ShardPort)), drain(cfg)},
		Ports:           []corev1.ContainerPort{{Name: "grpc", ContainerPort: int32(cfg.ShardPort)}},
		ReadinessProbe:  grpcProbe(cfg.ShardPort, ShardHealthService, 5, 2),
		LivenessProbe:   grpcProbe(cfg.ShardPort, ShardHealthService, period, stageFailures),
		StartupProbe:    grpcProbe(cfg.ShardPort, ShardHealthService, period, stageFailures),
		Resources:       resources(cfg.ShardResources),
		VolumeMounts:    []corev1.VolumeMount{mount("snapshots", SnapshotsPath, true)},
		SecurityContext: containerSecurity(),
	}
}

// spreadAcrossNodes prefers to put the selected pods on distinct nodes,
// so one node going down takes at most one replica of a shard.
func spreadAcrossNodes(sel map[string]string) *corev1.Affinity {
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				LabelSelector: &metav1.LabelSelector{MatchLabels: sel},
				TopologyKey:   corev1.LabelHostname,
			},
		}},
	}}
}

// shardPDB lets voluntary disruptions (drains, upgrades) take at most
// one replica of shard s at a time.
func shardPDB(cfg Config, s int) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: meta(cfg, ShardName(s), shardLabels(s)),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: shardSelector(s)},
		},
	}
}
