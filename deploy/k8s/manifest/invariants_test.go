package manifest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// ofType picks the objects of type T, in order.
func ofType[T Object](objs []Object) []T {
	var out []T
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

func mustSelector(t *testing.T, s *metav1.LabelSelector) labels.Selector {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

// The committed manifests are Default(): S shards of R replicas.
var (
	wantShards   = Default().Shards
	wantReplicas = Default().Replicas
)

func TestShardsHaveStatefulSetServiceAndPDB(t *testing.T) {
	objs := committed(t)
	sets := ofType[*appsv1.StatefulSet](objs)
	var headless []*corev1.Service
	for _, s := range ofType[*corev1.Service](objs) {
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			headless = append(headless, s)
		}
	}
	pdbs := ofType[*policyv1.PodDisruptionBudget](objs)
	if len(sets) != wantShards || len(headless) != wantShards || len(pdbs) != wantShards {
		t.Fatalf("%d StatefulSets, %d headless Services, %d PDBs; want %d of each", len(sets), len(headless), len(pdbs), wantShards)
	}
	for s := range wantShards {
		name := ShardName(s)
		set, svc, pdb := sets[s], headless[s], pdbs[s]
		if set.Name != name || svc.Name != name || pdb.Name != name {
			t.Errorf("shard %d: StatefulSet %s, Service %s, PDB %s; want %s", s, set.Name, svc.Name, pdb.Name, name)
		}
		if set.Spec.ServiceName != svc.Name {
			t.Errorf("%s: serviceName %q", name, set.Spec.ServiceName)
		}
		if set.Spec.Replicas == nil || int(*set.Spec.Replicas) != wantReplicas {
			t.Errorf("%s: replicas %v, want %d", name, set.Spec.Replicas, wantReplicas)
		}
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
			t.Errorf("%s: PDB maxUnavailable %v, want 1", name, pdb.Spec.MaxUnavailable)
		}
		checkSelectsOnlyShard(t, "PDB "+name, mustSelector(t, pdb.Spec.Selector), sets, s)
		checkSelectsOnlyShard(t, "Service "+name, labels.SelectorFromSet(svc.Spec.Selector), sets, s)
		checkSelectsOnlyShard(t, "StatefulSet "+name, mustSelector(t, set.Spec.Selector), sets, s)
		checkAntiAffinity(t, set)
	}
}

// checkSelectsOnlyShard checks that sel picks shard s's pods and no
// other shard's.
func checkSelectsOnlyShard(t *testing.T, what string, sel labels.Selector, sets []*appsv1.StatefulSet, s int) {
	t.Helper()
	for i, set := range sets {
		got := sel.Matches(labels.Set(set.Spec.Template.Labels))
		if got != (i == s) {
			t.Errorf("%s selects shard %d's pods: %v", what, i, got)
		}
	}
}

func checkAntiAffinity(t *testing.T, set *appsv1.StatefulSet) {
	t.Helper()
	a := set.Spec.Template.Spec.Affinity
	if a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Errorf("%s: no preferred pod anti-affinity", set.Name)
		return
	}
	term := a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	if term.TopologyKey != corev1.LabelHostname || !mustSelector(t, term.LabelSelector).Matches(labels.Set(set.Spec.Template.Labels)) {
		t.Errorf("%s: anti-affinity does not spread its own pods across nodes", set.Name)
	}
}

// servingPod is a serving workload's pod and the health service its
// readiness probe must ask.
type servingPod struct {
	name   string
	spec   corev1.PodSpec
	health string
}

func servingPods(objs []Object) []servingPod {
	var pods []servingPod
	for _, s := range ofType[*appsv1.StatefulSet](objs) {
		pods = append(pods, servingPod{s.Name, s.Spec.Template.Spec, ShardHealthService})
	}
	for _, d := range ofType[*appsv1.Deployment](objs) {
		pods = append(pods, servingPod{d.Name, d.Spec.Template.Spec, RootHealthService})
	}
	return pods
}

func TestServingContainersProbeGRPCHealth(t *testing.T) {
	pods := servingPods(committed(t))
	if len(pods) != wantShards+1 {
		t.Fatalf("%d serving workloads, want %d", len(pods), wantShards+1)
	}
	for _, p := range pods {
		for _, c := range p.spec.Containers {
			port := containerPort(c, "grpc")
			if port == 0 {
				t.Errorf("%s/%s: no grpc port", p.name, c.Name)
			}
			checkGRPCProbe(t, p.name+"/"+c.Name+" readiness", c.ReadinessProbe, port, p.health)
			// Liveness may ask the server's overall health ("") instead.
			checkGRPCProbe(t, p.name+"/"+c.Name+" liveness", c.LivenessProbe, port, p.health, "")
			checkGracePeriod(t, p, c)
			checkMountsReadOnly(t, p.name, c)
		}
	}
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// checkGRPCProbe checks that p asks the gRPC health of one of services
// on port.
func checkGRPCProbe(t *testing.T, what string, p *corev1.Probe, port int32, services ...string) {
	t.Helper()
	if p == nil || p.GRPC == nil {
		t.Errorf("%s: not a gRPC probe", what)
		return
	}
	if p.GRPC.Port != port {
		t.Errorf("%s: port %d, want %d", what, p.GRPC.Port, port)
	}
	if p.GRPC.Service == nil {
		t.Errorf("%s: no service", what)
		return
	}
	if s := *p.GRPC.Service; !slices.Contains(services, s) {
		t.Errorf("%s: service %q, want one of %q", what, s, services)
	}
}

// checkGracePeriod checks that a terminating server is given longer
// than its --drain.
func checkGracePeriod(t *testing.T, p servingPod, c corev1.Container) {
	t.Helper()
	d := 10 * time.Second // tandem's default --drain
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--drain="); ok {
			var err error
			if d, err = time.ParseDuration(v); err != nil {
				t.Fatalf("%s: %s: %v", p.name, a, err)
			}
		}
	}
	g := p.spec.TerminationGracePeriodSeconds
	if g == nil || time.Duration(*g)*time.Second <= d {
		t.Errorf("%s: terminationGracePeriodSeconds %v not above the drain %v", p.name, g, d)
	}
}

func checkMountsReadOnly(t *testing.T, name string, c corev1.Container) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("%s: serving container mounts %s read-write", name, m.MountPath)
		}
	}
}

// TestRootShardTargets checks the root's --shard-targets against the
// shards' headless Services: S targets, in shard order.
func TestRootShardTargets(t *testing.T) {
	objs := committed(t)
	deps := ofType[*appsv1.Deployment](objs)
	if len(deps) != 1 || len(deps[0].Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one root Deployment with one container")
	}
	var targets []string
	for _, a := range deps[0].Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--shard-targets="); ok {
			targets = strings.Split(v, ",")
		}
	}
	var want []string
	for _, s := range ofType[*corev1.Service](objs) {
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			want = append(want, fmt.Sprintf("dns:///%s.%s.svc.cluster.local:%d", s.Name, s.Namespace, s.Spec.Ports[0].Port))
		}
	}
	if len(targets) != wantShards || !slices.Equal(targets, want) {
		t.Errorf("--shard-targets %q\nwant %q", targets, want)
	}
	for s, tg := range targets {
		if !strings.HasPrefix(tg, "dns:///"+ShardName(s)+".") {
			t.Errorf("target %d is %s", s, tg)
		}
	}
}

func TestRootServiceAndAutoscaler(t *testing.T) {
	objs := committed(t)
	dep := ofType[*appsv1.Deployment](objs)[0]
	var root *corev1.Service
	for _, s := range ofType[*corev1.Service](objs) {
		if s.Name == RootServiceName {
			root = s
		}
	}
	if root == nil || root.Spec.Type != corev1.ServiceTypeClusterIP || root.Spec.Ports[0].Port != 7070 {
		t.Fatalf("no ClusterIP Service %s on 7070: %+v", RootServiceName, root)
	}
	if !labels.SelectorFromSet(root.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("Service %s does not select the root pods", root.Name)
	}
	hpas := ofType[*autoscalingv2.HorizontalPodAutoscaler](objs)
	if len(hpas) != 1 {
		t.Fatalf("%d HPAs", len(hpas))
	}
	h := hpas[0]
	if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != dep.Name {
		t.Errorf("HPA scales %v, not the root Deployment", h.Spec.ScaleTargetRef)
	}
	if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("HPA does not scale on CPU: %+v", h.Spec.Metrics)
	}
	if dep.Spec.Replicas != nil {
		t.Errorf("root Deployment sets replicas; the HPA owns them")
	}
}

// TestRefreshJobsIndexed checks the committed example Jobs: embed and
// build are Indexed with a per-index backoff limit, all carry the
// version, and they come in order.
func TestRefreshJobsIndexed(t *testing.T) {
	jobs := ofType[*batchv1.Job](decodeFile(t, jobsGolden()))
	if len(jobs) != 4 {
		t.Fatalf("%d Jobs, want 4", len(jobs))
	}
	wantCompletions := map[string]int32{StepEmbed: int32(Default().Parts), StepBuild: int32(wantShards)}
	for i, j := range jobs {
		step := Steps()[i]
		if j.Labels[LabelStep] != step || j.Labels[LabelVersion] != goldenVersion ||
			j.Spec.Template.Labels[LabelVersion] != goldenVersion {
			t.Errorf("Job %d (%s): labels %v, want step %s of %s", i, j.Name, j.Labels, step, goldenVersion)
		}
		n, indexed := wantCompletions[step]
		if !indexed {
			if j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion {
				t.Errorf("%s: Indexed", j.Name)
			}
			continue
		}
		if j.Spec.CompletionMode == nil || *j.Spec.CompletionMode != batchv1.IndexedCompletion {
			t.Errorf("%s: not Indexed", j.Name)
		}
		if j.Spec.BackoffLimitPerIndex == nil {
			t.Errorf("%s: no backoffLimitPerIndex", j.Name)
		}
		if j.Spec.Completions == nil || *j.Spec.Completions != n {
			t.Errorf("%s: completions %v, want %d", j.Name, j.Spec.Completions, n)
		}
		if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: restartPolicy %s", j.Name, j.Spec.Template.Spec.RestartPolicy)
		}
	}
}

// TestCronJobMayRunJobs checks that the CronJob runs the orchestrator
// as a ServiceAccount bound to a Role that may create and watch Jobs.
func TestCronJobMayRunJobs(t *testing.T) {
	objs := committed(t)
	crons := ofType[*batchv1.CronJob](objs)
	if len(crons) != 1 {
		t.Fatalf("%d CronJobs", len(crons))
	}
	c := crons[0]
	if c.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %s", c.Spec.ConcurrencyPolicy)
	}
	pod := c.Spec.JobTemplate.Spec.Template.Spec
	if pod.Containers[0].Args[0] != "orchestrate" || pod.Containers[0].Command[0] != "tandem-k8s" {
		t.Errorf("CronJob runs %v %v", pod.Containers[0].Command, pod.Containers[0].Args)
	}
	sa := pod.ServiceAccountName
	if len(ofType[*corev1.ServiceAccount](objs)) != 1 || ofType[*corev1.ServiceAccount](objs)[0].Name != sa {
		t.Errorf("ServiceAccount %q is not rendered", sa)
	}
	roles := map[string]*rbacv1.Role{}
	for _, r := range ofType[*rbacv1.Role](objs) {
		roles[r.Name] = r
	}
	var granted []string
	for _, b := range ofType[*rbacv1.RoleBinding](objs) {
		if !bindsServiceAccount(b, sa, c.Namespace) || b.RoleRef.Kind != "Role" || roles[b.RoleRef.Name] == nil {
			continue
		}
		for _, r := range roles[b.RoleRef.Name].Rules {
			if slices.Contains(r.APIGroups, "batch") && slices.Contains(r.Resources, "jobs") {
				granted = append(granted, r.Verbs...)
			}
		}
	}
	for _, v := range []string{"create", "get", "watch"} {
		if !slices.Contains(granted, v) {
			t.Errorf("ServiceAccount %s may not %s jobs (granted %v)", sa, v, granted)
		}
	}
}

func bindsServiceAccount(b *rbacv1.RoleBinding, name, namespace string) bool {
	for _, s := range b.Subjects {
		if s.Kind == "ServiceAccount" && s.Name == name && s.Namespace == namespace {
			return true
		}
	}
	return false
}

// TestVolumesUseConfiguredClaims checks every volume against the
// claims of Default() and that only publish writes snapshots.
func TestVolumesUseConfiguredClaims(t *testing.T) {
	d := Default()
	claims := []string{d.SnapshotsClaim, d.ModelsClaim, d.DataClaim}
	var pods []corev1.PodSpec
	for _, p := range servingPods(committed(t)) {
		pods = append(pods, p.spec)
	}
	for _, j := range ofType[*batchv1.Job](decodeFile(t, jobsGolden())) {
		pods = append(pods, j.Spec.Template.Spec)
		for _, m := range j.Spec.Template.Spec.Containers[0].VolumeMounts {
			if m.MountPath == SnapshotsPath && (m.ReadOnly != (j.Labels[LabelStep] != StepPublish)) {
				t.Errorf("%s mounts /snapshots readOnly=%v", j.Name, m.ReadOnly)
			}
		}
	}
	for _, p := range pods {
		for _, v := range p.Volumes {
			if v.PersistentVolumeClaim != nil && !slices.Contains(claims, v.PersistentVolumeClaim.ClaimName) {
				t.Errorf("volume %s uses claim %s", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
	}
}
