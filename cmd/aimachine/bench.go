package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/bench"
)

// Bounds of one bench run.
const (
	maxBenchDuration    = 10 * time.Minute // per level
	maxBenchConcurrency = 256              // vLLM's default max_num_seqs
)

type benchFlags struct {
	infraFlags
	h       hostFlags
	conc    string
	dur     time.Duration
	maxReq  int
	maxTok  int
	json    bool
	reports string
}

func newBenchCmd(a *app) *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench [VM] [flags]",
		Short: "load-test a deployed VM's vLLM and Ollama (throughput, TTFT, ITL) and write bench.json, bench.md, bench.png",
		Long: `Measures vLLM and each listed Ollama model from this machine, through the VM's SSH connection:
request and output token throughput, TTFT, TPOT and ITL (P50/P95/P99) per concurrency level, with
the names vllm bench serve prints. Writes bench.json, bench.md and bench.png into
<reports>/<vm>-bench-<time>/. Each level is bounded in time (--duration, plus the requests in
flight) and requests (--max-requests). Ctrl-C stops it and keeps the finished levels.`,
		Example: `  aimachine bench vm-llm-aimachine
  aimachine bench vm-llm-aimachine --concurrency 1,8,32 --duration 1m
  aimachine bench vm-llm-aimachine --json | jq '.results[] | {backend, max_concurrency, output_throughput}'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.resolve(args); err != nil {
				return err
			}
			levels, err := parseLevels(f.conc)
			if err != nil {
				return usageErrorf("", "--concurrency %q: %v", f.conc, err)
			}
			if f.dur <= 0 || f.dur > maxBenchDuration {
				return usageErrorf("", "--duration %s: want more than 0 and at most %s per level", f.dur, maxBenchDuration)
			}
			if f.maxReq < 1 || f.maxTok < 1 {
				return usageErrorf("", "--max-requests and --max-tokens must be at least 1")
			}
			return exitOf(runBench(cmd.Context(), &f, levels, a.stdout, a.stderr))
		},
	}
	f.addCatalog(cmd)
	fs := cmd.Flags()
	f.h.addSSH(fs)
	fs.StringVar(&f.conc, "concurrency", "1,4,16", "comma-separated concurrency `LEVELS` (clients sending back to back)")
	fs.DurationVar(&f.dur, "duration", 30*time.Second, "how long each level runs (at most 10m)")
	fs.IntVar(&f.maxReq, "max-requests", 1000, "at most this many requests per level")
	fs.IntVar(&f.maxTok, "max-tokens", 128, "output tokens per request")
	fs.BoolVar(&f.json, "json", false, "print bench.json on stdout instead of the table")
	addReports(fs, &f.reports)
	return cmd
}

func runBench(ctx context.Context, f *benchFlags, levels []int, stdout, stderr io.Writer) int {
	cat, err := catalog.LoadValid(f.catalog)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	cfg := bench.Config{Concurrency: levels, Duration: f.dur, MaxRequests: f.maxReq, Request: bench.Request{MaxTokens: f.maxTok},
		Progress: func(msg string) { fmt.Fprintln(stderr, "… "+msg) }}
	res, err := provision.Bench(ctx, cat, f.vm, f.h.options(), cfg)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	st := styleFor(stderr)
	if len(res.Levels) == 0 {
		fmt.Fprintf(stderr, "%s interrupted before any level finished: nothing written\n", st.failed())
		return 130
	}
	dir := filepath.Join(f.reports, f.vm+"-bench-"+res.Started.Format("20060102T150405Z"))
	files, werr := bench.Write(dir, f.vm, res)
	if f.json {
		writeJSON(stdout, res)
	} else {
		fmt.Fprint(stdout, bench.Table(res))
	}
	if werr != nil {
		fmt.Fprintf(stderr, "%s bench report not written: %v\n", st.failed(), werr)
		return 1
	}
	for _, p := range files {
		fmt.Fprintln(stderr, "wrote "+p)
	}
	failed := 0
	for _, l := range res.Levels {
		failed += l.Failed
	}
	switch {
	case res.Interrupted:
		fmt.Fprintf(stderr, "%s interrupted (Ctrl-C or SIGTERM): the report holds the levels finished before\n", st.failed())
		return 130
	case failed > 0:
		fmt.Fprintf(stderr, "%s %d requests failed (see the errors in %s)\n", st.failed(), failed, filepath.Join(dir, bench.SummaryFile))
		return 1
	}
	fmt.Fprintf(stderr, "%s %d levels measured on %s\n", st.ok(), len(res.Levels), f.vm)
	return 0
}

func parseLevels(s string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxBenchConcurrency {
			return nil, fmt.Errorf("want comma-separated integers from 1 to %d", maxBenchConcurrency)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}
