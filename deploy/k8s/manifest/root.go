package manifest

import (
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// rootDeployment runs the stateless roots. Its replica count is left
// to the autoscaler (an apply does not reset it).
func rootDeployment(cfg Config) *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(cfg, RootName, objLabels(ComponentRoot)),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: selector(ComponentRoot)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr(intstr.FromInt32(0)),
					MaxSurge:       ptr(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: objLabels(ComponentRoot),
					Annotations: map[string]string{
						"prometheus.io/scrape": "true",
						"prometheus.io/port":   strconv.Itoa(cfg.MetricsPort),
						"prometheus.io/path":   "/metrics",
					},
				},
				Spec: rootPod(cfg),
			},
		},
	}
}

func rootPod(cfg Config) corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{rootContainer(cfg)},
		Volumes: []corev1.Volume{
			claimVolume("models", cfg.ModelsClaim, true),
			claimVolume("snapshots", cfg.SnapshotsClaim, true),
		},
		TerminationGracePeriodSeconds: gracePeriod(cfg),
		SecurityContext:               podSecurity(),
		Affinity:                      spreadAcrossNodes(selector(ComponentRoot)),
		AutomountServiceAccountToken:  ptr(false),
	}
}

// RootArgs are the root container's arguments.
func RootArgs(cfg Config) []string {
	args := []string{"serve", "--role=root", arg("model", ModelsPath), arg("db", SnapshotsPath),
		arg("shard-targets", strings.Join(ShardTargets(cfg), ","))}
	if cfg.AllowPartial {
		args = append(args, "--allow-partial")
	}
	return append(args, arg("addr", ":"+strconv.Itoa(cfg.RootPort)),
		arg("metrics-addr", ":"+strconv.Itoa(cfg.MetricsPort)), drain(cfg))
}

// rootContainer serves tandem.v1.Tandem; readiness asks that service's
// health, liveness the server's overall health.
func rootContainer(cfg Config) corev1.Container {
	return corev1.Container{
		Name:    "root",
		Image:   cfg.Image,
		Command: []string{"tandem"},
		Args:    RootArgs(cfg),
		Ports: []corev1.ContainerPort{
			{Name: "grpc", ContainerPort: int32(cfg.RootPort)},
			{Name: "metrics", ContainerPort: int32(cfg.MetricsPort)},
		},
		ReadinessProbe: grpcProbe(cfg.RootPort, RootHealthService, 5, 2),
		LivenessProbe:  grpcProbe(cfg.RootPort, "", 10, 6),
		StartupProbe:   grpcProbe(cfg.RootPort, "", 5, 60),
		Resources:      resources(cfg.RootResources),
		VolumeMounts: []corev1.VolumeMount{
			mount("models", ModelsPath, true),
			mount("snapshots", SnapshotsPath, true),
		},
		SecurityContext: containerSecurity(),
	}
}

// rootService is the roots' stable address for clients.
func rootService(cfg Config) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(cfg, RootServiceName, objLabels(ComponentRoot)),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector(ComponentRoot),
			Ports: []corev1.ServicePort{
				{Name: "grpc", Port: int32(cfg.RootPort), TargetPort: intstr.FromString("grpc"), AppProtocol: ptr("grpc")},
				{Name: "metrics", Port: int32(cfg.MetricsPort), TargetPort: intstr.FromString("metrics"), AppProtocol: ptr("http")},
			},
		},
	}
}

// rootHPA scales the roots on CPU utilisation.
func rootHPA(cfg Config) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: meta(cfg, RootName, objLabels(ComponentRoot)),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: RootName},
			MinReplicas:    ptr(int32(cfg.RootMinReplicas)),
			MaxReplicas:    int32(cfg.RootMaxReplicas),
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{
						Type:               autoscalingv2.UtilizationMetricType,
						AverageUtilization: ptr(int32(cfg.RootCPUTarget)),
					},
				},
			}},
		},
	}
}
