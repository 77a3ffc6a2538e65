package guesttest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/aimachine/aimachine/provision/internal/retry"
)

// Handler runs one exec request and returns its exit status. Returning ErrDrop closes the
// whole connection without an exit status (a dropped link / reboot).
type Handler func(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) int

// DropExit is the status a Handler returns to drop the connection mid-command.
const DropExit = -1000

// Server is an SSH server on 127.0.0.1.
type Server struct {
	t       testing.TB
	Signer  ssh.Signer
	Handler Handler
	Routes  map[string]*Server // direct-tcpip targets (addr -> server served in memory)
	// Dialer, when set, serves direct-tcpip destinations not in Routes (e.g. a simulated guest
	// reached in memory).
	Dialer   func(ctx context.Context, dest string) (net.Conn, error)
	cfg      *ssh.ServerConfig
	mu       sync.Mutex
	ln       net.Listener
	addr     string
	conns    map[*ssh.ServerConn]struct{}
	Accepted int // handshakes completed
	// AuthRequests are the user-authentication requests answered, "method:ok" or
	// "method:refused", in order (upstream's AuthLogCallback: a key query that is accepted is
	// not logged).
	AuthRequests []string
	Execs        []string
	Directs      []string // direct-tcpip destinations asked for
}

// ClientKey makes a client key pair: the signer and a private key file written under dir.
func ClientKey(t testing.TB, dir string) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, file
}

// New makes a server accepting the given client public key. It does not listen until Start;
// a server used only as a direct-tcpip route needs no Start.
func New(t testing.TB, authorized ssh.PublicKey, h Handler) *Server {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, Signer: signer, Handler: h, Routes: map[string]*Server{}, conns: map[*ssh.ServerConn]struct{}{}}
	want := authorized.Marshal()
	s.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(want) {
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key for %s", meta.User())
		},
		AuthLogCallback: func(_ ssh.ConnMetadata, method string, err error) {
			e := method + ":ok"
			if err != nil {
				e = method + ":refused"
			}
			s.mu.Lock()
			s.AuthRequests = append(s.AuthRequests, e)
			s.mu.Unlock()
		},
	}
	s.cfg.AddHostKey(signer)
	t.Cleanup(s.Stop)
	return s
}

// Start listens on 127.0.0.1 (on addr when given, to come back on the same port).
func (s *Server) Start(addr string) string {
	s.t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	// Coming back on the old port (a simulated reboot): it may still be held for a moment.
	var ln net.Listener
	err := retry.Wait{Description: "listen on " + addr, Backoff: retry.Backoff{Initial: 20 * time.Millisecond, Max: 20 * time.Millisecond}, MaxAttempts: 50,
		Retryable: func(err error) (string, bool) { return "address in use", errors.Is(err, syscall.EADDRINUSE) },
	}.Do(context.Background(), func(context.Context) error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.ln, s.addr = ln, ln.Addr().String()
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.ServeConn(c)
		}
	}()
	return s.addr
}

// Addr is the listening address.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Stop closes the listener and every connection (a machine going down).
func (s *Server) Stop() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	conns := s.conns
	s.conns = map[*ssh.ServerConn]struct{}{}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for c := range conns {
		c.Close()
	}
}

// DropConnections closes every open connection but keeps listening.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := s.conns
	s.conns = map[*ssh.ServerConn]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// PinIn writes the server's host key into a known_hosts file under the given names.
func (s *Server) PinIn(t testing.TB, file string, names ...string) {
	t.Helper()
	for i, n := range names {
		names[i] = knownhosts.Normalize(n)
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, knownhosts.Line(names, s.Signer.PublicKey()))
}

// Stats returns counters.
func (s *Server) Stats() (accepted int, execs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Accepted, append([]string(nil), s.Execs...)
}

// ServeConn runs the SSH protocol on c.
func (s *Server) ServeConn(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		c.Close()
		return
	}
	s.mu.Lock()
	s.conns[sc] = struct{}{}
	s.Accepted++
	s.mu.Unlock()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go s.session(sc, ch, creqs)
		case "direct-tcpip":
			var p struct {
				Host  string
				Port  uint32
				OHost string
				OPort uint32
			}
			if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
				nc.Reject(ssh.ConnectionFailed, "bad payload")
				continue
			}
			dest := net.JoinHostPort(p.Host, fmt.Sprint(p.Port))
			s.mu.Lock()
			s.Directs = append(s.Directs, dest)
			target := s.Routes[dest]
			dialer := s.Dialer
			s.mu.Unlock()
			if target == nil && dialer == nil {
				nc.Reject(ssh.ConnectionFailed, "no route to "+dest)
				continue
			}
			if target == nil {
				conn, err := dialer(context.Background(), dest)
				if err != nil {
					nc.Reject(ssh.ConnectionFailed, err.Error())
					continue
				}
				ch, creqs, err := nc.Accept()
				if err != nil {
					conn.Close()
					continue
				}
				go ssh.DiscardRequests(creqs)
				go pipe(ch, conn)
				continue
			}
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go ssh.DiscardRequests(creqs)
			go target.ServeConn(&chanConn{Channel: ch, local: dummyAddr(dest), remote: dummyAddr("bastion")})
		default:
			nc.Reject(ssh.UnknownChannelType, "unsupported")
		}
	}
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

func (s *Server) session(sc *ssh.ServerConn, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Cmd string }
			ssh.Unmarshal(req.Payload, &p)
			req.Reply(true, nil)
			s.mu.Lock()
			s.Execs = append(s.Execs, p.Cmd)
			s.mu.Unlock()
			ctx, cancel := context.WithCancel(context.Background())
			go func() { // a "signal" request or a closed channel cancels
				for r := range reqs {
					if r.Type == "signal" {
						cancel()
					}
					if r.WantReply {
						r.Reply(false, nil)
					}
				}
				cancel()
			}()
			code := s.Handler(ctx, p.Cmd, ch, ch, ch.Stderr())
			cancel()
			if code == DropExit {
				sc.Close()
				return
			}
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
			return
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

// Shell is a Handler running commands with the real /bin/sh in dir (tests log in as root,
// so no sudo prefix is sent). env is added to the environment.
func Shell(dir string, env ...string) Handler {
	return func(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
		c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
		c.Dir = dir
		c.Env = append(os.Environ(), env...)
		c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
		err := c.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ee.ExitCode()
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 127
		}
		return 0
	}
}

// pipe copies both ways until either side closes.
func pipe(ch ssh.Channel, c net.Conn) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(ch, c); ch.CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, ch); done <- struct{}{} }()
	<-done
	ch.Close()
	c.Close()
}

type chanConn struct {
	ssh.Channel
	local, remote net.Addr
}

func (c *chanConn) LocalAddr() net.Addr                { return c.local }
func (c *chanConn) RemoteAddr() net.Addr               { return c.remote }
func (c *chanConn) SetDeadline(t time.Time) error      { return nil }
func (c *chanConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *chanConn) SetWriteDeadline(t time.Time) error { return nil }

type dummyAddr string

func (a dummyAddr) Network() string { return "tcp" }
func (a dummyAddr) String() string  { return string(a) }

// AuthLog returns a copy of AuthRequests.
func (s *Server) AuthLog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.AuthRequests...)
}
