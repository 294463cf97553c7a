package data_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/sim"
)

// smallDir simulates a small valid data directory.
func smallDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := sim.Generate(context.Background(), config.Default(), sim.Options{Dir: dir, Scale: "tiny", Seed: 2, Users: 30}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rewrite applies edit to every row of a table and writes it back.
func rewrite[T any](t *testing.T, dir, table string, edit func(rows []T) []T) {
	t.Helper()
	rows, err := data.ReadAll[T](dir, table)
	if err != nil {
		t.Fatal(err)
	}
	rows = edit(rows)
	w, err := data.Create[T](dir, table, data.FormatParquet)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateAcceptsSimulatedData(t *testing.T) {
	dir := smallDir(t)
	rows, err := data.Validate(dir, data.SchemaOf(config.Default()), data.ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := data.ReadManifest(dir)
	for _, table := range data.Tables {
		if rows[table] != m.Rows[table] {
			t.Errorf("%s: validated %d rows, manifest says %d", table, rows[table], m.Rows[table])
		}
	}
	rows, err = data.Validate(dir, data.SchemaOf(config.Default()), data.ValidateOptions{SkipCandidates: true})
	if err != nil || rows[data.TableCandidates] != 0 {
		t.Errorf("SkipCandidates: %v, %d candidate rows", err, rows[data.TableCandidates])
	}
}

// TestValidateNamesTheProblem breaks one thing at a time and wants the
// file, the row and the column in the error.
func TestValidateNamesTheProblem(t *testing.T) {
	for _, c := range []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		want    string
	}{
		{"unknown surface in requests", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableRequests, func(r []data.Request) []data.Request { r[3].Surface = "moon"; return r })
		}, `requests.parquet: row 3: column "surface"`},
		{"view type of another surface", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableRequests, func(r []data.Request) []data.Request {
				for i := range r {
					if r[i].Surface == "related" {
						r[i].ViewType = "grid"
						return r
					}
				}
				t.Fatal("no related request")
				return r
			})
		}, `column "view_type"`},
		{"query topic on home_feed", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableRequests, func(r []data.Request) []data.Request {
				for i := range r {
					if r[i].Surface == "home_feed" {
						r[i].QueryTopic = 2
						return r
					}
				}
				return r
			})
		}, `column "query_topic"`},
		{"narrow content embedding", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableItems, func(r []data.Item) []data.Item { r[5].ContentEmb = r[5].ContentEmb[:7]; return r })
		}, `items.parquet: row 5: column "content_emb": bad value: width 7, schema says 32`},
		{"duplicate user", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableUsers, func(r []data.User) []data.User { r[4].UserID = r[2].UserID; return r })
		}, `users.parquet: row 4: column "user_id"`},
		{"ad that is not an item", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableAds, func(r []data.Ad) []data.Ad { r[0].AdID = 1 << 40; return r })
		}, `ads.parquet: row 0: column "ad_id"`},
		{"unknown product", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableAds, func(r []data.Ad) []data.Ad { r[1].Product = "video"; return r })
		}, `ads.parquet: row 1: column "product"`},
		{"event of an unknown item", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableEvents, func(r []data.Event) []data.Event { r[9].ItemID = 1 << 40; return r })
		}, `events.parquet: row 9: column "item_id"`},
		{"events out of order", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableEvents, func(r []data.Event) []data.Event { r[7], r[8] = r[8], r[7]; return r })
		}, `events.parquet: row 8: column "ts_ms"`},
		{"impression of an unknown request", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableImpressions, func(r []data.Impression) []data.Impression { r[2].RequestID = 1 << 40; return r })
		}, `impressions.parquet: row 2: column "request_id"`},
		{"candidate of an unknown ad", func(t *testing.T, dir string) {
			rewrite(t, dir, data.TableCandidates, func(r []data.Candidate) []data.Candidate { r[11].AdID = 1 << 40; return r })
		}, `candidates.parquet: row 11: column "ad_id"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := smallDir(t)
			c.corrupt(t, dir)
			_, err := data.Validate(dir, data.SchemaOf(config.Default()), data.ValidateOptions{})
			var re *data.RowError
			if err == nil || !errors.As(err, &re) || !errors.Is(err, data.ErrBadValue) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a RowError containing %q", err, c.want)
			}
		})
	}
}

func TestValidateNeedsTheCatalog(t *testing.T) {
	dir := smallDir(t)
	os.Remove(filepath.Join(dir, "users.parquet"))
	if _, err := data.Validate(dir, data.SchemaOf(config.Default()), data.ValidateOptions{}); !errors.Is(err, data.ErrNoTable) {
		t.Fatalf("missing users table: err = %v", err)
	}
	// Optional tables may be absent.
	dir = smallDir(t)
	for _, table := range []string{"events", "requests", "impressions", "candidates"} {
		os.Remove(filepath.Join(dir, table+".parquet"))
	}
	if _, err := data.Validate(dir, data.SchemaOf(config.Default()), data.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
}
