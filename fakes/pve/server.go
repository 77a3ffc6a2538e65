package pve

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the fake Proxmox VE API. It is an http.Handler serving /api2/json/... and the control API /_sim/....
type Server struct {
	opts options

	mu      sync.Mutex
	st      *state
	tasks   map[string]*task
	faults  faultState
	stats   statsState
	secret  []byte // signs tickets and CSRF tokens
	pstart  uint64 // simulated pveproxy start (jiffies) for UPIDs
	pidNext int

	tlsMat *tlsMaterial
	routes []*route
}

type options struct {
	topology     Topology
	guests       GuestFactory
	authDelay    time.Duration
	timeScale    float64
	logger       *slog.Logger
	version      string
	statsSources []statsSource
	control      map[string]http.Handler
	latency      time.Duration
}

type statsSource struct {
	name string
	fn   func() any
}

// Option configures a Server.
type Option func(*options)

// WithTopology sets the initial cluster (default DefaultTopology()).
func WithTopology(t Topology) Option { return func(o *options) { o.topology = t.clone() } }

// WithGuestFactory sets who simulates the guests (default: no guest; VMs run but have no agent).
func WithGuestFactory(f GuestFactory) Option { return func(o *options) { o.guests = f } }

// WithAuthDelay sets the delay of 401 answers (pveproxy: 3 s; tests use 0).
func WithAuthDelay(d time.Duration) Option { return func(o *options) { o.authDelay = d } }

// WithTimeScale multiplies every simulated duration (tasks, boots, agent start); 0 = instant. Default 1.
func WithTimeScale(f float64) Option { return func(o *options) { o.timeScale = f } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithPVEVersion sets the simulated pve-manager version, e.g. "8.4.1" (default) or "9.0.3".
// From 8.3 on, error bodies carry "message" (libpve-http-server-perl >= 5.2.0).
func WithPVEVersion(v string) Option { return func(o *options) { o.version = v } }

// WithStatsSource adds a named entry to GET /_sim/stats (e.g. the simulator's SSH counters).
func WithStatsSource(name string, fn func() any) Option {
	return func(o *options) { o.statsSources = append(o.statsSources, statsSource{name, fn}) }
}

// WithControlHandler mounts h under /_sim/<prefix>/ (e.g. "guest" -> /_sim/guest/...); h sees the full path.
func WithControlHandler(prefix string, h http.Handler) Option {
	return func(o *options) {
		if o.control == nil {
			o.control = map[string]http.Handler{}
		}
		o.control[strings.Trim(prefix, "/")] = h
	}
}

// WithLatency adds latency to every API response.
func WithLatency(d time.Duration) Option { return func(o *options) { o.latency = d } }

// New returns a fake PVE server with the given options.
func New(opts ...Option) *Server {
	o := options{
		topology:  DefaultTopology(),
		authDelay: 3 * time.Second,
		timeScale: 1,
		version:   "8.4.1",
	}
	for _, fn := range opts {
		fn(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{opts: o, tasks: map[string]*task{}, pidNext: 0x2E0B4}
	s.secret = make([]byte, 32)
	_, _ = rand.Read(s.secret)
	s.pstart = 0x00C0A6F1
	s.faults.latency = o.latency
	s.st = newState(o.topology)
	s.tlsMat = newTLSMaterial(o.topology)
	s.routes = buildRoutes()
	s.stats.reset()
	s.startInitialVMs()
	return s
}

// StartTLS serves s on a loopback HTTPS httptest server (HTTP/1.1 only, like pveproxy).
// Clients verify it with CertPool() or Fingerprint(). The caller closes it.
func (s *Server) StartTLS() *httptest.Server {
	ts := httptest.NewUnstartedServer(s)
	ts.EnableHTTP2 = false
	ts.TLS = s.TLSConfig()
	ts.StartTLS()
	return ts
}

// NewHTTPServer returns an http.Server for addr serving s over TLS with HTTP/1.1 only
// (use ListenAndServeTLS("", "")); for binaries that wrap the fake.
func (s *Server) NewHTTPServer(addr string) *http.Server {
	hs := &http.Server{Addr: addr, Handler: s, TLSConfig: s.TLSConfig(), ReadHeaderTimeout: 10 * time.Second}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	hs.Protocols = p
	return hs
}

// Scale converts a realistic duration into simulated time.
func (s *Server) Scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.opts.timeScale)
}

// Version is the simulated pve-manager version.
func (s *Server) Version() string { return s.opts.version }

func (s *Server) versionAtLeast(major, minor int) bool {
	parts := strings.SplitN(s.opts.version, ".", 3)
	ma, _ := strconv.Atoi(parts[0])
	mi := 0
	if len(parts) > 1 {
		mi, _ = strconv.Atoi(parts[1])
	}
	return ma > major || (ma == major && mi >= minor)
}

func (s *Server) log() *slog.Logger { return s.opts.logger }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/_sim/") || r.URL.Path == "/_sim":
		s.serveControl(w, r)
	case strings.HasPrefix(r.URL.Path, "/api2/json/") || r.URL.Path == "/api2/json":
		s.serveAPI(w, r)
	case strings.HasPrefix(r.URL.Path, "/api2/extjs/"):
		s.serveExtJS(w, r)
	default:
		w.Header().Set("Server", serverHeader)
		http.NotFound(w, r)
	}
}

const serverHeader = "pve-api-daemon/3.0"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func errf(format string, a ...any) error { return fmt.Errorf(format, a...) }
