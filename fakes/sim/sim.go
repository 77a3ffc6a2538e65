package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/aimachine/aimachine/fakes/guest"
	"github.com/aimachine/aimachine/fakes/pve"
	"github.com/aimachine/aimachine/fakes/simclient"
)

// Options configure a simulator.
type Options struct {
	// APIListen and SSHListen are the API's and the jump host's listen addresses
	// (default "127.0.0.1:0" each: a free loopback port).
	APIListen string
	SSHListen string
	// AllowNonLoopback permits listening on a non-loopback address (pvesim in a container
	// listens on 0.0.0.0). Without it Start refuses anything but loopback.
	AllowNonLoopback bool
	// AdvertiseHost is the host written into the endpoint URLs when a listen address is
	// unspecified (0.0.0.0, ::). Default "127.0.0.1".
	AdvertiseHost string
	// StateDir receives the env file, CA, keys and guest filesystems. "" = a temporary
	// directory removed by Close. An existing dir keeps its SSH keys across restarts.
	StateDir string
	// TimeScale multiplies every simulated duration: 0 = instant, 1 = real time.
	TimeScale float64
	// Topology is the initial cluster (default pve.DefaultTopology()); TopologyFile, when set,
	// is loaded instead (YAML or JSON, see LoadTopology).
	Topology     *pve.Topology
	TopologyFile string
	// AuthDelay delays 401 answers (pveproxy: 3 s). Zero: none.
	AuthDelay time.Duration
	// PVEVersion is the simulated pve-manager version ("" = the fake's default).
	PVEVersion string
	// RootPassword and TokenSecret fix the root@pam password and the secret of
	// root@pam!aimachine; empty = random per start.
	RootPassword string
	TokenSecret  string
	// Logger receives the simulator's logs (default: discarded).
	Logger *slog.Logger
}

// TokenID is the API token the simulator provisions for the tool.
const TokenID = "root@pam!aimachine"

// Target is a running simulator, in-process (*Sim) or in a container (*container.Sim).
type Target interface {
	// Info returns where and how to reach the simulator.
	Info() Endpoint
	// Control returns a client of the control API (/_sim/...).
	Control() *simclient.Client
	// Close stops the simulator.
	Close() error
}

// Sim is a simulated Proxmox host running in this process: the fake API over TLS, an SSH
// jump host and the simulated guests, all on loopback. Guests are reached only through the
// jump host's in-memory forwarding; nothing dials a guest address on the network.
type Sim struct {
	Endpoint

	api     *pve.Server
	guests  *guest.Factory
	hs      *http.Server
	apiLn   net.Listener
	jump    *jumpHost
	control *simclient.Client
	log     *slog.Logger
	ownDir  bool

	// start is the topology of Start (with its credentials): a plain reset returns to it.
	start    pve.Topology
	password string
	secret   string

	closeOnce sync.Once
	closeErr  error
	served    sync.WaitGroup
}

var _ Target = (*Sim)(nil)

// Start starts a simulator; ctx bounds the start only. Close stops it.
func Start(ctx context.Context, o Options) (_ *Sim, err error) {
	if o.APIListen == "" {
		o.APIListen = "127.0.0.1:0"
	}
	if o.SSHListen == "" {
		o.SSHListen = "127.0.0.1:0"
	}
	if o.AdvertiseHost == "" {
		o.AdvertiseHost = "127.0.0.1"
	}
	if o.TimeScale < 0 {
		return nil, fmt.Errorf("start simulator: time scale %v must not be negative", o.TimeScale)
	}
	for _, a := range []string{o.APIListen, o.SSHListen} {
		if err := checkListen(a, o.AllowNonLoopback); err != nil {
			return nil, fmt.Errorf("start simulator: %w", err)
		}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Sim{log: log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// State dir and keys.
	if o.StateDir == "" {
		d, err := os.MkdirTemp("", "pvesim-")
		if err != nil {
			return nil, fmt.Errorf("start simulator: %w", err)
		}
		o.StateDir, s.ownDir = d, true
	}
	if o.StateDir, err = filepath.Abs(o.StateDir); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("start simulator: state dir: %w", err)
	}
	s.StateDir = o.StateDir
	toolKey, err := loadOrCreateSSHKey(filepath.Join(o.StateDir, ToolKeyFileName), "aimachine@pvesim")
	if err != nil {
		return nil, fmt.Errorf("start simulator: tool key: %w", err)
	}
	hostKey, err := loadOrCreateSSHKey(filepath.Join(o.StateDir, HostKeyFileName), "root@pve")
	if err != nil {
		return nil, fmt.Errorf("start simulator: jump host key: %w", err)
	}
	authKeys := filepath.Join(o.StateDir, AuthorizedKeysName)
	if err := ensureAuthorized(authKeys, toolKey.PublicKey()); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}

	// Topology and credentials.
	topo := pve.DefaultTopology()
	switch {
	case o.TopologyFile != "":
		if topo, err = LoadTopology(o.TopologyFile); err != nil {
			return nil, fmt.Errorf("start simulator: %w", err)
		}
	case o.Topology != nil:
		topo = *o.Topology
	}
	password, secret := o.RootPassword, o.TokenSecret
	if o.TopologyFile != "" || o.Topology != nil {
		// An explicit topology may fix the credentials; the default one's are public constants.
		p, sec := credentialsOf(topo)
		if password == "" {
			password = p
		}
		if secret == "" {
			secret = sec
		}
	}
	if password == "" {
		password = randomPassword()
	}
	if secret == "" {
		secret = randomUUID()
	}
	setCredentials(&topo, password, secret)
	s.start, s.password, s.secret = topo, password, secret

	// Guests, API, jump host.
	s.guests = guest.NewFactory(
		guest.WithTimeScale(o.TimeScale),
		guest.WithLogger(log.With("part", "guest")),
		guest.WithStateDir(filepath.Join(o.StateDir, "guests")),
	)
	if err := os.MkdirAll(filepath.Join(o.StateDir, "guests"), 0o700); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	apiLn, err := listen(ctx, o.APIListen)
	if err != nil {
		return nil, fmt.Errorf("start simulator: API: %w", err)
	}
	s.apiLn = apiLn
	sshLn, err := listen(ctx, o.SSHListen)
	if err != nil {
		return nil, fmt.Errorf("start simulator: jump host: %w", err)
	}
	s.jump = newJumpHost(sshLn, hostKey, authKeys, s.guests.DialGuest, log.With("part", "jump"))
	popts := []pve.Option{
		pve.WithTopology(topo),
		pve.WithGuestFactory(s.guests),
		pve.WithAuthDelay(o.AuthDelay),
		pve.WithTimeScale(o.TimeScale),
		pve.WithLogger(log.With("part", "api")),
		pve.WithStatsSource("jump", func() any { return s.jump.stats() }),
		pve.WithStatsSource("guest", func() any { return s.guests.Stats() }),
		pve.WithControlHandler("guest", s.guests.ControlHandler()),
	}
	if o.PVEVersion != "" {
		popts = append(popts, pve.WithPVEVersion(o.PVEVersion))
	}
	s.api = pve.New(popts...)
	s.jump.node = s.api
	s.hs = s.api.NewHTTPServer(apiLn.Addr().String())
	s.hs.Handler = s.controlReset(s.api)
	s.hs.ErrorLog = slog.NewLogLogger(log.With("part", "https").Handler(), slog.LevelDebug)

	// Endpoint and files.
	apiAddr := advertise(apiLn.Addr().String(), o.AdvertiseHost)
	jumpAddr := advertise(sshLn.Addr().String(), o.AdvertiseHost)
	e := Endpoint{
		BaseURL:        "https://" + apiAddr + "/",
		CAPEM:          s.api.CACertPEM(),
		CAFile:         filepath.Join(o.StateDir, CAFileName),
		Fingerprint:    s.api.Fingerprint(),
		TokenID:        TokenID,
		TokenSecret:    secret,
		Username:       "root@pam",
		Password:       password,
		JumpUser:       "root",
		JumpAddr:       jumpAddr,
		JumpHostKey:    strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey.PublicKey()))),
		SSHKeyFile:     filepath.Join(o.StateDir, ToolKeyFileName),
		SSHPublicKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(toolKey.PublicKey()))),
		KnownHostsFile: filepath.Join(o.StateDir, KnownHostsFileName),
		EnvFile:        filepath.Join(o.StateDir, EnvFileName),
		StateDir:       o.StateDir,
	}
	e.APIURL = e.BaseURL + "api2/json"
	e.ControlURL = e.BaseURL + "_sim/"
	if err := writeFile(e.CAFile, e.CAPEM, 0o644); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	kh := knownhosts.Line([]string{knownhosts.Normalize(jumpAddr)}, hostKey.PublicKey()) + "\n"
	if err := writeFile(e.KnownHostsFile, []byte(kh), 0o644); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	if err := writeFile(e.EnvFile, MarshalEnv(e.Env()), 0o600); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	s.Endpoint = e
	if s.control, err = simclient.New(e.ControlURL, e.CAPEM); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}

	s.served.Add(2)
	go func() {
		defer s.served.Done()
		if err := s.hs.ServeTLS(apiLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "err", err)
		}
	}()
	go func() {
		defer s.served.Done()
		s.jump.serve()
	}()
	log.Info("simulator started", "api", e.APIURL, "jump", e.JumpHost(), "state", o.StateDir)
	return s, nil
}

// Info returns the endpoint (the embedded Endpoint).
func (s *Sim) Info() Endpoint { return s.Endpoint }

// Control returns a client of the control API.
func (s *Sim) Control() *simclient.Client { return s.control }

// API returns the fake PVE server (for in-process tests only; steps use Control).
func (s *Sim) API() *pve.Server { return s.api }

// Guests returns the guest factory (for in-process tests only; steps use Control).
func (s *Sim) Guests() *guest.Factory { return s.guests }

// JumpStats returns the jump host's counters.
func (s *Sim) JumpStats() JumpStats { return s.jump.stats() }

// TLSConfig returns a client TLS config that trusts the simulator's CA.
func (s *Sim) TLSConfig() *tls.Config { return ClientTLSConfig(s.CAPEM) }

// Close stops the API, the jump host and every guest, and removes a temporary state dir.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.hs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.hs.Shutdown(ctx); err != nil {
				errs = append(errs, s.hs.Close())
			}
			cancel()
		}
		if s.apiLn != nil {
			_ = s.apiLn.Close() // in case Start failed before serving
		}
		if s.jump != nil {
			if err := s.jump.close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		s.served.Wait()
		if s.guests != nil {
			errs = append(errs, s.guests.Close())
		}
		if s.ownDir && s.StateDir != "" {
			errs = append(errs, os.RemoveAll(s.StateDir))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// ClientTLSConfig returns a TLS client config trusting caPEM (HTTP/1.1 only, like pveproxy).
func ClientTLSConfig(caPEM []byte) *tls.Config {
	cfg, _ := simclient.TLSConfig(caPEM)
	return cfg
}

func listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

// checkListen refuses non-loopback listen addresses unless allowed.
func checkListen(addr string, allowAny bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if allowAny || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("listen address %q is not loopback (hint: the simulator listens on 127.0.0.1 unless AllowNonLoopback is set, as pvesim does for an explicit --listen)", addr)
}

// advertise turns a listener address into the one clients use: an unspecified host
// (0.0.0.0, ::) becomes host.
func advertise(addr, host string) string {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(h); ip == nil || ip.IsUnspecified() {
		h = host
	}
	return net.JoinHostPort(h, p)
}

// ensureAuthorized creates authorized_keys with key, or appends key when the file lacks it.
func ensureAuthorized(path string, key ssh.PublicKey) error {
	line := ssh.MarshalAuthorizedKey(key)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	for rest := data; len(bytes.TrimSpace(rest)) > 0; {
		k, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			break
		}
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return nil
		}
		rest = r
	}
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		data = append(data, '\n')
	}
	return writeFile(path, append(data, line...), 0o600)
}

// controlReset makes POST /_sim/reset reset everything: the API (VMs, tasks, faults, request
// log; it destroys the guests), the guests' faults and counters and the jump host's counters.
func (s *Sim) controlReset(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/_sim/reset" {
			topo, err := s.resetTopology(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := s.api.ResetTo(topo); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.guests.ClearFaults("")
			s.guests.ResetStats()
			s.jump.resetStats()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`+"\n")
			s.log.Info("simulator reset")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// credentialsOf returns the topology's root@pam password and root@pam!aimachine secret.
func credentialsOf(t pve.Topology) (password, secret string) {
	for _, u := range t.Users {
		if u.ID == "root@pam" {
			password = u.Password
		}
	}
	for _, k := range t.Tokens {
		if k.ID == TokenID {
			secret = k.Secret
		}
	}
	return password, secret
}

// setCredentials gives root@pam the password and root@pam!aimachine the secret, adding them
// when the topology lacks them.
func setCredentials(t *pve.Topology, password, secret string) {
	found := false
	for i := range t.Users {
		if t.Users[i].ID == "root@pam" {
			t.Users[i].Password, found = password, true
		}
	}
	if !found {
		t.Users = append(t.Users, pve.UserSpec{ID: "root@pam", Password: password})
	}
	found = false
	for i := range t.Tokens {
		if t.Tokens[i].ID == TokenID {
			t.Tokens[i].Secret, found = secret, true
		}
	}
	if !found {
		t.Tokens = append(t.Tokens, pve.TokenSpec{ID: TokenID, Secret: secret})
	}
}

// resetTopology reads the optional {"topology": "<YAML or JSON>"} of a reset: that topology
// with the simulator's credentials, or the start topology when there is none.
func (s *Sim) resetTopology(r *http.Request) (pve.Topology, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return pve.Topology{}, err
	}
	var body struct {
		Topology string `json:"topology"`
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			return pve.Topology{}, fmt.Errorf("reset: bad JSON: %w", err)
		}
	}
	if body.Topology == "" {
		return s.start, nil
	}
	t, err := ParseTopology([]byte(body.Topology))
	if err != nil {
		return pve.Topology{}, fmt.Errorf("reset: topology: %w", err)
	}
	setCredentials(&t, s.password, s.secret)
	return t, nil
}
