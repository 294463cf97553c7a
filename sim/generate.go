package sim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
)

// Options configure Generate. The zero value of each optional field gives
// its documented default.
type Options struct {
	// Dir receives the seven tables and manifest.json; created if missing.
	Dir string
	// Format of the tables (default parquet).
	Format data.Format
	// Scale names a config scale (default "demo").
	Scale string
	// Seed makes the data set; the same seed gives byte-identical files.
	Seed uint64
	// Users, when > 0, overrides the scale's user count (more users, more
	// impressions, same per-user behaviour).
	Users int
	// Workers simulating users in parallel (default GOMAXPROCS). Output is
	// identical for any worker count.
	Workers int
	// Progress, when set, is called with users done and total.
	Progress func(done, total int)
}

// chunkUsers is how many users a worker simulates per unit of work.
const chunkUsers = 32

// batchRows bounds the rows handed to a table writer at once.
const batchRows = 8192

// Generate simulates a data set into opts.Dir and returns its manifest. It
// streams: memory is the world plus a bounded number of users' timelines
// in flight, whatever the number of impressions.
func Generate(ctx context.Context, cfg *config.Config, opts Options) (*data.Manifest, error) {
	if opts.Scale == "" {
		opts.Scale = "demo"
	}
	if opts.Format == "" {
		opts.Format = data.FormatParquet
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Users < 0 {
		return nil, fmt.Errorf("simulate: users override %d is negative", opts.Users)
	}
	sc, sp, err := cfg.ScaleNamed(opts.Scale)
	if err != nil {
		return nil, err
	}
	if opts.Users > 0 {
		sc.Users = opts.Users
	}
	w, err := NewWorldScale(cfg, sc, sp, opts.Seed)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	// The manifest is written last and marks a complete data set: drop an
	// old one first so a failed run never pairs it with new tables.
	if err := os.Remove(filepath.Join(opts.Dir, data.ManifestFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	m := w.manifest(opts)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.Rows[data.TableItems], err = writeTable(opts, data.TableItems, w.NumItems(), w.itemRows); err != nil {
		return nil, err
	}
	if m.Rows[data.TableAds], err = writeTable(opts, data.TableAds, w.numAds, w.adRows); err != nil {
		return nil, err
	}
	if m.Rows[data.TableUsers], err = writeTable(opts, data.TableUsers, sc.Users, w.userRows); err != nil {
		return nil, err
	}
	if err := w.writeTimelines(ctx, opts, m); err != nil {
		return nil, err
	}
	if err := data.WriteManifest(opts.Dir, m); err != nil {
		return nil, err
	}
	return m, nil
}

// manifest returns the manifest a data set of this world would carry,
// without row counts.
func (w *World) manifest(opts Options) *data.Manifest {
	start := w.cfg.Start().UnixMilli()
	sp := w.split
	return &data.Manifest{
		Version: data.ManifestVersion, Source: "simulator", GroundTruth: true,
		SchemaHash: w.cfg.SchemaHash(), Format: opts.Format, Config: w.cfg.JSON(),
		Scale: opts.Scale, Seed: opts.Seed,
		HistoryStartMs:    start - int64(sp.HistoryDays)*dayMs,
		TrainStartMs:      start,
		ValidationStartMs: start + int64(sp.TrainDays)*dayMs,
		TestStartMs:       start + int64(sp.TrainDays+sp.ValidationDays)*dayMs,
		EndMs:             start + int64(sp.TrainDays+sp.ValidationDays+sp.TestDays)*dayMs,
		Rows:              map[string]int64{},
	}
}

// writeTable writes n rows made batch by batch by fill(dst, from, to).
func writeTable[T any](opts Options, table string, n int, fill func(dst []T, from, to int) []T) (int64, error) {
	wr, err := data.Create[T](opts.Dir, table, opts.Format)
	if err != nil {
		return 0, err
	}
	var buf []T
	for from := 0; from < n; from += batchRows {
		buf = fill(buf[:0], from, min(n, from+batchRows))
		if err := wr.Write(buf); err != nil {
			wr.Abort()
			return 0, err
		}
	}
	return int64(n), wr.Close()
}

func (w *World) itemRows(dst []data.Item, from, to int) []data.Item {
	for i := from; i < to; i++ {
		kind := data.KindOrganic
		if i < w.numAds {
			kind = data.KindAd
		}
		dst = append(dst, data.Item{
			ItemID: ItemID(i), Kind: kind, Category: w.itemCat[i],
			ContentEmb: w.contentEmb(make([]float32, 0, w.contentDim), i),
		})
	}
	return dst
}

func (w *World) adRows(dst []data.Ad, from, to int) []data.Ad {
	for i := from; i < to; i++ {
		var elig []string
		for s, sf := range w.cfg.Surfaces {
			if w.adElig[i]&(1<<s) != 0 {
				elig = append(elig, sf.Name)
			}
		}
		dst = append(dst, data.Ad{
			AdID: ItemID(i), Advertiser: int64(w.adAdv[i]), Campaign: int64(w.adCamp[i]),
			Category: w.itemCat[i], Product: w.cfg.Products[int(w.adProd[i])%len(w.cfg.Products)],
			Bid: w.adBid[i], QualityCreative: w.adQC[i], QualityLanding: w.adQL[i],
			EligibleSurfaces: elig, Active: w.adActive[i],
		})
	}
	return dst
}

func (w *World) userRows(dst []data.User, from, to int) []data.User {
	for u := from; u < to; u++ {
		// Profile draws use their own stream so they never shift latents.
		r := w.rng(tagUser, uint64(u)|1<<62)
		dst = append(dst, data.User{
			UserID: UserID(u), Country: countries[draw(r, countryCum)], Device: devices[draw(r, deviceCum)],
			AgeBucket: ageBuckets[draw(r, ageCum)], Activity: float32(logOnePlus(w.userRate[u])),
			AccountAgeDays: float32(int(r.ExpFloat64() * 400)),
			PretrainedEmb:  w.pretrainedEmb(make([]float32, 0, w.userDim), u),
		})
	}
	return dst
}

// timelineWriters are the four streamed tables.
type timelineWriters struct {
	events      data.Writer[data.Event]
	requests    data.Writer[data.Request]
	impressions data.Writer[data.Impression]
	candidates  data.Writer[data.Candidate]
}

// closers lists the writers that are open.
func (t *timelineWriters) closers() []interface {
	Close() error
	Abort() error
} {
	var out []interface {
		Close() error
		Abort() error
	}
	if t.events != nil {
		out = append(out, t.events)
	}
	if t.requests != nil {
		out = append(out, t.requests)
	}
	if t.impressions != nil {
		out = append(out, t.impressions)
	}
	if t.candidates != nil {
		out = append(out, t.candidates)
	}
	return out
}

// close finishes every table; abort drops them all (no file appears).
func (t *timelineWriters) close() error {
	var first error
	for _, c := range t.closers() {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (t *timelineWriters) abort() {
	for _, c := range t.closers() {
		c.Abort()
	}
}

func openTimelineWriters(opts Options) (*timelineWriters, error) {
	var t timelineWriters
	var err error
	if t.events, err = data.Create[data.Event](opts.Dir, data.TableEvents, opts.Format); err != nil {
		return nil, err
	}
	if t.requests, err = data.Create[data.Request](opts.Dir, data.TableRequests, opts.Format); err != nil {
		t.abort()
		return nil, err
	}
	if t.impressions, err = data.Create[data.Impression](opts.Dir, data.TableImpressions, opts.Format); err != nil {
		t.abort()
		return nil, err
	}
	if t.candidates, err = data.Create[data.Candidate](opts.Dir, data.TableCandidates, opts.Format); err != nil {
		t.abort()
		return nil, err
	}
	return &t, nil
}

type chunkJob struct {
	index int
	out   chan *[]userOut
}

// writeTimelines simulates users chunk by chunk on opts.Workers goroutines
// and writes the chunks in user order, numbering requests globally from 1.
// At most a few chunks per worker are in flight, so memory stays bounded.
func (w *World) writeTimelines(ctx context.Context, opts Options, m *data.Manifest) error {
	tw, err := openTimelineWriters(opts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	users := w.scale.Users
	nChunks := (users + chunkUsers - 1) / chunkUsers
	jobs := make(chan chunkJob, opts.Workers)
	order := make(chan chan *[]userOut, 2*opts.Workers)
	go func() {
		defer close(jobs)
		defer close(order)
		for i := range nChunks {
			j := chunkJob{index: i, out: make(chan *[]userOut, 1)}
			select {
			case order <- j.out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range opts.Workers {
		go func() {
			sc := w.newScratch()
			for j := range jobs {
				lo := j.index * chunkUsers
				hi := min(users, lo+chunkUsers)
				outs := make([]userOut, hi-lo)
				for u := lo; u < hi; u++ {
					w.simulateUser(u, sc, &outs[u-lo])
				}
				j.out <- &outs
			}
		}()
	}
	var done atomic.Int64
	nextID := int64(1)
	for c := range order {
		var outs *[]userOut
		select {
		case outs = <-c:
		case <-ctx.Done():
			tw.abort()
			return ctx.Err()
		}
		for i := range *outs {
			if err := tw.write(&(*outs)[i], &nextID, m); err != nil {
				cancel()
				tw.abort()
				return err
			}
		}
		n := done.Add(int64(len(*outs)))
		if opts.Progress != nil {
			opts.Progress(int(n), users)
		}
	}
	if err := ctx.Err(); err != nil {
		tw.abort()
		return err
	}
	return tw.close()
}

// write numbers one user's requests globally and writes its rows.
func (t *timelineWriters) write(o *userOut, nextID *int64, m *data.Manifest) error {
	base := *nextID
	for i := range o.requests {
		o.requests[i].RequestID += base
	}
	for i := range o.impressions {
		o.impressions[i].RequestID += base
	}
	for i := range o.candidates {
		o.candidates[i].RequestID += base
	}
	*nextID += int64(len(o.requests))
	if err := writeBatched(t.events, o.events); err != nil {
		return err
	}
	if err := writeBatched(t.requests, o.requests); err != nil {
		return err
	}
	if err := writeBatched(t.impressions, o.impressions); err != nil {
		return err
	}
	if err := writeBatched(t.candidates, o.candidates); err != nil {
		return err
	}
	m.Rows[data.TableEvents] += int64(len(o.events))
	m.Rows[data.TableRequests] += int64(len(o.requests))
	m.Rows[data.TableImpressions] += int64(len(o.impressions))
	m.Rows[data.TableCandidates] += int64(len(o.candidates))
	return nil
}

func writeBatched[T any](w data.Writer[T], rows []T) error {
	if len(rows) == 0 {
		return nil
	}
	return w.Write(rows)
}

func logOnePlus(x float64) float64 {
	return math.Log1p(x)
}
