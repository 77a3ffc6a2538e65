package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/bench"
)

func init() {
	register(command{
		name:    "bench",
		summary: "load-test a deployed VM's vLLM and Ollama (throughput, TTFT, ITL) and write bench.json, bench.md, bench.png",
		run:     runBench,
	})
}

// Bounds of one bench run.
const (
	maxBenchDuration    = 10 * time.Minute // per level
	maxBenchConcurrency = 256              // vLLM's default max_num_seqs
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("aimachine bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vm := fs.String("vm", "", "the catalog VM `NAME` (or id)")
	catPath := fs.String("catalog", defaultCatalog, "the infrastructure catalog `FILE`")
	conc := fs.String("concurrency", "1,4,16", "comma-separated concurrency `LEVELS` (clients sending back to back)")
	dur := fs.Duration("duration", 30*time.Second, "how long each level runs (at most 10m)")
	maxReq := fs.Int("max-requests", 1000, "at most this many requests per level")
	maxTok := fs.Int("max-tokens", 128, "output tokens per request")
	asJSON := fs.Bool("json", false, "print bench.json on stdout instead of the table")
	var h hostFlags
	h.registerSSH(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: aimachine bench --vm NAME [--concurrency 1,4,16] [--duration 30s] [--max-requests N] [--max-tokens N] [--catalog FILE] [--ssh-key FILE] [--known-hosts FILE] [--jump USER@HOST:PORT] [--json]")
		fmt.Fprintln(fs.Output(), "Measures vLLM and each listed Ollama model from this machine, through the VM's SSH connection: request and output token throughput, TTFT, TPOT and ITL (P50/P95/P99) per concurrency level, with the names vllm bench serve prints. Writes bench.json, bench.md and bench.png into reports/<vm>-bench-<time>/. Ctrl-C stops it and keeps the finished levels.")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 || *vm == "" {
		fmt.Fprintln(stderr, "aimachine bench: --vm NAME is required (hint: aimachine catalog validate lists the VMs)")
		return 2
	}
	levels, err := parseLevels(*conc)
	if err != nil {
		fmt.Fprintf(stderr, "aimachine bench: --concurrency %q: %v\n", *conc, err)
		return 2
	}
	if *dur <= 0 || *dur > maxBenchDuration {
		fmt.Fprintf(stderr, "aimachine bench: --duration %s: want more than 0 and at most %s per level\n", *dur, maxBenchDuration)
		return 2
	}
	if *maxReq < 1 || *maxTok < 1 {
		fmt.Fprintln(stderr, "aimachine bench: --max-requests and --max-tokens must be at least 1")
		return 2
	}
	cat, err := catalog.LoadValid(*catPath)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	cfg := bench.Config{Concurrency: levels, Duration: *dur, MaxRequests: *maxReq, Request: bench.Request{MaxTokens: *maxTok},
		Progress: func(msg string) { fmt.Fprintln(stderr, "… "+msg) }}
	res, err := provision.Bench(ctx, cat, *vm, h.options(), cfg)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	if len(res.Levels) == 0 {
		fmt.Fprintln(stderr, "✗ interrupted before any level finished: nothing written")
		return 130
	}
	dir := filepath.Join(reportDir, *vm+"-bench-"+res.Started.Format("20060102T150405Z"))
	files, werr := bench.Write(dir, *vm, res)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		fmt.Fprint(stdout, bench.Table(res))
	}
	if werr != nil {
		fmt.Fprintln(stderr, "✗ bench report not written:", werr)
		return 1
	}
	for _, f := range files {
		fmt.Fprintln(stderr, "wrote "+f)
	}
	failed := 0
	for _, l := range res.Levels {
		failed += l.Failed
	}
	switch {
	case res.Interrupted:
		fmt.Fprintln(stderr, "✗ interrupted (Ctrl-C or SIGTERM): the report holds the levels finished before")
		return 130
	case failed > 0:
		fmt.Fprintf(stderr, "✗ %d requests failed (see the errors in %s)\n", failed, filepath.Join(dir, bench.SummaryFile))
		return 1
	}
	fmt.Fprintf(stderr, "✓ %d levels measured on %s\n", len(res.Levels), *vm)
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
