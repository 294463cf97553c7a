package refresh

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/shard"
	"github.com/tandemml/tandem/snapshot"
	"github.com/tandemml/tandem/store"
)

// taskOptions are the options every task test shares: one thread, so that
// the index build is deterministic and comparable with Run's.
func taskOptions(db, version string) Options {
	return Options{Data: dataDir, ModelDir: modelDir, DBDir: db, Version: version, Threads: 1, CheckQueries: 50}
}

func openStore(t *testing.T, url string) store.Store {
	t.Helper()
	if url == "" {
		url = t.TempDir()
	}
	st, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func manifest(t *testing.T, db, v string) snapshot.Manifest {
	t.Helper()
	s, err := snapshot.Open(db, v)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.Manifest
}

func embedAll(t *testing.T, st store.Store, parts int) {
	t.Helper()
	for i := range parts {
		if err := Embed(context.Background(), taskOptions("", ""), st, i, parts); err != nil {
			t.Fatalf("embed part %d of %d: %v", i, parts, err)
		}
	}
}

// TestTasksMatchRun: three embed parts, one whole-route build and publish
// write the same ad table, item table and blobs as Run, byte for byte.
func TestTasksMatchRun(t *testing.T) {
	ctx := context.Background()
	runDB, taskDB := t.TempDir(), t.TempDir()
	if _, err := Run(ctx, taskOptions(runDB, "run")); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"", "mem://"} {
		st := openStore(t, url)
		embedAll(t, st, 3)
		if err := Build(ctx, taskOptions("", ""), st, 0, 1); err != nil {
			t.Fatal(err)
		}
		names, _ := st.List(ctx, "")
		if want := []string{"embed/0-of-3", "embed/1-of-3", "embed/2-of-3", "index/all/0-of-1"}; !slices.Equal(names, want) {
			t.Fatalf("store %q holds %v, want %v", url, names, want)
		}
		v := "tasks" + strings.TrimSuffix(url, "://")
		rep, err := Publish(ctx, taskOptions(taskDB, v), st)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Routes) != 1 || rep.Routes[0].Recall10 < 0.9 {
			t.Fatalf("report %+v", rep)
		}
		want, got := manifest(t, runDB, "run"), manifest(t, taskDB, v)
		if !maps.Equal(got.Sums, want.Sums) || !maps.Equal(got.Counts, want.Counts) {
			t.Fatalf("store %q: the tasks' version differs from Run's:\n%v\n%v", url, got.Sums, want.Sums)
		}
		if len(got.Shards) != 0 || !slices.Equal(got.Routes, want.Routes) || got.OutDim != want.OutDim {
			t.Fatalf("manifest %+v", got)
		}
		if cur, _ := snapshot.Current(taskDB); cur != v {
			t.Fatalf("CURRENT is %q, want %s", cur, v)
		}
	}
}

// TestTasksRerunPart: a damaged artifact (a part killed mid-write to a
// store without atomic writes) is refused by its checksum, naming it, and
// rerunning the part fixes it; a rerun of publish under its version is a
// success.
func TestTasksRerunPart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, "")
	embedAll(t, st, 2)
	good, err := st.Get(ctx, "embed/1-of-2")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{good[:len(good)/2], []byte("garbage"), append(append([]byte{}, good[:100]...), append([]byte{good[100] ^ 1}, good[101:]...)...)} {
		if err := st.Put(ctx, "embed/1-of-2", bad); err != nil {
			t.Fatal(err)
		}
		err := Build(ctx, taskOptions("", ""), st, 0, 1)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "embed/1-of-2") {
			t.Fatalf("build over a damaged part: %v", err)
		}
	}
	if err := Embed(ctx, taskOptions("", ""), st, 1, 2); err != nil {
		t.Fatal(err)
	}
	if b, _ := st.Get(ctx, "embed/1-of-2"); string(b) != string(good) {
		t.Fatal("the rerun part differs from the first run's")
	}
	if err := Build(ctx, taskOptions("", ""), st, 0, 1); err != nil {
		t.Fatal(err)
	}
	idx, _ := st.Get(ctx, "index/all/0-of-1")
	st.Put(ctx, "index/all/0-of-1", idx[:len(idx)-1])
	db := t.TempDir()
	if _, err := Publish(ctx, taskOptions(db, "v1"), st); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "index/all/0-of-1") {
		t.Fatalf("publish over a damaged index: %v", err)
	}
	if err := Build(ctx, taskOptions("", ""), st, 0, 1); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := Publish(ctx, taskOptions(db, "v1"), st); err != nil {
			t.Fatal(err)
		}
	}
	if cur, _ := snapshot.Current(db); cur != "v1" {
		t.Fatalf("CURRENT is %q", cur)
	}
}

// TestTasksFourShards: build with four shards places every indexed ad on
// exactly the shard package shard names, each shard's index decodes, and
// publish writes the shard blobs (building the whole-route index itself).
func TestTasksFourShards(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, "mem://")
	embedAll(t, st, 2)
	const S = 4
	for s := range S {
		if err := Build(ctx, taskOptions("", ""), st, s, S); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int64]int{}
	graphs := map[int][]byte{}
	for s := range S {
		b, err := st.Get(ctx, IndexName("all", s, S))
		if err != nil {
			t.Fatal(err)
		}
		p, err := unmarshalIndex(b)
		if err != nil {
			t.Fatal(err)
		}
		g, err := index.Unmarshal(p.Graph)
		if err != nil || g.Len() != len(p.IDs) {
			t.Fatalf("shard %d: %v nodes for %d ids: %v", s, g, len(p.IDs), err)
		}
		for _, id := range p.IDs {
			if want, _ := shard.Of(id, S); want != s {
				t.Fatalf("ad %d is on shard %d, shard.Of says %d", id, s, want)
			}
			seen[id]++
		}
		graphs[s] = p.Graph
	}
	db := t.TempDir()
	if _, err := Publish(ctx, taskOptions(db, "v1"), st); err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Open(db, "v1")
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if !slices.Equal(snap.Manifest.Shards, []int{S}) {
		t.Fatalf("manifest shards %v", snap.Manifest.Shards)
	}
	ids, err := snap.Blob(snapshot.RouteBlob("all", "ids"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids)/8 != len(seen) {
		t.Fatalf("the whole index has %d ads, the shards %d distinct", len(ids)/8, len(seen))
	}
	for i := 0; i < len(ids); i += 8 {
		id := int64(uint64(ids[i]) | uint64(ids[i+1])<<8 | uint64(ids[i+2])<<16 | uint64(ids[i+3])<<24 |
			uint64(ids[i+4])<<32 | uint64(ids[i+5])<<40 | uint64(ids[i+6])<<48 | uint64(ids[i+7])<<56)
		if seen[id] != 1 {
			t.Fatalf("ad %d is on %d shards, want 1", id, seen[id])
		}
	}
	for s := range S {
		b, err := snap.Blob(snapshot.ShardBlob("all", S, s, "index"))
		if err != nil || string(b) != string(graphs[s]) {
			t.Fatalf("shard %d blob: %d bytes, %v", s, len(b), err)
		}
		if _, err := snap.Blob(snapshot.ShardBlob("all", S, s, "ids")); err != nil {
			t.Fatal(err)
		}
	}
	// A shard count with a shard missing is refused, naming it.
	if err := st.Delete(ctx, IndexName("all", 2, S)); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(ctx, taskOptions(db, "v2"), st); err == nil || !strings.Contains(err.Error(), "index/all/2-of-4") {
		t.Fatalf("publish without shard 2: %v", err)
	}
}

func TestTasksMissingPart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, "mem://")
	if err := Build(ctx, taskOptions("", ""), st, 0, 1); err == nil || !strings.Contains(err.Error(), "no embed parts") {
		t.Fatalf("build over an empty store: %v", err)
	}
	for _, i := range []int{0, 2} {
		if err := Embed(ctx, taskOptions("", ""), st, i, 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := Build(ctx, taskOptions("", ""), st, 0, 1); err == nil || !strings.Contains(err.Error(), "embed/1-of-3") {
		t.Fatalf("build without part 1: %v", err)
	}
	if _, err := Publish(ctx, taskOptions(t.TempDir(), "v1"), st); err == nil || !strings.Contains(err.Error(), "embed/1-of-3") {
		t.Fatalf("publish without part 1: %v", err)
	}
	for _, c := range [][2]int{{3, 3}, {-1, 3}, {0, 0}} {
		if err := Embed(ctx, taskOptions("", ""), st, c[0], c[1]); err == nil {
			t.Errorf("embed part %d of %d was accepted", c[0], c[1])
		}
		if err := Build(ctx, taskOptions("", ""), st, c[0], c[1]); err == nil {
			t.Errorf("build shard %d of %d was accepted", c[0], c[1])
		}
	}
}

func TestTaskIndex(t *testing.T) {
	t.Setenv(JobIndexEnv, "2")
	if i, err := TaskIndex("--part", ""); i != 2 || err != nil {
		t.Fatalf("from the environment: %d, %v", i, err)
	}
	if i, err := TaskIndex("--part", "1"); i != 1 || err != nil {
		t.Fatalf("the flag over the environment: %d, %v", i, err)
	}
	t.Setenv(JobIndexEnv, "")
	if _, err := TaskIndex("--shard", ""); err == nil || !strings.Contains(err.Error(), "--shard is not given and JOB_COMPLETION_INDEX is not set") {
		t.Fatalf("neither: %v", err)
	}
	t.Setenv(JobIndexEnv, "x")
	if _, err := TaskIndex("--part", ""); err == nil || !strings.Contains(err.Error(), "JOB_COMPLETION_INDEX") {
		t.Fatalf("a bad index: %v", err)
	}
}

func TestPartRange(t *testing.T) {
	for _, rows := range []int{0, 1, 5, 4096, 4097} {
		for _, parts := range []int{1, 2, 3, 7} {
			next := 0
			for i := range parts {
				lo, hi := PartRange(rows, i, parts)
				if lo != next || hi < lo {
					t.Fatalf("rows %d part %d of %d: [%d, %d) after %d", rows, i, parts, lo, hi, next)
				}
				next = hi
			}
			if next != rows {
				t.Fatalf("rows %d in %d parts cover %d", rows, parts, next)
			}
		}
	}
}

func FuzzArtifacts(f *testing.F) {
	e := (&embedPart{Part: 0, Parts: 1, Lo: 0, Hi: 1, Ads: 1, Routes: []string{"all"}, Tasks: 1, OutDim: 2, IDs: []int64{7}, Vectors: []float32{1, 2}}).marshal()
	x := (&indexPart{Route: "all", Shards: 1, Graph: []byte{1, 2}, IDs: []int64{7}}).marshal()
	f.Add(e)
	f.Add(x)
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := unmarshalEmbed(b); err == nil {
			if string(p.marshal()) != string(b) {
				t.Fatal("embed artifact does not round-trip")
			}
		}
		if p, err := unmarshalIndex(b); err == nil {
			if string(p.marshal()) != string(b) {
				t.Fatal("index artifact does not round-trip")
			}
		}
	})
}
