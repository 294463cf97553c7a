package refresh

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/sim"
	"github.com/tandemml/tandem/snapshot"
	"github.com/tandemml/tandem/train"
)

// A test binary started with these variables set runs one refresh and
// exits: the child that TestKilledRefreshLeavesLiveVersion kills.
const childEnv = "TANDEM_REFRESH_CHILD"

var dataDir, modelDir string

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		p := strings.Split(spec, "|")
		_, err := Run(context.Background(), Options{Data: p[0], ModelDir: p[1], DBDir: p[2], Version: p[3], Threads: 2, CheckQueries: 50})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "tandem-refresh-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		dataDir, modelDir = filepath.Join(dir, "data"), filepath.Join(dir, "models")
		if _, err := sim.Generate(context.Background(), config.Default(), sim.Options{Dir: dataDir, Scale: "tiny", Seed: 1, Workers: 2}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c := config.Default()
		c.Model.EmbedDim = 8
		c.Model.Seq.Dim = 16
		c.Model.Seq.Projection = 16
		c.Model.L1.User.Experts = 2
		c.Model.L1.User.ExpertDim = 32
		c.Model.L1.AdMLP = []int{32}
		c.Model.L1.OutDim = 16
		cfg, _, err := batch.DataConfig(dataDir, c, false)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := train.PublishInit(cfg, modelDir, 1); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func TestRefreshEndToEnd(t *testing.T) {
	db := t.TempDir()
	for i := range 3 {
		v := fmt.Sprintf("v%d", i+1)
		rep, err := Run(context.Background(), Options{Data: dataDir, ModelDir: modelDir, DBDir: db, Version: v, Threads: 2, CheckQueries: 50})
		if err != nil {
			t.Fatal(err)
		}
		if cur, _ := snapshot.Current(db); cur != v {
			t.Fatalf("CURRENT is %q after refreshing %s", cur, v)
		}
		if len(rep.Routes) != 1 || rep.Routes[0].Recall10 < 0.9 || rep.Routes[0].Ads == 0 {
			t.Fatalf("report %+v", rep)
		}
		if i == 2 && (len(rep.Removed) != 1 || rep.Removed[0] != "v1") {
			t.Fatalf("the third run removed %v, want [v1]", rep.Removed)
		}
	}
	s, err := snapshot.Open(db, "v3")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := s.Manifest
	if m.Counts["ads"] == 0 || m.Counts["items"] == 0 || len(m.Routes) != 1 || m.Routes[0] != "all" {
		t.Fatalf("manifest %+v", m)
	}
	blob, err := s.Blob("route/all/index")
	if err != nil {
		t.Fatal(err)
	}
	g, err := index.Unmarshal(blob)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := s.Blob("route/all/ids")
	if err != nil || len(ids) != 8*g.Len() {
		t.Fatalf("%d id bytes for %d indexed ads: %v", len(ids), g.Len(), err)
	}
	nonzero := 0
	s.Ads(func(a *snapshot.Ad) error {
		for _, v := range a.Vectors {
			if v != 0 {
				nonzero++
				break
			}
		}
		return nil
	})
	if nonzero < int(m.Counts["ads"])/2 {
		t.Fatalf("only %d of %d ads have vectors", nonzero, m.Counts["ads"])
	}
	if prev, _ := snapshot.Previous(db); prev != "v2" {
		t.Fatalf("previous is %q, want v2", prev)
	}
}

func TestRefreshRejectsBadInput(t *testing.T) {
	db := t.TempDir()
	if _, err := Run(context.Background(), Options{Data: filepath.Join(t.TempDir(), "none"), ModelDir: modelDir, DBDir: db}); err == nil {
		t.Error("a missing data directory was accepted")
	}
	if _, err := Run(context.Background(), Options{Data: dataDir, ModelDir: t.TempDir(), DBDir: db}); err == nil {
		t.Error("a model directory without CURRENT was accepted")
	}
	if _, err := Run(context.Background(), Options{Data: dataDir, ModelDir: modelDir, DBDir: db, Version: "../x"}); err == nil {
		t.Error("a version name with a slash was accepted")
	}
	if cur, _ := snapshot.Current(db); cur != "" {
		t.Errorf("a failed run made %q live", cur)
	}
}
