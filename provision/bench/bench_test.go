package bench

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentileIsNumpysLinear(t *testing.T) {
	xs := []float64{10, 20, 30, 40}
	for _, tc := range []struct{ p, want float64 }{{0, 10}, {50, 25}, {95, 38.5}, {99, 39.7}, {100, 40}} {
		if got := Percentile(xs, tc.p); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("P%.0f = %v, want %v (numpy.percentile, linear)", tc.p, got, tc.want)
		}
	}
}

func TestSampleRates(t *testing.T) {
	s := Sample{TTFT: 100 * time.Millisecond, Latency: 1100 * time.Millisecond, OutputTokens: 11}
	if s.TPOT() != 100*time.Millisecond || s.TokensPerSecond() != 10 {
		t.Errorf("TPOT %v, tokens/s %v; want 100ms and 10 (10 tokens after the first in 1 s)", s.TPOT(), s.TokensPerSecond())
	}
}

// TestReportFiles: the table and the summary use vllm bench serve's labels; bench.png is a PNG.
func TestReportFiles(t *testing.T) {
	r := Result{Started: time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC), PerLevel: 5 * time.Second, MaxTokens: 128, MaxRequests: 1000, Levels: []Level{
		{Server: VLLM, Model: "Qwen/Qwen2.5-3B-Instruct", MaxConcurrency: 1, Completed: 2, OutputThrough: 47.5, P50TTFT: 9.8, P99ITL: 21},
		{Server: VLLM, Model: "Qwen/Qwen2.5-3B-Instruct", MaxConcurrency: 4, Completed: 8, OutputThrough: 184, P50TTFT: 12.7, P99ITL: 21.5},
	}}
	tab := Table(r)
	for _, want := range []string{"Output token throughput (tok/s)", "P99 ITL (ms)", "P95 TTFT (ms)", "Successful requests", "vllm c=4", "184.00"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	dir := t.TempDir()
	files, err := Write(dir, "vm-llm-aimachine", r)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, SummaryFile))
	if !strings.Contains(string(md), "| Output token throughput (tok/s) | 47.50 | 184.00 |") {
		t.Errorf("summary:\n%s", md)
	}
	b, err := os.ReadFile(files[2])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Errorf("bench.png: %v", err)
	}
}

// TestRunStopsCleanlyOnCancel: Ctrl-C (ctx) ends a level at once, keeps what finished and
// marks the result interrupted; a slow stream is cut, not waited for.
func TestRunStopsCleanlyOnCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d \"}}]}\n\n", i); err != nil {
				return
			}
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := NewHTTPClient(func(ctx context.Context, a string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", a) // loopback test server
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// Run must return once ctx ends although the streams never do (the test's own deadline
	// catches a hang; no wall-clock threshold here).
	res, err := Run(ctx, Config{Targets: []Target{{Server: VLLM, Model: "m", Addr: addr}}, Concurrency: []int{2, 4}, Duration: time.Minute, Client: c})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || len(res.Levels) != 0 {
		t.Errorf("interrupted %v, %d levels; want interrupted with no finished level (streams never end)", res.Interrupted, len(res.Levels))
	}
}
