package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/tandemml/tandem/internal/atomicfile"
)

// plotCurves draws queries/s (log scale) against recall@k, one line with
// a marker per measured ef for every library and thread count, the way
// ann-benchmarks plots them, and writes it to path as PNG.
func plotCurves(path string, rep *report) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %d base, %d queries, dim %d\n%s, k=%d, M=%d, efConstruction=%d", rep.Dataset, rep.Base, rep.Queries, rep.Dim, rep.Metric, rep.K, rep.M, rep.EfC)
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = "recall@" + strconv.Itoa(rep.K)
	p.Y.Label.Text = "queries/s"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = ticks125{}
	p.Add(plotter.NewGrid())
	i := 0
	for _, l := range rep.Libraries {
		var ths []int
		for _, pt := range l.Points {
			if !slices.Contains(ths, pt.Threads) {
				ths = append(ths, pt.Threads)
			}
		}
		for _, th := range ths {
			var xys plotter.XYs
			for _, pt := range l.Points {
				if pt.Threads == th && pt.QPS > 0 && !math.IsNaN(pt.Recall) {
					xys = append(xys, plotter.XY{X: pt.Recall, Y: pt.QPS})
				}
			}
			if len(xys) == 0 {
				continue
			}
			slices.SortFunc(xys, func(a, b plotter.XY) int { return int(math.Copysign(1, a.X-b.X)) })
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("plot %s: %w", path, err)
			}
			c := plotutil.Color(i)
			line.Color, points.Color = c, c
			line.Width = vg.Points(1.5)
			points.Shape = plotutil.Shape(i)
			if th != 1 {
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			p.Add(line, points)
			p.Legend.Add(fmt.Sprintf("%s, %d thread(s)", l.Name, th), line, points)
			i++
		}
	}
	if i == 0 {
		return fmt.Errorf("plot %s: no measured points", path)
	}
	p.Legend.Left = true
	p.Legend.Top = false
	c := vgimg.NewWith(vgimg.UseWH(8*vg.Inch, 5.5*vg.Inch), vgimg.UseDPI(96))
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&b); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { _, err := w.Write(b.Bytes()); return err }); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ticks125 labels 1, 2 and 5 times every power of ten of a log axis.
type ticks125 struct{}

func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo && v <= hi {
				out = append(out, plot.Tick{Value: v, Label: tickLabel(v)})
			}
		}
	}
	return out
}

func tickLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
