package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	ussh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	// The client is x/crypto/ssh with ClientConfig.LeanAuth (3 round trips fewer per
	// handshake, internal/xssh); known_hosts and ssh-agent stay on upstream's packages.
	ssh "github.com/aimachine/aimachine/internal/xssh"
	"github.com/aimachine/aimachine/provision/internal/encode"
)

// DefaultKnownHostsFile is where aimachine pins host keys unless Config says otherwise.
func DefaultKnownHostsFile() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "aimachine", "known_hosts")
	}
	return filepath.Join(os.Getenv("HOME"), ".config", "aimachine", "known_hosts")
}

// Dial opens one SSH connection to the guest (through the jump host when set) and returns
// a Runner that reuses it. Host keys are checked against cfg.KnownHostsFile; an unknown or
// changed key is refused (errors.Is(err, ErrHostKey)).
func Dial(ctx context.Context, cfg Config) (Runner, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

type client struct {
	cfg      Config
	auth     []ssh.AuthMethod
	jumpAuth []ssh.AuthMethod
	closeAgt func()

	mu     sync.Mutex
	conn   *ssh.Client // guest
	jump   *ssh.Client // bastion, nil without one
	stopKA chan struct{}
	stats  Stats
	closed bool
	rec    recorder
}

func newClient(cfg Config) (*client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("ssh: no guest address")
	}
	if cfg.User == "" {
		return nil, fmt.Errorf("ssh %s: no user", cfg.Addr)
	}
	cfg.Addr = withPort(cfg.Addr)
	if cfg.KnownHostsFile == "" {
		cfg.KnownHostsFile = DefaultKnownHostsFile()
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 15 * time.Second
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 15 * time.Second
	}
	c := &client{cfg: cfg, rec: recorder{hook: cfg.Transcript, secrets: cfg.Secrets}}
	auth, closeAgt, err := authMethods(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("ssh %s@%s: %w", cfg.User, cfg.Addr, err)
	}
	c.auth, c.closeAgt = auth, closeAgt
	c.jumpAuth = auth
	if j := cfg.Jump; j != nil {
		if j.Addr == "" {
			return nil, errors.New("ssh: jump host without an address")
		}
		j2 := *j
		j2.Addr = withPort(j.Addr)
		if j2.User == "" {
			j2.User = cfg.User
		}
		c.cfg.Jump = &j2
		if j.KeyFile != "" && j.KeyFile != cfg.KeyFile {
			ja, _, err := authMethods(j.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("ssh jump host %s: %w", j.Addr, err)
			}
			c.jumpAuth = ja
		}
	}
	return c, nil
}

func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), "22")
}

// authMethods reads a private key file, or falls back to ssh-agent.
func authMethods(keyFile string) ([]ssh.AuthMethod, func(), error) {
	if keyFile != "" {
		pem, err := os.ReadFile(expandHome(keyFile))
		if err != nil {
			return nil, nil, fmt.Errorf("read private key: %w (hint: set the key file, or leave it empty to use ssh-agent)", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			var pp *ssh.PassphraseMissingError
			if errors.As(err, &pp) {
				return nil, nil, fmt.Errorf("private key %s is passphrase-protected (hint: load it into ssh-agent and leave the key file empty)", keyFile)
			}
			return nil, nil, fmt.Errorf("parse private key %s: %w", keyFile, err)
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, func() {}, nil
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, errors.New("no private key file given and SSH_AUTH_SOCK is not set (hint: pass a key file or start ssh-agent)")
	}
	// The agent socket is a local unix socket: not a TCP dial, so LoopbackOnly does not apply.
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to ssh-agent at %s: %w", sock, err)
	}
	ag := agent.NewClient(conn)
	signers := func() ([]ssh.Signer, error) {
		us, err := ag.Signers()
		if err != nil {
			return nil, err
		}
		out := make([]ssh.Signer, 0, len(us))
		for _, u := range us {
			if f, err := forkSigner(u); err == nil {
				out = append(out, f)
			}
		}
		return out, nil
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(signers)}, func() { conn.Close() }, nil
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[1:])
		}
	}
	return p
}

// checkLoopback enforces Config.LoopbackOnly on a direct TCP dial.
func (c *client) checkLoopback(addr string) error {
	if !c.cfg.LoopbackOnly {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrNotLoopback, addr, err)
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%w: %s (simulator mode dials only 127.0.0.0/8 or ::1; reach guests through the jump host)", ErrNotLoopback, addr)
}

func (c *client) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	if err := c.checkLoopback(addr); err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: c.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// hostKeyCallback checks keys against the known_hosts file under alias (or the dialled address).
func (c *client) hostKeyCallback(alias string) (ssh.HostKeyCallback, []string, error) {
	file := c.cfg.KnownHostsFile
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		if !c.cfg.AcceptNewHostKey {
			return nil, nil, fmt.Errorf("%w: known_hosts file %s does not exist, so no host key is pinned for %s (hint: the deploy pins the guest's key after first boot; for an existing machine add it with ssh-keyscan, or pass --accept-new-host-key)", ErrHostKey, file, alias)
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, nil, fmt.Errorf("create %s: %w", filepath.Dir(file), err)
		}
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			return nil, nil, fmt.Errorf("create %s: %w", file, err)
		}
	}
	kh, err := knownhosts.New(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read known_hosts %s: %w", file, err)
	}
	algos := knownAlgorithms(kh, alias)
	cb := func(hostname string, remote net.Addr, fkey ssh.PublicKey) error {
		key, err := upstreamKey(fkey)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrHostKey, alias, err)
		}
		err = kh(alias, fakeAddr(alias), key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 {
			if c.cfg.AcceptNewHostKey {
				return appendKnownHost(file, alias, key)
			}
			return fmt.Errorf("%w: %s presented an unknown %s key %s, not pinned in %s (hint: pin the key you expect, e.g. ssh-keyscan, or pass --accept-new-host-key to trust it on first use)",
				ErrHostKey, alias, key.Type(), ussh.FingerprintSHA256(key), file)
		}
		if errors.As(err, &ke) {
			want := ke.Want[0]
			return fmt.Errorf("%w: HOST KEY MISMATCH for %s: got %s %s, %s:%d pins %s %s (hint: if the machine was reinstalled, remove the old key with ssh-keygen -f %s -R %s; otherwise someone may be intercepting the connection)",
				ErrHostKey, alias, key.Type(), ussh.FingerprintSHA256(key), want.Filename, want.Line, want.Key.Type(), ussh.FingerprintSHA256(want.Key), file, knownhosts.Normalize(alias))
		}
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return fmt.Errorf("%w: %s presented a revoked key %s", ErrHostKey, alias, ussh.FingerprintSHA256(key))
		}
		return fmt.Errorf("%w: %s: %v", ErrHostKey, alias, err)
	}
	return cb, algos, nil
}

// knownAlgorithms lists the key types pinned for alias, so the server offers the pinned type
// rather than another one we would then report as a mismatch.
func knownAlgorithms(kh ussh.HostKeyCallback, alias string) []string {
	_, probe, err := ed25519Key()
	if err != nil {
		return nil
	}
	err = kh(alias, fakeAddr(alias), probe)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		t := k.Key.Type()
		var algs []string
		switch t {
		case ussh.KeyAlgoRSA:
			algs = []string{ussh.KeyAlgoRSASHA512, ussh.KeyAlgoRSASHA256, ussh.KeyAlgoRSA}
		default:
			algs = []string{t}
		}
		for _, a := range algs {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// fakeAddr gives knownhosts a net.Addr for alias (it only uses it for @cert-authority IP matches).
func fakeAddr(alias string) net.Addr {
	host, port, err := net.SplitHostPort(alias)
	if err != nil {
		host = alias
	}
	ip := net.ParseIP(host)
	if ip == nil {
		ip = net.IPv4zero
	}
	p := 22
	fmt.Sscanf(port, "%d", &p)
	return &net.TCPAddr{IP: ip, Port: p}
}

var appendMu sync.Mutex

// appendKnownHost pins key for alias (explicit trust on first use only).
func appendKnownHost(file, alias string, key ussh.PublicKey) error {
	appendMu.Lock()
	defer appendMu.Unlock()
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("pin host key of %s: %w", alias, err)
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(alias)}, key))
	return err
}

// PinHostKey appends a known_hosts line for addr (host:port) to file, creating it (0600).
// It is for callers that learnt the key out of band (the guest agent, the console).
func PinHostKey(file, addr string, key ussh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	return appendKnownHost(file, withPort(addr), key)
}

func (c *client) clientConfig(user string, auth []ssh.AuthMethod, alias string) (*ssh.ClientConfig, error) {
	cb, algos, err := c.hostKeyCallback(alias)
	if err != nil {
		return nil, err
	}
	return &ssh.ClientConfig{
		User:              user,
		Auth:              auth,
		HostKeyCallback:   cb,
		HostKeyAlgorithms: algos,
		Timeout:           c.cfg.DialTimeout,
		LeanAuth:          true,
	}, nil
}

// connect dials (bastion first when set) and installs the new connection.
func (c *client) connect(ctx context.Context) error {
	guestAlias := c.cfg.HostKeyAlias
	if guestAlias == "" {
		guestAlias = c.cfg.Addr
	}
	guestCfg, err := c.clientConfig(c.cfg.User, c.auth, withPort(guestAlias))
	if err != nil {
		return fmt.Errorf("ssh %s@%s: %w", c.cfg.User, c.cfg.Addr, err)
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()

	var jump *ssh.Client
	var raw net.Conn
	if j := c.cfg.Jump; j != nil {
		jalias := j.HostKeyAlias
		if jalias == "" {
			jalias = j.Addr
		}
		jcfg, err := c.clientConfig(j.User, c.jumpAuth, withPort(jalias))
		if err != nil {
			return fmt.Errorf("ssh jump host %s@%s: %w", j.User, j.Addr, err)
		}
		jc, err := c.handshake(dctx, nil, j.Addr, jcfg)
		if err != nil {
			return fmt.Errorf("ssh jump host %s@%s: %w", j.User, j.Addr, err)
		}
		jump = jc
		// direct-tcpip through the bastion: no local TCP dial to the guest address.
		raw, err = dialVia(dctx, jc, c.cfg.Addr)
		if err != nil {
			jc.Close()
			return fmt.Errorf("ssh %s via jump host %s: %w", c.cfg.Addr, j.Addr, err)
		}
	}
	guest, err := c.handshake(dctx, raw, c.cfg.Addr, guestCfg)
	if err != nil {
		if jump != nil {
			jump.Close()
		}
		if jump != nil {
			return fmt.Errorf("ssh %s@%s via jump host %s: %w", c.cfg.User, c.cfg.Addr, c.cfg.Jump.Addr, err)
		}
		return fmt.Errorf("ssh %s@%s: %w", c.cfg.User, c.cfg.Addr, err)
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		guest.Close()
		if jump != nil {
			jump.Close()
		}
		return errors.New("ssh: runner closed")
	}
	c.conn, c.jump = guest, jump
	c.stats.Connections++
	if jump != nil {
		c.stats.JumpConnections++
	}
	stop := make(chan struct{})
	c.stopKA = stop
	c.mu.Unlock()
	if c.cfg.KeepAlive > 0 {
		go keepAlive(guest, jump, c.cfg.KeepAlive, stop)
	}
	return nil
}

// dialVia opens a direct-tcpip channel, honouring ctx.
func dialVia(ctx context.Context, jc *ssh.Client, addr string) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		conn, err := jc.Dial("tcp", addr)
		ch <- res{conn, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// handshake runs the SSH handshake over raw (dialling addr directly when raw is nil).
func (c *client) handshake(ctx context.Context, raw net.Conn, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	if raw == nil {
		var err error
		raw, err = c.dialTCP(ctx, addr)
		if err != nil {
			return nil, err
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			raw.Close()
		case <-done:
		}
	}()
	sc, chans, reqs, err := ssh.NewClientConn(raw, addr, cfg)
	close(done)
	if err != nil {
		raw.Close()
		if ctx.Err() != nil && !errors.Is(err, ErrHostKey) {
			return nil, fmt.Errorf("handshake: %w (%v)", ctx.Err(), err)
		}
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// keepAlive sends keepalive@openssh.com; three misses in a row close the connection so
// blocked sessions fail instead of hanging.
func keepAlive(guest, jump *ssh.Client, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		switch err := ping(guest, every, stop); {
		case errors.Is(err, errStopped):
			return
		case errors.Is(err, errNoReply):
			misses++
		case err != nil:
			misses = 3
		default:
			misses = 0
		}
		if misses >= 3 {
			guest.Close()
			if jump != nil {
				jump.Close()
			}
			return
		}
	}
}

var (
	errNoReply = errors.New("no keepalive reply in time")
	errStopped = errors.New("keepalive stopped")
)

// ping sends keepalive@openssh.com and waits for the reply, at most timeout: errNoReply when
// none came, errStopped when stop closed first (a nil stop never does), the request's error
// when the transport failed.
func ping(conn *ssh.Client, timeout time.Duration, stop <-chan struct{}) error {
	errc := make(chan error, 1)
	go func() {
		_, _, err := conn.SendRequest("keepalive@openssh.com", true, nil)
		errc <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-errc:
		return err
	case <-t.C:
		return errNoReply
	case <-stop:
		return errStopped
	}
}

func (c *client) current() (*ssh.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("ssh: runner closed")
	}
	if c.conn == nil {
		return nil, fmt.Errorf("%w: not connected to %s (the connection dropped and was not re-established)", ErrConnectionLost, c.cfg.Addr)
	}
	return c.conn, nil
}

// Run implements Runner.
func (c *client) Run(ctx context.Context, cmd string) (Result, error) {
	return c.run(ctx, cmd, nil, cmd)
}

// run executes cmd with stdin; shown is what the transcript records.
func (c *client) run(ctx context.Context, cmd string, stdin []byte, shown string) (Result, error) {
	start := time.Now()
	res := Result{Cmd: cmd, ExitCode: -1}
	conn, err := c.current()
	if err != nil {
		c.rec.record(shown, res, time.Since(start), err)
		return res, err
	}
	sess, err := conn.NewSession()
	if err != nil {
		err = c.lost(fmt.Errorf("open session on %s: %w", c.cfg.Addr, err))
		c.rec.record(shown, res, time.Since(start), err)
		return res, err
	}
	c.mu.Lock()
	c.stats.Sessions++
	c.mu.Unlock()
	defer sess.Close()
	var stdout, stderr tailBuffer
	stdout.max, stderr.max = 4<<20, 1<<20
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if stdin != nil {
		sess.Stdin = bytes.NewReader(stdin)
	}
	if err := sess.Start(cmd); err != nil {
		err = c.lost(fmt.Errorf("start %q on %s: %w", shorten(shown, 80), c.cfg.Addr, err))
		c.rec.record(shown, res, time.Since(start), err)
		return res, err
	}
	waitc := make(chan error, 1)
	go func() { waitc <- sess.Wait() }()
	select {
	case err = <-waitc:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		<-waitc
		res.Stdout, res.Stderr = stdout.String(), stderr.String()
		err = fmt.Errorf("%q on %s: %w", shorten(shown, 80), c.cfg.Addr, ctx.Err())
		c.rec.record(shown, res, time.Since(start), err)
		return res, err
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		res.ExitCode = 0
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitStatus()
		if ee.Signal() != "" && ee.ExitStatus() == 0 {
			res.ExitCode = 128 + signalNumber(ee.Signal())
		}
		err = &ExitError{Cmd: c.rec.redact(shown), Code: res.ExitCode, StderrTail: c.rec.redact(Tail(res.Stderr, 15))}
	case errors.As(err, &missing), errors.Is(err, io.EOF):
		err = c.lost(fmt.Errorf("%q on %s ended without an exit status: %w", shorten(c.rec.redact(shown), 80), c.cfg.Addr, ErrConnectionLost))
	default:
		err = c.lost(fmt.Errorf("%q on %s: %w: %v", shorten(c.rec.redact(shown), 80), c.cfg.Addr, ErrConnectionLost, err))
	}
	c.rec.record(shown, res, time.Since(start), err)
	return res, err
}

func signalNumber(sig string) int {
	switch sig {
	case "HUP":
		return 1
	case "INT":
		return 2
	case "KILL":
		return 9
	case "SEGV":
		return 11
	case "PIPE":
		return 13
	case "TERM":
		return 15
	}
	return 0
}

// lost marks the connection dead when the error says so, and wraps ErrConnectionLost.
func (c *client) lost(err error) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		// A dead transport fails a cheap request at once; a silent one does not answer.
		if ping(conn, 5*time.Second, nil) != nil {
			c.drop()
		}
	}
	if errors.Is(err, ErrConnectionLost) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrConnectionLost, err)
}

func (c *client) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopKA != nil {
		close(c.stopKA)
		c.stopKA = nil
	}
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	if c.jump != nil {
		c.jump.Close()
		c.jump = nil
	}
}

// Put implements Runner: the data travels on stdin, never on the command line.
func (c *client) Put(ctx context.Context, p string, mode fs.FileMode, data []byte) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("put %s: want an absolute path", p)
	}
	tmp := p + ".aimachine-tmp"
	// The file gets its mode while still empty, so data (an API key) is never readable by
	// others, then is renamed into place.
	script := fmt.Sprintf("set -e; mkdir -p %s; rm -f %s; : > %s; chmod %04o %s; cat > %s; mv -f %s %s",
		Quote(path.Dir(p)), Quote(tmp), Quote(tmp), mode.Perm(), Quote(tmp), Quote(tmp), Quote(tmp), Quote(p))
	cmd := c.Sudo("sh -c " + Quote(script))
	shown := fmt.Sprintf("put %s (mode %04o, %d bytes)", p, mode.Perm(), len(data))
	_, err := c.run(ctx, cmd, data, shown)
	if err != nil {
		return fmt.Errorf("write %s on %s: %w", p, c.cfg.Addr, err)
	}
	return nil
}

// Sudo prefixes cmd with sudo unless the runner logs in as root.
func (c *client) Sudo(cmd string) string {
	if c.cfg.User == "root" {
		return cmd
	}
	return "sudo " + cmd
}

// Reconnect implements Runner: waits with exponential backoff, bounded by ctx.
func (c *client) Reconnect(ctx context.Context) error {
	c.drop()
	wait := c.cfg.Backoff
	attempt := 0
	var last error
	for {
		attempt++
		err := c.connect(ctx)
		if err == nil {
			c.mu.Lock()
			c.stats.Reconnects++
			c.mu.Unlock()
			return nil
		}
		if errors.Is(err, ErrHostKey) || errors.Is(err, ErrNotLoopback) {
			return err // retrying cannot help
		}
		last = err
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("reconnect to %s: gave up after %d attempts: %w (last error: %v)", c.cfg.Addr, attempt, ctx.Err(), last)
		case <-t.C:
		}
		wait *= 2
		if wait > c.cfg.MaxBackoff {
			wait = c.cfg.MaxBackoff
		}
	}
}

// Stats implements Runner.
func (c *client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Close implements Runner.
func (c *client) Close() error {
	c.drop()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if c.closeAgt != nil {
		c.closeAgt()
	}
	return nil
}

// Quote single-quotes s for a POSIX shell (encode.ShellQuote: the one shell encoder).
func Quote(s string) string { return encode.ShellQuote(s) }

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	buf bytes.Buffer
	max int
	cut bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.buf.Write(p)
	if b.max > 0 && b.buf.Len() > b.max {
		keep := b.buf.Bytes()[b.buf.Len()-b.max:]
		nb := make([]byte, len(keep))
		copy(nb, keep)
		b.buf.Reset()
		b.buf.Write(nb)
		b.cut = true
	}
	return n, nil
}

func (b *tailBuffer) String() string { return b.buf.String() }
