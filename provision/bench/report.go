package bench

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Files written into the VM's report directory.
const (
	JSONFile    = "bench.json"
	SummaryFile = "bench.md"
	PlotFile    = "bench.png"
)

// Labels are the metric names `vllm bench serve` prints (with --metric-percentiles 50,95,99).
var Labels = []struct{ Label, Key string }{
	{"Successful requests", "completed"},
	{"Failed requests", "failed"},
	{"Benchmark duration (s)", "duration"},
	{"Total input tokens", "total_input_tokens"},
	{"Total generated tokens", "total_output_tokens"},
	{"Request throughput (req/s)", "request_throughput"},
	{"Output token throughput (tok/s)", "output_throughput"},
	{"Total Token throughput (tok/s)", "total_token_throughput"},
	{"Mean TTFT (ms)", "mean_ttft_ms"},
	{"P50 TTFT (ms)", "p50_ttft_ms"},
	{"P95 TTFT (ms)", "p95_ttft_ms"},
	{"P99 TTFT (ms)", "p99_ttft_ms"},
	{"Mean TPOT (ms)", "mean_tpot_ms"},
	{"Mean ITL (ms)", "mean_itl_ms"},
	{"P50 ITL (ms)", "p50_itl_ms"},
	{"P95 ITL (ms)", "p95_itl_ms"},
	{"P99 ITL (ms)", "p99_itl_ms"},
}

func (l Level) value(key string) string {
	b, _ := json.Marshal(l)
	var m map[string]any
	json.Unmarshal(b, &m)
	switch v := m[key].(type) {
	case float64:
		if v == float64(int64(v)) && !strings.Contains(key, "_ms") && !strings.Contains(key, "throughput") && key != "duration" {
			return fmt.Sprintf("%d", int64(v))
		}
		return fmt.Sprintf("%.2f", v)
	}
	return ""
}

// Table renders the result as the metric rows against one column per target and level.
func Table(r Result) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "metric\t")
	for _, l := range r.Levels {
		fmt.Fprintf(tw, "%s c=%d\t", l.Server, l.MaxConcurrency)
	}
	fmt.Fprintln(tw)
	for _, lb := range Labels {
		fmt.Fprintf(tw, "%s\t", lb.Label)
		for _, l := range r.Levels {
			fmt.Fprintf(tw, "%s\t", l.value(lb.Key))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	return b.String()
}

// Markdown is the summary file.
func Markdown(vm string, r Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark of %s\n\n", vm)
	fmt.Fprintf(&b, "Started %s; %s per level, at most %d requests per level, %d output tokens per request, closed loop (each client sends its next request when the previous one ends), measured from the machine running aimachine through the SSH connection.", r.Started.Format("2006-01-02 15:04:05 UTC"), r.PerLevel, r.MaxRequests, r.MaxTokens)
	if r.Interrupted {
		b.WriteString(" **Interrupted**: the levels below are those finished before Ctrl-C.")
	}
	b.WriteString("\n\n| metric |")
	for _, l := range r.Levels {
		fmt.Fprintf(&b, " %s %s, concurrency %d |", l.Server, l.Model, l.MaxConcurrency)
	}
	b.WriteString("\n|---|")
	for range r.Levels {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, lb := range Labels {
		fmt.Fprintf(&b, "| %s |", lb.Label)
		for _, l := range r.Levels {
			fmt.Fprintf(&b, " %s |", l.value(lb.Key))
		}
		b.WriteString("\n")
	}
	for _, l := range r.Levels {
		for _, e := range l.Errors {
			fmt.Fprintf(&b, "\nerror (%s, concurrency %d): %s\n", l.Server, l.MaxConcurrency, e)
		}
	}
	fmt.Fprintf(&b, "\n![throughput and latency against concurrency](%s)\n", PlotFile)
	return b.String()
}

// Write puts bench.json, bench.md and bench.png into dir.
func Write(dir, vm string, r Result) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	files := []string{filepath.Join(dir, JSONFile), filepath.Join(dir, SummaryFile), filepath.Join(dir, PlotFile)}
	if err := os.WriteFile(files[0], append(j, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(files[1], []byte(Markdown(vm, r)), 0o644); err != nil {
		return nil, err
	}
	if err := writePlot(files[2], vm, r); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	return files, nil
}

// writePlot draws output tokens/s (left) and P50/P99 TTFT and ITL (right) against
// concurrency, one line per target.
func writePlot(file, vm string, r Result) error {
	thr := plot.New()
	thr.Title.Text = "Output token throughput (" + vm + ")"
	thr.X.Label.Text = "concurrency"
	thr.Y.Label.Text = "tok/s"
	lat := plot.New()
	lat.Title.Text = "Latency"
	lat.X.Label.Text = "concurrency"
	lat.Y.Label.Text = "ms"
	palette := []color.Color{color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255}, color.RGBA{214, 39, 40, 255}}
	i := 0
	for _, name := range targetsOf(r) {
		var tp, ttft50, ttft99, itl50 plotter.XYs
		for _, l := range r.Levels {
			if l.Server+" "+l.Model != name {
				continue
			}
			x := float64(l.MaxConcurrency)
			tp = append(tp, plotter.XY{X: x, Y: l.OutputThrough})
			ttft50 = append(ttft50, plotter.XY{X: x, Y: l.P50TTFT})
			ttft99 = append(ttft99, plotter.XY{X: x, Y: l.P99TTFT})
			itl50 = append(itl50, plotter.XY{X: x, Y: l.P50ITL})
		}
		c := palette[i%len(palette)]
		i++
		if err := addLine(thr, tp, c, nil, name); err != nil {
			return err
		}
		if err := addLine(lat, ttft50, c, nil, name+" P50 TTFT"); err != nil {
			return err
		}
		if err := addLine(lat, ttft99, c, []vg.Length{vg.Points(4), vg.Points(2)}, name+" P99 TTFT"); err != nil {
			return err
		}
		if err := addLine(lat, itl50, c, []vg.Length{vg.Points(1), vg.Points(2)}, name+" P50 ITL"); err != nil {
			return err
		}
	}
	thr.Y.Min, lat.Y.Min = 0, 0
	thr.Legend.Top, lat.Legend.Top = true, true
	thr.Legend.Left, lat.Legend.Left = true, true
	const w, h = 12 * vg.Inch, 4.5 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{{thr, lat}}, tiles, dc)
	thr.Draw(canvases[0][0])
	lat.Draw(canvases[0][1])
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func addLine(p *plot.Plot, xys plotter.XYs, c color.Color, dashes []vg.Length, name string) error {
	if len(xys) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color, s.Color = c, c
	l.Dashes = dashes
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	return nil
}

func targetsOf(r Result) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range r.Levels {
		n := l.Server + " " + l.Model
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
