package gpu

import (
	"slices"
	"testing"

	"github.com/tandemml/tandem/engine"
)

// TestCompareLayers: on the stand-in every activation the device and the
// CPU engine both trace agrees, and the diff covers the whole tower.
func TestCompareLayers(t *testing.T) {
	c := loadCatalog(t)
	d, _ := open(t, Options{Buckets: []int{1, 8}})
	for _, r := range c.Routes {
		tw, err := d.NewUserTower(r.User)
		if err != nil {
			t.Fatal(err)
		}
		b := engine.RandomBatch(r.User.Dims(), 6, 0, false, 13)
		diffs, err := tw.CompareLayers(r.User, b)
		tw.Close()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ld := range diffs {
			names = append(names, ld.Name)
			if !(ld.Rel <= 1e-4) || ld.Rows == 0 {
				t.Errorf("route %s layer %s: rel %.3g over %d rows", r.Name, ld.Name, ld.Rel, ld.Rows)
			}
		}
		for _, want := range []string{"seq.tokens", "seq.position", "seq.layer.0.qkv", "seq.layer.0.ln1", "seq.layer.0.ffn1",
			"seq.layer.0.ln2", "seq.summary", "seq.pool", "seq.cross.combine", "seq.proj", "user.row", "head.0"} {
			if !slices.Contains(names, want) {
				t.Errorf("route %s: layer %s not compared (compared: %v)", r.Name, want, names)
			}
		}
		t.Logf("route %s: %d layers compared", r.Name, len(diffs))
	}
}

// TestDiffLayers: the padded device layout is mapped onto the CPU's
// stacked events, padding is ignored, and a changed value is found in the
// layer it was made in.
func TestDiffLayers(t *testing.T) {
	const L = 3
	lens := []int32{2, 0, 3}
	// Device: 3 contexts × L rows of 2 columns; padded rows hold junk.
	devSeq := make([]float32, 3*L*2)
	for i := range devSeq {
		devSeq[i] = 1e6
	}
	var cpuSeq []float32
	for c, l := range lens {
		for j := range int(l) {
			v := []float32{float32(10*c + j), float32(-c - j)}
			copy(devSeq[(c*L+j)*2:], v)
			cpuSeq = append(cpuSeq, v...)
		}
	}
	row := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	devRow := append(slices.Clone(row), 99, 99, 99) // a padded fourth context
	dev := map[string]traced{"seq.position": {3 * L, 2, devSeq}, "user.row": {4, 3, devRow}, "seq.layer.0.softmax": {1, 1, []float32{0}}}
	cpu := map[string]traced{"seq.position": {5, 2, cpuSeq}, "user.row": {3, 3, row}}
	order := []string{"seq.position", "seq.layer.0.softmax", "user.row"}
	got, err := diffLayers(order, dev, cpu, lens, L)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "seq.position" || got[0].Rows != 5 || got[0].MaxAbs != 0 || got[1].Rows != 3 || got[1].MaxAbs != 0 {
		t.Fatalf("identical layers: %+v", got)
	}
	devRow[4] += 0.5
	got, err = diffLayers(order, dev, cpu, lens, L)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].MaxAbs != 0 || got[1].MaxAbs != 0.5 || got[1].MaxRef != 9 || got[1].Rel != 0.5/9 {
		t.Fatalf("one changed value: %+v", got)
	}
	// Shape disagreements are errors naming the layer.
	cpu["user.row"] = traced{3, 2, row[:6]}
	if _, err := diffLayers(order, dev, cpu, lens, L); err == nil {
		t.Fatal("a column mismatch passed")
	}
	if _, err := diffLayers([]string{"x"}, dev, cpu, lens, L); err == nil {
		t.Fatal("nothing compared passed")
	}
}
