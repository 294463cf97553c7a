package plots

import (
	"bufio"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/tandemml/tandem/metric"
)

// DPI is the resolution of the PNG files.
const DPI = 96

// Chart sizes; at DPI they are 576×576 and 768×480 pixels.
const (
	ReliabilitySize = 6 * vg.Inch
	CurvesWidth     = 8 * vg.Inch
	CurvesHeight    = 5 * vg.Inch
)

// Point is a point of a series.
type Point struct {
	X, Y float64
}

// Reliability writes to path a PNG reliability diagram of bins: each
// bin's MeanY (the observed rate) against its MeanP (the mean
// prediction), joined in order, over the diagonal y = x. Both axes run
// from 0 to a little above the largest value. Bins with Count 0 are
// skipped; it is an error when none is left or a mean is not finite.
func Reliability(path, title string, bins []metric.ReliabilityBin) error {
	var xys plotter.XYs
	var n int
	top := 0.0
	for i, b := range bins {
		if b.Count <= 0 {
			continue
		}
		if !finite(b.MeanP) || !finite(b.MeanY) {
			return fmt.Errorf("plots: bin %d has MeanP %v, MeanY %v", i, b.MeanP, b.MeanY)
		}
		xys = append(xys, plotter.XY{X: b.MeanP, Y: b.MeanY})
		n += b.Count
		top = max(top, b.MeanP, b.MeanY)
	}
	if len(xys) == 0 {
		return errors.New("plots: no reliability bins with a count")
	}
	if top <= 0 {
		top = 1
	}
	top *= 1.05

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "mean predicted probability"
	p.Y.Label.Text = "observed positive rate"
	p.X.Min, p.X.Max = 0, top
	p.Y.Min, p.Y.Max = 0, top
	p.Add(plotter.NewGrid())

	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: top, Y: top}})
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	diag.Color = color.Gray{Y: 128}
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}

	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	line.Color = plotutil.Color(0)
	points.Color = plotutil.Color(0)
	points.Shape = draw.CircleGlyph{}
	points.Radius = vg.Points(3)

	p.Add(diag, line, points)
	p.Legend.Add("perfect calibration", diag)
	p.Legend.Add(fmt.Sprintf("%d bins, %d predictions", len(xys), n), line, points)
	p.Legend.Top, p.Legend.Left = true, true
	return save(p, path, ReliabilitySize, ReliabilitySize)
}

// Curves writes to path a PNG line chart of the named series, drawn and
// listed in the legend in sorted name order, on axes fitted to the data.
// A series of one point is drawn as a point. It is an error when there
// is no series, a series is empty or a coordinate is not finite.
func Curves(path, title, xLabel, yLabel string, series map[string][]Point) error {
	if len(series) == 0 {
		return errors.New("plots: no series")
	}
	names := make([]string, 0, len(series))
	for name := range series {
		names = append(names, name)
	}
	slices.Sort(names)

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	for i, name := range names {
		pts := series[name]
		if len(pts) == 0 {
			return fmt.Errorf("plots: series %q is empty", name)
		}
		xys := make(plotter.XYs, len(pts))
		for j, q := range pts {
			if !finite(q.X) || !finite(q.Y) {
				return fmt.Errorf("plots: series %q point %d is (%v, %v)", name, j, q.X, q.Y)
			}
			xys[j] = plotter.XY{X: q.X, Y: q.Y}
		}
		c := plotutil.Color(i)
		if len(xys) == 1 {
			s, err := plotter.NewScatter(xys)
			if err != nil {
				return fmt.Errorf("plots: series %q: %w", name, err)
			}
			s.Color = c
			s.Shape = draw.CircleGlyph{}
			p.Add(s)
			p.Legend.Add(name, s)
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plots: series %q: %w", name, err)
		}
		l.Color = c
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
		p.Add(l)
		p.Legend.Add(name, l)
	}
	p.Legend.Top = true
	return save(p, path, CurvesWidth, CurvesHeight)
}

// save renders p as a w×h PNG and writes it to path, by way of a
// temporary file in the same directory that is renamed into place, so that
// path is never left half written. The temporary file is created before
// rendering, so an unwritable directory fails fast.
func save(p *plot.Plot, path string, w, h vg.Length) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(DPI))
	p.Draw(draw.New(c))
	bw := bufio.NewWriter(f)
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(bw); err != nil {
		return fmt.Errorf("plots: writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("plots: writing %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
