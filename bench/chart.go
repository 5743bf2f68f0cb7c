package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/offcrypt/offcrypt/cmd/handshake-delay/experiment"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// charts collects what the suites measured, for -chart: the throughput of
// every side against callers, one figure per engine and one panel per
// operation, and the delay experiment's handshakes. A nil *charts collects
// nothing.
type charts struct {
	figures []*figure // throughput, in the order the suites ran
	delay   []experiment.Result
}

// A figure is one SVG file: a panel per operation.
type figure struct {
	file   string // "throughput-soft.svg"
	title  string
	panels []*panel
}

// A panel is one operation's sides: offcrypt and the references measured
// beside it in the same run.
type panel struct {
	title string
	sides []*side
}

// A side is one line: its rate at each number of callers.
type side struct {
	name      string
	reference bool // measured as the baseline offcrypt is compared with
	pts       plotter.XYs
}

// addRate records that side, a reference or offcrypt, did rate operations
// per second with callers concurrent callers, in panel (an operation) of
// the figure for engine.
func (c *charts) addRate(engine, title, panelTitle, sideName string, reference bool, callers int, rate float64) {
	if c == nil {
		return
	}
	file := "throughput-" + engine + ".svg"
	i := slices.IndexFunc(c.figures, func(f *figure) bool { return f.file == file })
	if i < 0 {
		c.figures = append(c.figures, &figure{file: file, title: title})
		i = len(c.figures) - 1
	}
	f := c.figures[i]
	j := slices.IndexFunc(f.panels, func(p *panel) bool { return p.title == panelTitle })
	if j < 0 {
		f.panels = append(f.panels, &panel{title: panelTitle})
		j = len(f.panels) - 1
	}
	p := f.panels[j]
	k := slices.IndexFunc(p.sides, func(s *side) bool { return s.name == sideName })
	if k < 0 {
		p.sides = append(p.sides, &side{name: sideName, reference: reference})
		k = len(p.sides) - 1
	}
	s := p.sides[k]
	s.pts = append(s.pts, plotter.XY{X: float64(callers), Y: rate})
}

// addDelay records one run of the delay experiment.
func (c *charts) addDelay(r experiment.Result) {
	if c == nil {
		return
	}
	c.delay = append(c.delay, r)
}

// write writes every chart that has data into dir and returns the files'
// names.
func (c *charts) write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, f := range c.figures {
		if err := f.write(filepath.Join(dir, f.file)); err != nil {
			return files, fmt.Errorf("%s: %w", f.file, err)
		}
		files = append(files, f.file)
	}
	if len(c.delay) > 0 {
		const file = "delay-handshakes.svg"
		if err := writeDelay(filepath.Join(dir, file), c.delay); err != nil {
			return files, fmt.Errorf("%s: %w", file, err)
		}
		files = append(files, file)
	}
	return files, nil
}

// panelColumns is how many panels a figure puts side by side.
const panelColumns = 3

func (f *figure) write(path string) error {
	cols := min(len(f.panels), panelColumns)
	rows := (len(f.panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, p := range f.panels {
		pl, err := p.plot()
		if err != nil {
			return fmt.Errorf("%s: %w", p.title, err)
		}
		grid[i/cols][i%cols] = pl
	}
	const titleHeight = 10 * vg.Millimeter
	width, height := vg.Length(cols)*90*vg.Millimeter, vg.Length(rows)*75*vg.Millimeter+titleHeight
	img := vgsvg.New(width, height)
	dc := draw.New(img)
	heading := draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, 13),
		Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YTop}
	dc.FillText(heading, vg.Point{X: width / 2, Y: height - 2*vg.Millimeter}, f.title)
	dc.Max.Y -= titleHeight
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: 4 * vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for c, pl := range grid[r] {
			if pl != nil {
				pl.Draw(canvases[r][c])
			}
		}
	}
	return saveSVG(path, img)
}

// plot draws a panel: ops/s from zero against callers on a log2 axis whose
// ticks are the callers measured; offcrypt solid, the references dashed.
func (p *panel) plot() (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.title
	pl.X.Label.Text = "callers"
	pl.Y.Label.Text = "ops/s"
	pl.Y.Min = 0
	pl.X.Scale = plot.LogScale{}
	pl.Legend.Top = false
	pl.Legend.Left = true
	pl.Legend.XOffs = 2 * vg.Millimeter
	pl.Legend.YOffs = 2 * vg.Millimeter
	var ticks []plot.Tick
	dashes := 1
	for i, s := range p.sides {
		slices.SortFunc(s.pts, func(a, b plotter.XY) int { return int(a.X - b.X) })
		for _, pt := range s.pts {
			if !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == pt.X }) {
				ticks = append(ticks, plot.Tick{Value: pt.X, Label: strconv.Itoa(int(pt.X))})
			}
			pl.Y.Max = max(pl.Y.Max, pt.Y*1.15)
		}
		line, points, err := plotter.NewLinePoints(s.pts)
		if err != nil {
			return nil, err
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		line.Width = vg.Points(1.5)
		if s.reference {
			line.Dashes = plotutil.Dashes(dashes)
			dashes++
		}
		pl.Add(line, points)
		pl.Legend.Add(s.name, line, points)
	}
	pl.X.Tick.Marker = plot.ConstantTicks(ticks)
	// One caller has no room on a log axis without a margin either side.
	if len(ticks) > 0 {
		lo, hi := ticks[0].Value, ticks[0].Value
		for _, t := range ticks {
			lo, hi = min(lo, t.Value), max(hi, t.Value)
		}
		pl.X.Min, pl.X.Max = lo/1.3, hi*1.3
	}
	pl.Add(plotter.NewGrid())
	return pl, nil
}

// writeDelay draws each delay run's handshakes, slowest last: the time each
// one took against its rank, as a share of the run's handshakes.
func writeDelay(path string, runs []experiment.Result) error {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("TLS 1.3 handshakes, %v added to every signature: async against stacked", runs[0].Delay)
	pl.X.Label.Text = "handshakes done (share of the run's, fastest first)"
	pl.Y.Label.Text = "time of each handshake (s)"
	pl.X.Min, pl.X.Max, pl.Y.Min = 0, 1, 0
	pl.Legend.Top, pl.Legend.Left = true, true
	pl.Legend.XOffs, pl.Legend.YOffs = 3*vg.Millimeter, -3*vg.Millimeter
	for i, r := range runs {
		lat := slices.Clone(r.Handshakes)
		slices.Sort(lat)
		pts := make(plotter.XYs, len(lat))
		for j, d := range lat {
			pts[j] = plotter.XY{X: float64(j+1) / float64(len(lat)), Y: d.Seconds()}
			pl.Y.Max = max(pl.Y.Max, d.Seconds()*1.3) // room for the legend
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		line.Width = vg.Points(1.5)
		pl.Add(line, points)
		pl.Legend.Add(fmt.Sprintf("%s: %d handshakes, engine limit %d, median %v", r.Mode, r.N, r.MaxInFlight, r.Handshake50.Round(time.Millisecond)), line, points)
	}
	pl.Add(plotter.NewGrid())
	img := vgsvg.New(180*vg.Millimeter, 110*vg.Millimeter)
	pl.Draw(draw.New(img))
	return saveSVG(path, img)
}

func saveSVG(path string, img *vgsvg.Canvas) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = img.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
