// Package toxic puts a real TCP proxy with injectable network faults in front of a loopback
// service, for tests: Shopify's toxiproxy embedded in the test process (no toxiproxy server,
// no container). Start a Proxy in front of an upstream, point the client at Proxy.Addr, and
// add toxics — latency, bandwidth, a reset after some time, a stall, slicing, a cut after N
// bytes — while the test runs; Clear removes them.
//
// Only loopback upstreams are accepted (the project's network rule: tests dial nothing else).
package toxic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

var (
	serverOnce sync.Once
	server     *toxiproxy.ApiServer
)

func apiServer() *toxiproxy.ApiServer {
	serverOnce.Do(func() {
		server = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.New(io.Discard))
	})
	return server
}

// Proxy is one TCP proxy on 127.0.0.1 in front of an upstream.
type Proxy struct {
	// Addr is where clients connect ("127.0.0.1:PORT").
	Addr     string
	Upstream string
	p        *toxiproxy.Proxy
}

// Start listens on a free loopback port and forwards to upstream (a loopback host:port).
func Start(name, upstream string) (*Proxy, error) {
	host, _, err := net.SplitHostPort(upstream)
	if err != nil {
		return nil, fmt.Errorf("toxic: upstream %q: %w", upstream, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("toxic: upstream %q is not a loopback address", upstream)
	}
	p := toxiproxy.NewProxy(apiServer(), name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("toxic: start proxy %s: %w", name, err)
	}
	return &Proxy{Addr: p.Listen, Upstream: upstream, p: p}, nil
}

// Close stops the proxy and drops its connections.
func (p *Proxy) Close() { p.p.Stop() }

// Toxic is one fault (toxiproxy's toxic JSON): Type is latency, bandwidth, reset_peer,
// timeout, slicer, limit_data or slow_close; Stream "downstream" (to the client, default) or
// "upstream"; Toxicity the probability it applies to a connection (default 1).
type Toxic struct {
	Name       string         `json:"name,omitempty"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream,omitempty"`
	Toxicity   float32        `json:"toxicity,omitempty"`
	Attributes map[string]any `json:"attributes"`
}

// Add installs a toxic; it applies to the proxy's connections from now on.
func (p *Proxy) Add(t Toxic) error {
	if t.Toxicity == 0 {
		t.Toxicity = 1
	}
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if _, err := p.p.Toxics.AddToxicJson(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("toxic: add %s to %s: %w", t.Type, p.p.Name, err)
	}
	return nil
}

// Clear removes every toxic (the network is healthy again).
func (p *Proxy) Clear() {
	p.p.Toxics.ResetToxics(context.Background())
}

// Latency delays data by ms (±jitter ms).
func Latency(ms, jitter int) Toxic {
	return Toxic{Type: "latency", Attributes: map[string]any{"latency": ms, "jitter": jitter}}
}

// Bandwidth limits the rate to kbps kilobytes per second.
func Bandwidth(kbps int) Toxic {
	return Toxic{Type: "bandwidth", Attributes: map[string]any{"rate": kbps}}
}

// ResetPeer resets each connection (TCP RST) after ms milliseconds.
func ResetPeer(ms int) Toxic {
	return Toxic{Type: "reset_peer", Attributes: map[string]any{"timeout": ms}}
}

// Stall stops all data; the connection is closed after ms (0: never, a black hole).
func Stall(ms int) Toxic {
	return Toxic{Type: "timeout", Attributes: map[string]any{"timeout": ms}}
}

// Slicer cuts data into pieces of about avg bytes (±variation) with delayUS microseconds between.
func Slicer(avg, variation, delayUS int) Toxic {
	return Toxic{Type: "slicer", Attributes: map[string]any{"average_size": avg, "size_variation": variation, "delay": delayUS}}
}

// CutAfter closes each connection after n bytes: a response cut off in the middle.
func CutAfter(n int) Toxic {
	return Toxic{Type: "limit_data", Attributes: map[string]any{"bytes": n}}
}
