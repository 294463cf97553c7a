package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kinds maps each apiVersion/kind the manifests may hold to a new
// object of its type.
var kinds = map[string]func() Object{
	"v1/Namespace":                             func() Object { return &corev1.Namespace{} },
	"v1/Service":                               func() Object { return &corev1.Service{} },
	"v1/ServiceAccount":                        func() Object { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                             func() Object { return &corev1.ConfigMap{} },
	"apps/v1/StatefulSet":                      func() Object { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":                       func() Object { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":            func() Object { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":   func() Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"batch/v1/CronJob":                         func() Object { return &batchv1.CronJob{} },
	"batch/v1/Job":                             func() Object { return &batchv1.Job{} },
	"rbac.authorization.k8s.io/v1/Role":        func() Object { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding": func() Object { return &rbacv1.RoleBinding{} },
}

// splitDocs splits a YAML stream at its "---" lines.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// decodeStrict decodes one document into the type its apiVersion and
// kind name; a field that type lacks, or a duplicate key, is an error.
func decodeStrict(doc []byte) (Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("unexpected apiVersion/kind %s/%s", tm.APIVersion, tm.Kind)
	}
	// Like the API server: duplicate keys, unknown fields and fields in
	// the wrong case are errors (encoding/json alone ignores case).
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	o := newObj()
	strict, err := sigsjson.UnmarshalStrict(j, o, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %w", tm.Kind, errors.Join(strict...))
	}
	return o, nil
}

// decodeFile strictly decodes every document of a committed file.
func decodeFile(t *testing.T, path string) []Object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []Object
	for i, d := range splitDocs(b) {
		o, err := decodeStrict(d)
		if err != nil {
			t.Fatalf("%s document %d: %v", path, i+1, err)
		}
		objs = append(objs, o)
	}
	return objs
}

// committed decodes every committed manifest, in file order.
func committed(t *testing.T) []Object {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(renderedDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no rendered manifests (%v)", err)
	}
	var objs []Object
	for _, p := range paths {
		objs = append(objs, decodeFile(t, p)...)
	}
	return objs
}

// TestCommittedDecodeStrictly decodes every committed document into its
// k8s.io/api type with unknown fields disallowed.
func TestCommittedDecodeStrictly(t *testing.T) {
	objs := committed(t)
	objs = append(objs, decodeFile(t, jobsGolden())...)
	for _, o := range objs {
		if o.GetName() == "" {
			t.Errorf("%T without a name", o)
		}
		if _, ok := o.(*corev1.Namespace); !ok && o.GetNamespace() != Default().Namespace {
			t.Errorf("%T %s in namespace %q", o, o.GetName(), o.GetNamespace())
		}
	}
}

// TestStrictDecodeRejectsUnknownFields makes sure the check above can
// fail: a misspelt or invented field is an error.
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	good := "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  clusterIP: None\n"
	if _, err := decodeStrict([]byte(good)); err != nil {
		t.Fatalf("valid document: %v", err)
	}
	for _, bad := range []string{
		strings.Replace(good, "clusterIP", "clusterIp", 1),
		good + "  bogus: 1\n",
		good + "  clusterIP: None\n",
		"apiVersion: v1\nkind: Gadget\nmetadata:\n  name: x\n",
	} {
		if _, err := decodeStrict([]byte(bad)); err == nil {
			t.Errorf("decoded without error:\n%s", bad)
		}
	}
}
