package movielens

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandemml/tandem/data"
)

// datasetDir returns the ml-latest-small directory, or skips the test when
// it is absent: the data set is not part of the repository.
func datasetDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TANDEM_MOVIELENS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data", "ml-latest-small")
	}
	if _, err := os.Stat(filepath.Join(dir, FileRatings)); err != nil {
		t.Skipf("MovieLens latest-small not found at %s (set TANDEM_MOVIELENS_DIR to the unpacked ml-latest-small directory): %v", dir, err)
	}
	return dir
}

func TestLoadLatestSmall(t *testing.T) {
	d, err := Load(datasetDir(t))
	if err != nil {
		t.Fatal(err)
	}
	const movies, ratings, tags, users = 9742, 100836, 3683, 610
	if len(d.Items) != movies || len(d.Ads) != movies {
		t.Errorf("%d items, %d ads; want %d", len(d.Items), len(d.Ads), movies)
	}
	if len(d.Users) != users {
		t.Errorf("%d users, want %d", len(d.Users), users)
	}
	if len(d.Events) != ratings+tags {
		t.Errorf("%d events, want %d", len(d.Events), ratings+tags)
	}
	counts := map[string]int{}
	for i, e := range d.Events {
		counts[e.Action]++
		if e.Surface != SurfaceHomeFeed {
			t.Fatalf("event %d surface %q", i, e.Surface)
		}
		if i > 0 {
			p := d.Events[i-1]
			if p.UserID > e.UserID || p.UserID == e.UserID && p.TsMs > e.TsMs {
				t.Fatalf("events %d, %d not sorted by (user_id, ts_ms)", i-1, i)
			}
		}
	}
	if counts[data.ActionSave] != tags || counts[data.ActionLongClick] != 48580 ||
		counts[data.ActionClick] != ratings-48580 {
		t.Errorf("action counts %v, want save %d, long_click 48580, click %d", counts, tags, ratings-48580)
	}
	for i, u := range d.Users {
		if i > 0 && d.Users[i-1].UserID >= u.UserID {
			t.Fatalf("users %d, %d not ascending", i-1, i)
		}
	}
	if u := d.Users[0]; u.UserID != 1 || u.Country != "unknown" || u.PretrainedEmb == nil || len(u.PretrainedEmb) != 0 {
		t.Errorf("first user %+v", u)
	}
	// Toy Story (1995): Adventure|Animation|Children|Comedy|Fantasy.
	it := d.Items[0]
	if it.ItemID != 1 || it.Kind != data.KindAd || it.Category != 2 || len(it.ContentEmb) != EmbDim {
		t.Errorf("item 1 = %+v", it)
	}
	var hot []string
	for g, v := range it.ContentEmb {
		if v == 1 {
			hot = append(hot, Genres[g])
		}
	}
	if want := []string{"Adventure", "Animation", "Children", "Comedy", "Fantasy"}; !slices.Equal(hot, want) {
		t.Errorf("item 1 genres %v, want %v", hot, want)
	}
	if a := d.Ads[0]; a.AdID != 1 || a.Category != 2 || a.Bid != 1 || !a.Active ||
		!slices.Equal(a.EligibleSurfaces, []string{SurfaceHomeFeed}) || a.Product != ProductStandard {
		t.Errorf("ad 1 = %+v", a)
	}
}

func TestGenres(t *testing.T) {
	if len(Genres) != EmbDim {
		t.Fatalf("len(Genres) = %d, EmbDim = %d", len(Genres), EmbDim)
	}
	if !slices.IsSorted(Genres) {
		t.Error("Genres not sorted")
	}
}

const (
	goodMovies  = "movieId,title,genres\r\n1,\"Toy Story, The (1995)\",Adventure|Animation\r\n2,Heat (1995),(no genres listed)\r\n"
	goodRatings = "userId,movieId,rating,timestamp\n5,2,3.5,100\n5,1,4.0,100\n3,1,0.5,7\n"
	goodTags    = "userId,movieId,tag,timestamp\n5,1,\"funny, sad\",100\n"
)

// writeDir writes the three files into a temporary directory.
func writeDir(t *testing.T, movies, ratings, tags string) string {
	t.Helper()
	dir := t.TempDir()
	for name, s := range map[string]string{FileMovies: movies, FileRatings: ratings, FileTags: tags} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadSmall(t *testing.T) {
	d, err := Load(writeDir(t, goodMovies, goodRatings, goodTags))
	if err != nil {
		t.Fatal(err)
	}
	want := []data.Event{
		{UserID: 3, TsMs: 7000, ItemID: 1, Action: data.ActionClick, Surface: SurfaceHomeFeed},
		{UserID: 5, TsMs: 100000, ItemID: 1, Action: data.ActionLongClick, Surface: SurfaceHomeFeed},
		{UserID: 5, TsMs: 100000, ItemID: 1, Action: data.ActionSave, Surface: SurfaceHomeFeed},
		{UserID: 5, TsMs: 100000, ItemID: 2, Action: data.ActionClick, Surface: SurfaceHomeFeed},
	}
	if !slices.Equal(d.Events, want) {
		t.Errorf("events\n%v\nwant\n%v", d.Events, want)
	}
	if len(d.Users) != 2 || d.Users[0].UserID != 3 || d.Users[1].UserID != 5 {
		t.Errorf("users %+v", d.Users)
	}
	if len(d.Items) != 2 || d.Items[1].Category != 0 || d.Items[1].ContentEmb[0] != 1 || d.Items[0].Category != 2 {
		t.Errorf("items %+v", d.Items)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name                  string
		movies, ratings, tags string
		want                  string
	}{
		{"rating syntax", goodMovies, "userId,movieId,rating,timestamp\n1,1,4.0,5\n1,1,x,5\n", goodTags,
			`movielens: ratings.csv: line 3: column "rating": `},
		{"rating range", goodMovies, "userId,movieId,rating,timestamp\n1,1,4.0,5\n1,1,6,5\n", goodTags,
			`movielens: ratings.csv: line 3: column "rating": rating 6 outside [0, 5]`},
		{"unknown movie", goodMovies, "userId,movieId,rating,timestamp\n1,1,4.0,5\n\n1,99,4,5\n", goodTags,
			`movielens: ratings.csv: line 4: column "movieId": movie 99 not in movies.csv`},
		{"negative user", goodMovies, "userId,movieId,rating,timestamp\n-1,1,4.0,5\n", goodTags,
			`movielens: ratings.csv: line 2: column "userId": negative value -1`},
		{"timestamp", goodMovies, "userId,movieId,rating,timestamp\n1,1,4.0,1e9\n", goodTags,
			`movielens: ratings.csv: line 2: column "timestamp": `},
		{"timestamp overflow", goodMovies, "userId,movieId,rating,timestamp\n1,1,4.0,9223372036854776\n", goodTags,
			`movielens: ratings.csv: line 2: column "timestamp": timestamp 9223372036854776 out of range`},
		{"field count", goodMovies, "userId,movieId,rating,timestamp\n1,1,4.0\n", goodTags,
			`movielens: ratings.csv: line 2: wrong number of fields`},
		{"header", goodMovies, "user,movieId,rating,timestamp\n", goodTags,
			`movielens: ratings.csv: line 1: header column 1 is "user", want "userId"`},
		{"empty", goodMovies, "", goodTags, `movielens: ratings.csv: empty file`},
		{"bad quote", "movieId,title,genres\n1,Heat \"1995\",Drama\n", goodRatings, goodTags,
			`movielens: movies.csv: line 2: `},
		{"unknown genre", "movieId,title,genres\n1,a,Drama|Polka\n", goodRatings, goodTags,
			`movielens: movies.csv: line 2: column "genres": unknown genre "Polka"`},
		{"empty genres", "movieId,title,genres\n1,a,\n", goodRatings, goodTags,
			`movielens: movies.csv: line 2: column "genres": unknown genre ""`},
		{"duplicate movie", "movieId,title,genres\n1,a,Drama\n\"1\",b,War\n", goodRatings, goodTags,
			`movielens: movies.csv: line 3: column "movieId": movie 1 repeats line 2`},
		{"tag movie", goodMovies, goodRatings, "userId,movieId,tag,timestamp\n1,1,a,1\n1,3,b,2\n",
			`movielens: tags.csv: line 3: column "movieId": movie 3 not in movies.csv`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeDir(t, tc.movies, tc.ratings, tc.tags))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Load error = %v\nwant prefix %s", err, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	dir := writeDir(t, goodMovies, goodRatings, goodTags)
	if err := os.Remove(filepath.Join(dir, FileTags)); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "movielens: open tags.csv") || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("Load error = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzParseRatings(f *testing.F) {
	f.Add([]byte(goodRatings))
	f.Add([]byte("userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n"))
	f.Add([]byte("userId,movieId,rating,timestamp\n1,2,NaN,5\n"))
	f.Add([]byte("userId,movieId,rating,timestamp\n\"1\",\"2\",\"3\",\"4\"\n"))
	f.Add([]byte("\ufeffuserId,movieId,rating,timestamp\n1,1,5,0\n"))
	f.Add([]byte(""))
	f.Add([]byte("\"\n"))
	known := map[int64]bool{1: true, 2: true}
	f.Fuzz(func(t *testing.T, in []byte) {
		rs, err := parseRatings(bytes.NewReader(in), known)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "movielens: ratings.csv: ") {
				t.Errorf("error %q lacks file prefix", err)
			}
			return
		}
		for _, r := range rs {
			if !known[r.movie] || r.user < 0 || r.tsMs < 0 || r.tsMs%1000 != 0 || !(r.rating >= 0 && r.rating <= 5) {
				t.Errorf("bad rating %+v", r)
			}
		}
	})
}
