package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// WriteYAML writes objs as YAML documents separated by "---" lines.
// Each has its apiVersion and kind; the status a typed object carries
// (the cluster's to fill in) and an empty spec are left out.
func WriteYAML(w io.Writer, objs []Object) error {
	for i, o := range objs {
		b, err := MarshalYAML(o)
		if err != nil {
			return err
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// MarshalYAML is one object's YAML document, without its status.
func MarshalYAML(o Object) ([]byte, error) {
	gvk := o.GetObjectKind().GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return nil, fmt.Errorf("manifest: %T %q has no apiVersion or kind", o, o.GetName())
	}
	j, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("manifest: %s %q: %w", gvk.Kind, o.GetName(), err)
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if spec, ok := m["spec"].(map[string]any); ok && len(spec) == 0 {
		delete(m, "spec")
	}
	return yaml.Marshal(m)
}

// Component is the app.kubernetes.io/component label of o.
func Component(o Object) string { return o.GetLabels()[LabelComponent] }

// File is one rendered file: a component's objects, in render order.
type File struct {
	Name    string
	Objects []Object
}

// Files groups objs by component into COMPONENT.yaml files, in the
// order each component first appears.
func Files(objs []Object) []File {
	var files []File
	at := map[string]int{}
	for _, o := range objs {
		c := Component(o)
		i, ok := at[c]
		if !ok {
			i = len(files)
			at[c] = i
			files = append(files, File{Name: c + ".yaml"})
		}
		files[i].Objects = append(files[i].Objects, o)
	}
	return files
}
