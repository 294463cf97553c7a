package movielens

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tandemml/tandem/data"
)

// SurfaceHomeFeed is the one surface of MovieLens events, and ViewTypeGrid
// its one view type.
const (
	SurfaceHomeFeed = "home_feed"
	ViewTypeGrid    = "grid"
)

// Genres is the fixed, sorted genre list of MovieLens. An item's Category is
// the index here of its first listed genre and its ContentEmb is a multi-hot
// over this list, so the embedding width is len(Genres) = 20.
var Genres = []string{
	"(no genres listed)",
	"Action",
	"Adventure",
	"Animation",
	"Children",
	"Comedy",
	"Crime",
	"Documentary",
	"Drama",
	"Fantasy",
	"Film-Noir",
	"Horror",
	"IMAX",
	"Musical",
	"Mystery",
	"Romance",
	"Sci-Fi",
	"Thriller",
	"War",
	"Western",
}

// EmbDim is the width of an item's ContentEmb: one entry per genre.
const EmbDim = 20

// Ad constants. MovieLens has no advertisers, products or bids.
const (
	ProductStandard = "standard"
	DefaultBid      = 1
)

// File names read by Load. links.csv is not read.
const (
	FileMovies  = "movies.csv"
	FileRatings = "ratings.csv"
	FileTags    = "tags.csv"
)

// LongClickRating is the lowest rating that counts as a long click; lower
// ratings are plain clicks.
const LongClickRating = 4.0

// Dataset is MovieLens mapped onto tandem's tables.
type Dataset struct {
	// Items holds every movie, ascending by ItemID, all of kind data.KindAd.
	Items []data.Item
	// Ads holds every movie again as an ad, in the order of Items.
	Ads []data.Ad
	// Users holds every user with a rating or tag, ascending by UserID.
	Users []data.User
	// Events holds ratings and tags, sorted by (user_id, ts_ms, item_id,
	// action) with ties (a user tagging a movie twice in one second) kept
	// in file order.
	Events []data.Event
}

var (
	moviesHeader  = []string{"movieId", "title", "genres"}
	ratingsHeader = []string{"userId", "movieId", "rating", "timestamp"}
	tagsHeader    = []string{"userId", "movieId", "tag", "timestamp"}
)

// genreIndex maps a genre name to its index in Genres.
var genreIndex = func() map[string]int {
	m := make(map[string]int, len(Genres))
	for i, g := range Genres {
		m[g] = i
	}
	return m
}()

// movie is one parsed row of movies.csv.
type movie struct {
	id       int64
	category int32
	genres   []int // indexes into Genres, in file order, no repeats
}

// rating is one parsed row of ratings.csv.
type rating struct {
	user, movie int64
	rating      float64
	tsMs        int64
}

// tag is one parsed row of tags.csv (the tag text is not kept).
type tag struct {
	user, movie int64
	tsMs        int64
}

// Load reads movies.csv, ratings.csv and tags.csv from dir (the unpacked
// ml-latest-small or another ml-latest release with the same columns) and
// maps them onto tandem's tables. A rating or tag of a movie missing from
// movies.csv is an error.
func Load(dir string) (*Dataset, error) {
	var movies []movie
	if err := readFile(dir, FileMovies, func(r io.Reader) (err error) {
		movies, err = parseMovies(r)
		return err
	}); err != nil {
		return nil, err
	}
	known := make(map[int64]bool, len(movies))
	for _, m := range movies {
		known[m.id] = true
	}
	var ratings []rating
	if err := readFile(dir, FileRatings, func(r io.Reader) (err error) {
		ratings, err = parseRatings(r, known)
		return err
	}); err != nil {
		return nil, err
	}
	var tags []tag
	if err := readFile(dir, FileTags, func(r io.Reader) (err error) {
		tags, err = parseTags(r, known)
		return err
	}); err != nil {
		return nil, err
	}
	return build(movies, ratings, tags), nil
}

// readFile opens dir/name and passes it to parse.
func readFile(dir, name string, parse func(io.Reader) error) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return fmt.Errorf("movielens: open %s: %w", name, err)
	}
	defer f.Close()
	return parse(f)
}

// build assembles the Dataset from parsed rows.
func build(movies []movie, ratings []rating, tags []tag) *Dataset {
	slices.SortFunc(movies, func(a, b movie) int { return cmp.Compare(a.id, b.id) })
	d := &Dataset{
		Items: make([]data.Item, len(movies)),
		Ads:   make([]data.Ad, len(movies)),
	}
	for i, m := range movies {
		emb := make([]float32, EmbDim)
		for _, g := range m.genres {
			emb[g] = 1
		}
		d.Items[i] = data.Item{ItemID: m.id, Kind: data.KindAd, Category: m.category, ContentEmb: emb}
		d.Ads[i] = data.Ad{
			AdID: m.id,
			// Each movie is its own campaign, so a model's campaign
			// embedding is a per-movie id embedding (MovieLens has no
			// advertisers; all share advertiser 0).
			Campaign:         m.id,
			Category:         m.category,
			Product:          ProductStandard,
			Bid:              DefaultBid,
			EligibleSurfaces: []string{SurfaceHomeFeed},
			Active:           true,
		}
	}

	d.Events = make([]data.Event, 0, len(ratings)+len(tags))
	for _, r := range ratings {
		action := data.ActionClick
		if r.rating >= LongClickRating {
			action = data.ActionLongClick
		}
		d.Events = append(d.Events, data.Event{UserID: r.user, TsMs: r.tsMs, ItemID: r.movie, Action: action, Surface: SurfaceHomeFeed})
	}
	for _, t := range tags {
		d.Events = append(d.Events, data.Event{UserID: t.user, TsMs: t.tsMs, ItemID: t.movie, Action: data.ActionSave, Surface: SurfaceHomeFeed})
	}
	slices.SortStableFunc(d.Events, func(a, b data.Event) int {
		return cmp.Or(
			cmp.Compare(a.UserID, b.UserID),
			cmp.Compare(a.TsMs, b.TsMs),
			cmp.Compare(a.ItemID, b.ItemID),
			strings.Compare(a.Action, b.Action),
		)
	})

	for i, e := range d.Events {
		if i == 0 || e.UserID != d.Events[i-1].UserID {
			d.Users = append(d.Users, data.User{
				UserID:        e.UserID,
				Country:       "unknown",
				Device:        "unknown",
				AgeBucket:     "unknown",
				PretrainedEmb: []float32{},
			})
		}
	}
	return d
}

// csvFile reads one CSV file with a fixed header, reporting errors as
// "movielens: FILE: line N: column "NAME": ...".
type csvFile struct {
	name   string
	header []string
	r      *csv.Reader
	rec    []string
	line   int
}

func newCSVFile(r io.Reader, name string, header []string) *csvFile {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(header)
	cr.ReuseRecord = true
	return &csvFile{name: name, header: header, r: cr}
}

// errorf formats an error about the current line.
func (f *csvFile) errorf(format string, args ...any) error {
	return fmt.Errorf("movielens: %s: line %d: "+format, append([]any{f.name, f.line}, args...)...)
}

// colErr wraps err as an error about column col of the current line.
func (f *csvFile) colErr(col int, err error) error {
	return f.errorf("column %q: %w", f.header[col], err)
}

// next reads the next record into f.rec. It returns io.EOF at the end; the
// header is checked on the first call.
func (f *csvFile) next() error {
	first := f.line == 0
	for {
		rec, err := f.r.Read()
		if err != nil {
			if err == io.EOF {
				if first {
					return fmt.Errorf("movielens: %s: empty file, want header %s", f.name, strings.Join(f.header, ","))
				}
				return io.EOF
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return fmt.Errorf("movielens: %s: line %d: %w", f.name, pe.Line, pe.Err)
			}
			return fmt.Errorf("movielens: read %s: %w", f.name, err)
		}
		f.rec = rec
		f.line, _ = f.r.FieldPos(0)
		if !first {
			return nil
		}
		first = false
		for i, want := range f.header {
			got := rec[i]
			if i == 0 {
				got = strings.TrimPrefix(got, "\ufeff") // byte order mark
			}
			if got != want {
				return f.errorf("header column %d is %q, want %q", i+1, got, want)
			}
		}
	}
}

// int64Col parses column col as a base-10 int64 >= 0.
func (f *csvFile) int64Col(col int) (int64, error) {
	v, err := strconv.ParseInt(f.rec[col], 10, 64)
	if err != nil {
		return 0, f.colErr(col, err)
	}
	if v < 0 {
		return 0, f.colErr(col, fmt.Errorf("negative value %d", v))
	}
	return v, nil
}

// tsCol parses column col, Unix seconds, as milliseconds.
func (f *csvFile) tsCol(col int) (int64, error) {
	v, err := f.int64Col(col)
	if err != nil {
		return 0, err
	}
	if v > math.MaxInt64/1000 {
		return 0, f.colErr(col, fmt.Errorf("timestamp %d out of range", v))
	}
	return v * 1000, nil
}

// movieCol parses column col as the id of a movie in known.
func (f *csvFile) movieCol(col int, known map[int64]bool) (int64, error) {
	v, err := f.int64Col(col)
	if err != nil {
		return 0, err
	}
	if !known[v] {
		return 0, f.colErr(col, fmt.Errorf("movie %d not in %s", v, FileMovies))
	}
	return v, nil
}

// parseMovies parses movies.csv.
func parseMovies(r io.Reader) ([]movie, error) {
	f := newCSVFile(r, FileMovies, moviesHeader)
	var out []movie
	seen := map[int64]int{}
	for {
		if err := f.next(); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		id, err := f.int64Col(0)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[id]; dup {
			return nil, f.colErr(0, fmt.Errorf("movie %d repeats line %d", id, prev))
		}
		seen[id] = f.line
		m := movie{id: id}
		for g := range strings.SplitSeq(f.rec[2], "|") {
			gi, ok := genreIndex[g]
			if !ok {
				return nil, f.colErr(2, fmt.Errorf("unknown genre %q", g))
			}
			if !slices.Contains(m.genres, gi) {
				m.genres = append(m.genres, gi)
			}
		}
		m.category = int32(m.genres[0])
		out = append(out, m)
	}
}

// parseRatings parses ratings.csv, whose movies must be in known.
func parseRatings(r io.Reader, known map[int64]bool) ([]rating, error) {
	f := newCSVFile(r, FileRatings, ratingsHeader)
	var out []rating
	for {
		if err := f.next(); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		var x rating
		var err error
		if x.user, err = f.int64Col(0); err != nil {
			return nil, err
		}
		if x.movie, err = f.movieCol(1, known); err != nil {
			return nil, err
		}
		if x.rating, err = strconv.ParseFloat(f.rec[2], 64); err != nil {
			return nil, f.colErr(2, err)
		}
		if !(x.rating >= 0 && x.rating <= 5) {
			return nil, f.colErr(2, fmt.Errorf("rating %s outside [0, 5]", f.rec[2]))
		}
		if x.tsMs, err = f.tsCol(3); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
}

// parseTags parses tags.csv, whose movies must be in known.
func parseTags(r io.Reader, known map[int64]bool) ([]tag, error) {
	f := newCSVFile(r, FileTags, tagsHeader)
	var out []tag
	for {
		if err := f.next(); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		var x tag
		var err error
		if x.user, err = f.int64Col(0); err != nil {
			return nil, err
		}
		if x.movie, err = f.movieCol(1, known); err != nil {
			return nil, err
		}
		if x.tsMs, err = f.tsCol(3); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
}
