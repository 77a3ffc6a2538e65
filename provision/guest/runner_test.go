package guest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/guest/guesttest"
)

type env struct {
	dir, keyFile, knownHosts string
	signer                   ssh.Signer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	s, kf := guesttest.ClientKey(t, dir)
	return &env{dir: dir, keyFile: kf, knownHosts: filepath.Join(dir, "known_hosts"), signer: s}
}

// pinnedServer starts a test server on loopback whose host key is pinned in e.knownHosts.
func (e *env) pinnedServer(t *testing.T, h guesttest.Handler) (*guesttest.Server, string) {
	t.Helper()
	srv := guesttest.New(t, e.signer.PublicKey(), h)
	addr := srv.Start("")
	srv.PinIn(t, e.knownHosts, addr)
	return srv, addr
}

func (e *env) cfg(addr string) guest.Config {
	return guest.Config{Addr: addr, User: "root", KeyFile: e.keyFile, KnownHostsFile: e.knownHosts,
		Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
}

func TestRunReusesOneConnection(t *testing.T) {
	e := newEnv(t)
	root := t.TempDir()
	srv, addr := e.pinnedServer(t, guesttest.Shell(root))

	ctx := context.Background()
	r, err := guest.Dial(ctx, e.cfg(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Run(ctx, "echo hello; echo warn >&2")
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "hello\n" || res.Stderr != "warn\n" || res.ExitCode != 0 {
		t.Fatalf("got %+v", res)
	}
	res, err = r.Run(ctx, "echo out; echo 'E: Unable to locate package nope' >&2; exit 100")
	var ee *guest.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("want *ExitError, got %v", err)
	}
	if ee.Code != 100 || !strings.Contains(ee.StderrTail, "Unable to locate package") || res.ExitCode != 100 || res.Stdout != "out\n" {
		t.Fatalf("exit error %+v, result %+v", ee, res)
	}
	if !strings.Contains(ee.Cmd, "exit 100") {
		t.Fatalf("exit error does not name the command: %v", ee)
	}
	st := r.Stats()
	if st.Connections != 1 || st.Sessions != 2 {
		t.Fatalf("stats %+v, want 1 connection 2 sessions", st)
	}
	if acc, _ := srv.Stats(); acc != 1 {
		t.Fatalf("server saw %d handshakes, want 1", acc)
	}
}

func TestPutSendsDataOnStdin(t *testing.T) {
	e := newEnv(t)
	root := t.TempDir()
	srv, addr := e.pinnedServer(t, guesttest.Shell(root))
	ctx := context.Background()
	r, err := guest.Dial(ctx, e.cfg(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	target := filepath.Join(root, "etc", "vllm", "vllm.env")
	secret := "VLLM_API_KEY=sk-very-secret-1234\n"
	if err := r.Put(ctx, target, 0o600, []byte(secret)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(target)
	if err != nil || string(got) != secret {
		t.Fatalf("file %q %v", got, err)
	}
	fi, _ := os.Stat(target)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	_, execs := srv.Stats()
	for _, c := range execs {
		if strings.Contains(c, "sk-very-secret") {
			t.Fatalf("secret on the command line: %s", c)
		}
	}
	if _, err := os.Stat(target + ".aimachine-tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind")
	}
}

func TestHostKeyRefused(t *testing.T) {
	e := newEnv(t)
	srv := guesttest.New(t, e.signer.PublicKey(), guesttest.Shell(t.TempDir()))
	addr := srv.Start("")
	ctx := context.Background()

	// No known_hosts file at all.
	_, err := guest.Dial(ctx, e.cfg(addr))
	if !errors.Is(err, guest.ErrHostKey) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("want ErrHostKey for a missing known_hosts, got %v", err)
	}
	// A file that does not know this host.
	other := guesttest.New(t, e.signer.PublicKey(), nil)
	other.PinIn(t, e.knownHosts, "10.9.9.9:22")
	_, err = guest.Dial(ctx, e.cfg(addr))
	if !errors.Is(err, guest.ErrHostKey) || !strings.Contains(err.Error(), "unknown") || !strings.Contains(err.Error(), "hint:") {
		t.Fatalf("want an unknown-key error with a hint, got %v", err)
	}
	// A different key pinned for this address.
	other.PinIn(t, e.knownHosts, addr)
	_, err = guest.Dial(ctx, e.cfg(addr))
	if !errors.Is(err, guest.ErrHostKey) || !strings.Contains(err.Error(), "MISMATCH") || !strings.Contains(err.Error(), "ssh-keygen") {
		t.Fatalf("want a mismatch error, got %v", err)
	}
	if acc, execs := srv.Stats(); acc != 0 || len(execs) != 0 {
		t.Fatalf("a refused host got %d sessions %v", acc, execs)
	}
}

func TestAcceptNewHostKeyPinsOnlyWhenAsked(t *testing.T) {
	e := newEnv(t)
	srv := guesttest.New(t, e.signer.PublicKey(), guesttest.Shell(t.TempDir()))
	addr := srv.Start("")
	ctx := context.Background()
	cfg := e.cfg(addr)
	cfg.AcceptNewHostKey = true
	r, err := guest.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	// Now pinned: a plain dial works.
	r, err = guest.Dial(ctx, e.cfg(addr))
	if err != nil {
		t.Fatalf("pinned key not accepted: %v", err)
	}
	r.Close()
	// A new server on the same address (reinstalled machine) is refused even with AcceptNewHostKey.
	srv.Stop()
	srv2 := guesttest.New(t, e.signer.PublicKey(), guesttest.Shell(t.TempDir()))
	srv2.Start(addr)
	_, err = guest.Dial(ctx, cfg)
	if !errors.Is(err, guest.ErrHostKey) || !strings.Contains(err.Error(), "MISMATCH") {
		t.Fatalf("changed key accepted: %v", err)
	}
}

func TestJumpHostDirectTCPIPAndLoopbackGuard(t *testing.T) {
	e := newEnv(t)
	root := t.TempDir()
	g := guesttest.New(t, e.signer.PublicKey(), guesttest.Shell(root)) // never listens: reachable only in memory
	bastion := guesttest.New(t, e.signer.PublicKey(), nil)
	bastion.Routes["192.168.0.140:22"] = g
	baddr := bastion.Start("")
	bastion.PinIn(t, e.knownHosts, baddr)
	g.PinIn(t, e.knownHosts, "192.168.0.140")

	ctx := context.Background()
	cfg := e.cfg("192.168.0.140")
	cfg.LoopbackOnly = true

	// Without the jump host the guest address is refused before any dial.
	_, err := guest.Dial(ctx, cfg)
	if !errors.Is(err, guest.ErrNotLoopback) {
		t.Fatalf("want ErrNotLoopback, got %v", err)
	}

	cfg.Jump = &guest.Jump{Addr: baddr, User: "root"}
	r, err := guest.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Run(ctx, "echo through")
	if err != nil || res.Stdout != "through\n" {
		t.Fatalf("%+v %v", res, err)
	}
	if st := r.Stats(); st.Connections != 1 || st.JumpConnections != 1 {
		t.Fatalf("stats %+v", st)
	}
	if bastion.Directs[0] != "192.168.0.140:22" {
		t.Fatalf("direct-tcpip to %v", bastion.Directs)
	}
	// Round trips (issue #15): each handshake opens with one signed public-key request
	// (internal/xssh LeanAuth), no "none" request and no key query before it.
	if got := bastion.AuthLog(); !slices.Equal(got, []string{"publickey:ok"}) {
		t.Fatalf("jump host answered authentication requests %v, want one accepted publickey request", got)
	}
	if got := g.AuthLog(); !slices.Equal(got, []string{"publickey:ok"}) {
		t.Fatalf("guest answered authentication requests %v, want one accepted publickey request", got)
	}

	// A jump host that is not loopback is refused in simulator mode.
	cfg.Jump = &guest.Jump{Addr: "192.168.0.2:22", User: "root"}
	if _, err := guest.Dial(ctx, cfg); !errors.Is(err, guest.ErrNotLoopback) {
		t.Fatalf("want ErrNotLoopback for the bastion, got %v", err)
	}

	// The bastion's key is checked as well.
	kh2 := filepath.Join(e.dir, "known_hosts_guest_only")
	g.PinIn(t, kh2, "192.168.0.140")
	cfg.KnownHostsFile = kh2
	cfg.Jump = &guest.Jump{Addr: baddr, User: "root"}
	if _, err := guest.Dial(ctx, cfg); !errors.Is(err, guest.ErrHostKey) || !strings.Contains(err.Error(), "jump host") {
		t.Fatalf("unpinned bastion accepted: %v", err)
	}
}

func TestAgentAuth(t *testing.T) {
	e := newEnv(t)
	srv, addr := e.pinnedServer(t, guesttest.Shell(t.TempDir()))

	// An in-process agent holding the key.
	sock := filepath.Join(e.dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skip("no unix sockets:", err)
	}
	defer ln.Close()
	kr := agent.NewKeyring()
	raw, _ := os.ReadFile(e.keyFile)
	priv, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	kr.Add(agent.AddedKey{PrivateKey: priv})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(kr, c)
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	cfg := e.cfg(addr)
	cfg.KeyFile = ""
	r, err := guest.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Run(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}
	// The agent's key crosses from upstream's agent package to the client (internal/xssh)
	// and signs the one request at once.
	if got := srv.AuthLog(); !slices.Equal(got, []string{"publickey:ok"}) {
		t.Fatalf("server answered authentication requests %v, want one accepted publickey request", got)
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	if _, err := guest.Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK") {
		t.Fatalf("want a clear no-credentials error, got %v", err)
	}
}

func TestDropMidCommandAndReconnect(t *testing.T) {
	e := newEnv(t)
	shell := guesttest.Shell(t.TempDir())
	srv := guesttest.New(t, e.signer.PublicKey(), func(ctx context.Context, cmd string, in io.Reader, out, errw io.Writer) int {
		if cmd == "reboot" {
			return guesttest.DropExit
		}
		return shell(ctx, cmd, in, out, errw)
	})
	addr := srv.Start("")
	srv.PinIn(t, e.knownHosts, addr)
	ctx := context.Background()
	r, err := guest.Dial(ctx, e.cfg(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Run(ctx, "reboot")
	if !errors.Is(err, guest.ErrConnectionLost) {
		t.Fatalf("want ErrConnectionLost, got %v", err)
	}
	var ee *guest.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("a dropped connection is not an exit status: %v", err)
	}

	// The machine is down for a while, then sshd comes back on the same port.
	srv.Stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(150 * time.Millisecond) // the simulated reboot, not a readiness wait
		srv.Start(addr)
	}()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Reconnect(rctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := r.Run(ctx, "true"); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Connections != 2 || st.Reconnects != 1 {
		t.Fatalf("stats %+v", st)
	}

	// A guest that never comes back: Reconnect gives up with ctx, naming the last error.
	srv.Stop()
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	err = r.Reconnect(short)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last error") {
		t.Fatalf("want a bounded give-up, got %v", err)
	}
}

func TestRunHonoursContext(t *testing.T) {
	e := newEnv(t)
	_, addr := e.pinnedServer(t, guesttest.Shell(t.TempDir()))
	r, err := guest.Dial(context.Background(), e.cfg(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = r.Run(ctx, "sleep 30")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline, got %v", err)
	}
	if _, err := r.Run(context.Background(), "true"); err != nil {
		t.Fatalf("connection unusable after a cancelled command: %v", err)
	}
}

func TestTranscriptRedactsSecrets(t *testing.T) {
	e := newEnv(t)
	_, addr := e.pinnedServer(t, guesttest.Shell(t.TempDir()))
	var entries []guest.Entry
	cfg := e.cfg(addr)
	cfg.Transcript = func(en guest.Entry) { entries = append(entries, en) }
	cfg.Secrets = []string{"sk-secret-abc"}
	r, err := guest.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Run(context.Background(), "echo key=sk-secret-abc; echo sk-secret-abc >&2; exit 3")
	if err == nil || strings.Contains(err.Error(), "sk-secret-abc") {
		t.Fatalf("secret in error: %v", err)
	}
	if len(entries) != 1 {
		t.Fatalf("entries %+v", entries)
	}
	en := entries[0]
	for _, s := range []string{en.Cmd, en.Stdout, en.Stderr} {
		if strings.Contains(s, "sk-secret-abc") || !strings.Contains(s, guest.Redacted) {
			t.Fatalf("not redacted: %q", s)
		}
	}
	if en.ExitCode != 3 {
		t.Fatalf("exit %d", en.ExitCode)
	}

	// The decorator form, around any Runner.
	var got []guest.Entry
	w := guest.WithTranscript(r, func(en guest.Entry) { got = append(got, en) }, "hunter22")
	w.Run(context.Background(), "echo hunter22")
	if len(got) != 1 || strings.Contains(got[0].Stdout, "hunter22") {
		t.Fatalf("decorator entries %+v", got)
	}
}

// A non-root login writes through sudo, with the data on stdin.
func TestPutUsesSudoForNonRoot(t *testing.T) {
	e := newEnv(t)
	root := t.TempDir()
	shell := guesttest.Shell(root)
	var cmds []string
	var mu sync.Mutex
	srv := guesttest.New(t, e.signer.PublicKey(), func(ctx context.Context, cmd string, in io.Reader, out, errw io.Writer) int {
		mu.Lock()
		cmds = append(cmds, cmd)
		mu.Unlock()
		if !strings.HasPrefix(cmd, "sudo ") {
			return 1
		}
		return shell(ctx, strings.TrimPrefix(cmd, "sudo "), in, out, errw)
	})
	addr := srv.Start("")
	srv.PinIn(t, e.knownHosts, addr)
	cfg := e.cfg(addr)
	cfg.User = "ubuntu"
	r, err := guest.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	target := filepath.Join(root, "etc", "systemd", "system", "x.service")
	if err := r.Put(context.Background(), target, 0o644, []byte("[Unit]\n")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Dir(target))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("parent dir %v %v: want 0755", fi, err)
	}
	if len(cmds) != 1 || !strings.HasPrefix(cmds[0], "sudo sh -c ") {
		t.Fatalf("commands %q", cmds)
	}
}
