package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// GuestDialer connects to a simulated guest's address ("192.168.0.140:22") in memory.
// It must never dial the network.
type GuestDialer func(ctx context.Context, addr string) (net.Conn, error)

// JumpStats counts what the jump host did.
type JumpStats struct {
	Connections       int64 `json:"connections"`        // successful handshakes
	AuthFailures      int64 `json:"auth_failures"`      // rejected public keys / users
	Forwards          int64 `json:"forwards"`           // direct-tcpip channels opened to guests
	ForwardsRefused   int64 `json:"forwards_refused"`   // direct-tcpip channels that could not connect
	SessionsRefused   int64 `json:"sessions_refused"`   // session channels (shell/exec) refused
	ActiveConnections int64 `json:"active_connections"` // connections open now
}

// jumpHost is the simulated PVE host's sshd, reduced to what a bastion does (and the node shell of
// nodeshell.go): user root with
// public-key auth (keys from authorized_keys, re-read on every attempt), direct-tcpip forwarding
// to guest addresses only, through the GuestDialer (in memory).
type jumpHost struct {
	ln             net.Listener
	cfg            *ssh.ServerConfig
	authorizedKeys string
	dial           GuestDialer
	log            *slog.Logger
	node           nodeOps   // the node's root shell (nodeshell.go); set once the API exists
	files          nodeFiles // files written through the node shell (nodeshell.go)

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup

	connections, authFailures, forwards, forwardsRefused, sessionsRefused, active atomic.Int64
}

// serverVersion is what the SSH banner says: the sshd of a PVE 8 (Debian bookworm) host.
const serverVersion = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u7"

func newJumpHost(ln net.Listener, hostKey ssh.Signer, authorizedKeys string, dial GuestDialer, log *slog.Logger) *jumpHost {
	j := &jumpHost{ln: ln, authorizedKeys: authorizedKeys, dial: dial, log: log, conns: map[net.Conn]struct{}{}}
	j.cfg = &ssh.ServerConfig{
		ServerVersion:     serverVersion,
		PublicKeyCallback: j.checkKey,
		AuthLogCallback: func(c ssh.ConnMetadata, method string, err error) {
			if err != nil && method != "none" {
				j.log.Debug("jump host auth failed", "user", c.User(), "remote", c.RemoteAddr().String(), "method", method, "err", err)
			}
		},
	}
	j.cfg.AddHostKey(hostKey)
	return j
}

func (j *jumpHost) checkKey(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if c.User() != "root" {
		j.authFailures.Add(1)
		return nil, fmt.Errorf("user %q not allowed (only root)", c.User())
	}
	data, err := os.ReadFile(j.authorizedKeys)
	if err != nil {
		j.authFailures.Add(1)
		return nil, fmt.Errorf("read authorized_keys: %w", err)
	}
	want := key.Marshal()
	for rest := data; len(bytes.TrimSpace(rest)) > 0; {
		k, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			break
		}
		if bytes.Equal(k.Marshal(), want) {
			return &ssh.Permissions{Extensions: map[string]string{"pubkey-fp": ssh.FingerprintSHA256(key)}}, nil
		}
		rest = r
	}
	j.authFailures.Add(1)
	return nil, errors.New("public key not in authorized_keys")
}

func (j *jumpHost) serve() {
	for {
		nc, err := j.ln.Accept()
		if err != nil {
			return
		}
		j.mu.Lock()
		if j.closed {
			j.mu.Unlock()
			nc.Close()
			return
		}
		j.conns[nc] = struct{}{}
		j.wg.Add(1)
		j.mu.Unlock()
		go func() {
			defer j.wg.Done()
			defer func() {
				j.mu.Lock()
				delete(j.conns, nc)
				j.mu.Unlock()
				nc.Close()
			}()
			j.handle(nc)
		}()
	}
}

func (j *jumpHost) handle(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second)) // handshake bound (LoginGraceTime)
	sconn, chans, reqs, err := ssh.NewServerConn(nc, j.cfg)
	if err != nil {
		j.log.Debug("jump host handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	j.connections.Add(1)
	j.active.Add(1)
	defer j.active.Add(-1)
	j.log.Info("jump host login", "user", sconn.User(), "remote", sconn.RemoteAddr().String(), "key", sconn.Permissions.Extensions["pubkey-fp"])
	go ssh.DiscardRequests(reqs) // keepalive@openssh.com, no-more-sessions@openssh.com ...: replied false

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for nch := range chans {
		switch nch.ChannelType() {
		case "direct-tcpip":
			wg.Add(1)
			go func() {
				defer wg.Done()
				j.forward(ctx, nch)
			}()
		case "session":
			wg.Add(1)
			go func() {
				defer wg.Done()
				j.session(nch)
			}()
		default:
			_ = nch.Reject(ssh.UnknownChannelType, "unknown channel type "+nch.ChannelType())
		}
	}
	cancel()
	wg.Wait()
}

// directTCPIP is the RFC 4254 §7.2 payload.
type directTCPIP struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

func (j *jumpHost) forward(ctx context.Context, nch ssh.NewChannel) {
	var p directTCPIP
	if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil {
		j.forwardsRefused.Add(1)
		_ = nch.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	gc, err := j.dial(dctx, addr)
	cancel()
	if err != nil {
		j.forwardsRefused.Add(1)
		j.log.Info("jump host forward refused", "to", addr, "err", err)
		// sshd answers strerror(errno); OpenSSH prints "channel 0: open failed: connect failed: <text>".
		_ = nch.Reject(ssh.ConnectionFailed, strerror(err))
		return
	}
	ch, creqs, err := nch.Accept()
	if err != nil {
		gc.Close()
		return
	}
	j.forwards.Add(1)
	j.log.Debug("jump host forward", "to", addr)
	go ssh.DiscardRequests(creqs)

	stop := context.AfterFunc(ctx, func() { gc.Close(); ch.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(gc, ch) // client -> guest
		if cw, ok := gc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, _ = io.Copy(ch, gc) // guest -> client; ends when the guest closes
	_ = ch.CloseWrite()
	ch.Close()
	gc.Close()
	<-done
}

func (j *jumpHost) stats() JumpStats {
	return JumpStats{
		Connections:       j.connections.Load(),
		AuthFailures:      j.authFailures.Load(),
		Forwards:          j.forwards.Load(),
		ForwardsRefused:   j.forwardsRefused.Load(),
		SessionsRefused:   j.sessionsRefused.Load(),
		ActiveConnections: j.active.Load(),
	}
}

func (j *jumpHost) resetStats() {
	for _, c := range []*atomic.Int64{&j.connections, &j.authFailures, &j.forwards, &j.forwardsRefused, &j.sessionsRefused} {
		c.Store(0)
	}
}

func (j *jumpHost) close() error {
	j.mu.Lock()
	j.closed = true
	err := j.ln.Close()
	for c := range j.conns {
		c.Close()
	}
	j.mu.Unlock()
	j.wg.Wait()
	return err
}

// strerror renders a dial error as sshd does (strerror of the errno: "No route to host").
func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		return strings.ToUpper(msg[:1]) + msg[1:]
	}
	return err.Error()
}
