package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/internal/toxic"
)

// benchLatency is the delay added to every server→client segment of both paths (the API and
// the SSH jump host). Only that direction is delayed: one request/response exchange then pays
// it exactly once, so (t50 − t0) / 50 ms is the number of sequential round trips.
const benchLatency = 50 * time.Millisecond

// benchRepeats is how often each verb runs at each latency; the fastest run counts (noise on
// a shared machine only ever adds time).
const benchRepeats = 3

// onProxiedSimulator starts the in-process simulator (instant time) behind two toxiproxy TCP
// proxies, one in front of the API and one in front of the SSH jump host, and points the CLI
// at the proxies. The returned proxies take the latency toxic.
func onProxiedSimulator(tb testing.TB) (s *sim.Sim, proxies []*toxic.Proxy) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{TimeScale: 0})
	if err != nil {
		tb.Fatalf("start simulator: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	e := s.Info()
	u, err := url.Parse(e.BaseURL)
	if err != nil {
		tb.Fatal(err)
	}
	api, err := toxic.Start("bench-api", u.Host)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(api.Close)
	jump, err := toxic.Start("bench-jump", e.JumpAddr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(jump.Close)

	_, kh, env := pointCLIAt(tb, s, testCatalog, "catalog.yml")
	// The jump host's key, pinned for the proxy's port as well (the tool dials the proxy).
	f, err := os.OpenFile(kh, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	_, err = f.WriteString("[127.0.0.1]:" + portOf(jump.Addr) + " " + e.JumpHostKey + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tb.Fatal(err)
	}
	env[sim.EnvEndpoint] = "https://" + api.Addr + "/"
	env[sim.EnvJumpHost] = e.JumpUser + "@" + jump.Addr
	return s, []*toxic.Proxy{api, jump}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// latencyVerbs are the measured commands, on a VM that is already deployed.
var latencyVerbs = []struct {
	name string
	args []string
}{
	{"plan", []string{"plan", "vm-llm-aimachine", "--infra-only"}},
	{"plan-with-guest", []string{"plan", "vm-llm-aimachine"}},
	{"deploy-converged", []string{"deploy", "vm-llm-aimachine"}},
	{"verify", []string{"verify", "vm-llm-aimachine"}},
}

// roundTrips times each verb at 0 ms and at benchLatency and derives the sequential round
// trips. It fails the benchmark when a command fails.
func roundTrips(tb testing.TB, s *sim.Sim, proxies []*toxic.Proxy, args []string) (t0, t50 time.Duration, rt float64, apiReqs int) {
	tb.Helper()
	setLatency := func(on bool) {
		for _, p := range proxies {
			p.Clear()
			if on {
				if err := p.Add(toxic.Latency(int(benchLatency/time.Millisecond), 0)); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	timeIt := func() time.Duration {
		before := s.API().Stats().Total
		start := time.Now()
		code, out, errOut := runArgs(args...)
		d := time.Since(start)
		if code != 0 {
			tb.Fatalf("aimachine %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errOut)
		}
		apiReqs = s.API().Stats().Total - before
		return d
	}
	var at0, at50 []time.Duration
	for range benchRepeats {
		setLatency(false)
		at0 = append(at0, timeIt())
		setLatency(true)
		at50 = append(at50, timeIt())
	}
	setLatency(false)
	t0, t50 = slices.Min(at0), slices.Min(at50)
	return t0, t50, float64(t50-t0) / float64(benchLatency), apiReqs
}

// BenchmarkRoundTrips measures the sequential network round trips of plan, a converged deploy
// and verify: a real TCP proxy (toxiproxy) adds 50 ms to every server→client segment of the
// API and of the SSH jump host, and round trips = (t50 − t0) / 50 ms. `make bench` runs it
// and prints the table; README records the figures.
func BenchmarkRoundTrips(b *testing.B) {
	s, proxies := onProxiedSimulator(b)
	if code, out, errOut := runArgs("deploy", "vm-llm-aimachine"); code != 0 {
		b.Fatalf("first deploy: exit %d\n%s\n%s", code, out, errOut)
	}
	type row struct {
		name    string
		t0, t50 time.Duration
		rt      float64
		reqs    int
	}
	var rows []row
	for _, v := range latencyVerbs {
		b.Run(v.name, func(b *testing.B) {
			var r row
			for range b.N {
				r.t0, r.t50, r.rt, r.reqs = roundTrips(b, s, proxies, v.args)
			}
			r.name = v.name
			rows = append(rows, r)
			b.ReportMetric(r.rt, "round-trips")
			b.ReportMetric(float64(r.t0.Milliseconds()), "ms@0")
			b.ReportMetric(float64(r.t50.Milliseconds()), "ms@50")
			b.ReportMetric(float64(r.reqs), "api-requests")
		})
	}
	// The table goes to stdout: a parent benchmark's b.Log is not shown next to its sub-benchmarks.
	fmt.Printf("\nround trips at %v per server→client segment (API and SSH jump host), fastest of %d runs:\n", benchLatency, benchRepeats)
	fmt.Printf("%-18s %9s %9s %12s %13s\n", "command", "t0", "t50", "round trips", "API requests")
	for _, r := range rows {
		fmt.Printf("%-18s %9s %9s %12.1f %13d\n", r.name, r.t0.Round(time.Millisecond), r.t50.Round(time.Millisecond), r.rt, r.reqs)
	}
}
