// Not generated: the aimachine fork's own code.

package xssh_test

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	upstream "golang.org/x/crypto/ssh"

	"github.com/aimachine/aimachine/internal/xssh"
)

// The server side of these tests is upstream golang.org/x/crypto/ssh (and, in
// TestLeanAuthAgainstOpenSSH, OpenSSH's sshd): the fork's client is checked against
// servers it shares no code change with.

type keyPair struct {
	client xssh.Signer
	pub    upstream.PublicKey
}

func ed25519Pair(t *testing.T) keyPair {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pairFrom(t, priv)
}

func rsaPair(t *testing.T) keyPair {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pairFrom(t, priv)
}

func pairFrom(t *testing.T, priv any) keyPair {
	t.Helper()
	s, err := xssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := upstream.ParsePublicKey(s.PublicKey().Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{client: s, pub: pub}
}

// authLog records what the server saw, one entry per user-authentication request it
// answered (upstream logs every request but a key query).
type authLog struct {
	mu      sync.Mutex
	entries []string
}

func (l *authLog) add(method string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := method + ":ok"
	if err != nil {
		e = method + ":refused"
	}
	l.entries = append(l.entries, e)
}

func (l *authLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

// serverConfig accepts the given keys for user "u"; its host key is hostKey (pinned by
// clientConfig).
func serverConfig(t *testing.T, log *authLog, accepted ...upstream.PublicKey) *upstream.ServerConfig {
	t.Helper()
	cfg := &upstream.ServerConfig{
		PublicKeyCallback: func(c upstream.ConnMetadata, key upstream.PublicKey) (*upstream.Permissions, error) {
			for _, a := range accepted {
				if c.User() == "u" && string(a.Marshal()) == string(key.Marshal()) {
					return &upstream.Permissions{}, nil
				}
			}
			return nil, errors.New("unknown key")
		},
		AuthLogCallback: func(_ upstream.ConnMetadata, method string, err error) { log.add(method, err) },
	}
	hs, err := upstream.NewSignerFromKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AddHostKey(hs)
	return cfg
}

// hostKey is the test servers' host key; clients pin it (sshd's too: startSSHD writes it).
var hostKey = func() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

func clientConfig(lean bool, signers ...xssh.Signer) *xssh.ClientConfig {
	pinned, err := xssh.NewPublicKey(hostKey.Public())
	if err != nil {
		panic(err)
	}
	return &xssh.ClientConfig{
		User:            "u",
		Auth:            []xssh.AuthMethod{xssh.PublicKeys(signers...)},
		HostKeyCallback: xssh.FixedHostKey(pinned),
		LeanAuth:        lean,
	}
}

// handshake runs both ends over conns and returns the client's error.
func handshake(t *testing.T, cc, sc net.Conn, ccfg *xssh.ClientConfig, scfg *upstream.ServerConfig) error {
	t.Helper()
	srvErr := make(chan error, 1)
	go func() {
		conn, chans, reqs, err := upstream.NewServerConn(sc, scfg)
		if err == nil {
			go upstream.DiscardRequests(reqs)
			go func() {
				for nc := range chans {
					nc.Reject(upstream.Prohibited, "no channels here")
				}
			}()
			conn.Close()
		}
		srvErr <- err
	}()
	conn, _, _, err := xssh.NewClientConn(cc, "pipe", ccfg)
	if err == nil {
		conn.Close()
	}
	cc.Close()
	<-srvErr
	return err
}

// TestLeanAuthSendsOneSignedRequest: with LeanAuth the server answers exactly one
// authentication request (no "none" before it, no query); upstream's exchange, for contrast,
// costs a "none" request and a query (the query is not logged) before the signed one.
func TestLeanAuthSendsOneSignedRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		lean bool
		want []string
	}{
		{"lean", true, []string{"publickey:ok"}},
		{"upstream", false, []string{"none:refused", "publickey:ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := ed25519Pair(t)
			var log authLog
			cc, sc := tcpPipe(t)
			if err := handshake(t, cc, sc, clientConfig(tc.lean, k.client), serverConfig(t, &log, k.pub)); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got := log.get(); !slices.Equal(got, tc.want) {
				t.Fatalf("server saw %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLeanAuthFallsBackWhenTheKeyIsRefused: a refused first key costs one request, then the
// usual exchange carries on from that answer with the other keys (no "none" request, the
// refused key not asked again: a server's MaxAuthTries is spent no faster than by upstream),
// so the second, accepted key still logs in; with no other key, upstream's error.
func TestLeanAuthFallsBackWhenTheKeyIsRefused(t *testing.T) {
	wrong, right := ed25519Pair(t), ed25519Pair(t)
	var log authLog
	cc, sc := tcpPipe(t)
	if err := handshake(t, cc, sc, clientConfig(true, wrong.client, right.client), serverConfig(t, &log, right.pub)); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	want := []string{"publickey:refused", "publickey:ok"} // the accepted key's query is not logged
	if got := log.get(); !slices.Equal(got, want) {
		t.Fatalf("server saw %v, want %v", got, want)
	}
	var log2 authLog
	cc, sc = tcpPipe(t)
	err := handshake(t, cc, sc, clientConfig(true, wrong.client), serverConfig(t, &log2, right.pub))
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("a refused only key: err = %v, want upstream's unable to authenticate", err)
	}
}

// TestLeanAuthSignsRSAWithAServerSigAlg: an RSA key is signed with an algorithm from the
// server's server-sig-algs (EXT_INFO, read before the request leaves); a server that refuses
// SHA-1 signatures (as OpenSSH ≥ 8.8 does) accepts it at the first request.
func TestLeanAuthSignsRSAWithAServerSigAlg(t *testing.T) {
	k := rsaPair(t)
	var log authLog
	scfg := serverConfig(t, &log, k.pub)
	scfg.PublicKeyAuthAlgorithms = []string{upstream.KeyAlgoRSASHA512, upstream.KeyAlgoRSASHA256, upstream.KeyAlgoED25519}
	cc, sc := tcpPipe(t)
	if err := handshake(t, cc, sc, clientConfig(true, k.client), scfg); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if got := log.get(); !slices.Equal(got, []string{"publickey:ok"}) {
		t.Fatalf("server saw %v, want one accepted publickey request", got)
	}
}

// TestLeanAuthDoesNotWaitForServiceAccept puts a gate between client and server that holds
// the server's SERVICE_ACCEPT back until the client has sent two encrypted packets (the
// service request and the authentication request). AES-GCM leaves SSH packet lengths in
// clear (RFC 5647), so the gate can count packets without keys. With LeanAuth the client
// fills the gate by itself: its request does not wait for the answer, which is the round
// trip saved. Upstream's client (the contrast) sends one packet and waits, so its gate only
// opens when it gives up.
func TestLeanAuthDoesNotWaitForServiceAccept(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lean    bool
		giveUp  time.Duration
		wantMet bool
	}{
		{"lean", true, 30 * time.Second, true},
		{"upstream", false, 300 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := ed25519Pair(t)
			var log authLog
			cc, gc := tcpPipe(t)
			gs, sc := tcpPipe(t)
			g := startGate(gc, gs, tc.giveUp)
			ccfg := clientConfig(tc.lean, k.client)
			ccfg.Ciphers = []string{"aes128-gcm@openssh.com"}
			scfg := serverConfig(t, &log, k.pub)
			scfg.Ciphers = []string{"aes128-gcm@openssh.com"}
			if err := handshake(t, cc, sc, ccfg, scfg); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			gc.Close()
			gs.Close()
			met, sent := g.result()
			if met != tc.wantMet {
				t.Fatalf("client had sent %d encrypted packets when SERVICE_ACCEPT was let through (gate condition met = %v, want %v)", sent, met, tc.wantMet)
			}
		})
	}
}

type gate struct {
	mu      sync.Mutex
	cond    *sync.Cond
	sent    int // encrypted packets from the client
	decided bool
	met     bool
	atSent  int
}

func (g *gate) result() (bool, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.met, g.atSent
}

// startGate relays between the client side c and the server side s.
func startGate(c, s net.Conn, giveUp time.Duration) *gate {
	g := &gate{}
	g.cond = sync.NewCond(&g.mu)
	go func() { // client → server
		f := &framer{r: bufio.NewReader(c)}
		for {
			unit, enc, err := f.next()
			if err != nil {
				s.Close()
				return
			}
			if _, err := s.Write(unit); err != nil {
				return
			}
			if enc {
				g.mu.Lock()
				g.sent++
				g.cond.Broadcast()
				g.mu.Unlock()
			}
		}
	}()
	go func() { // server → client
		f := &framer{r: bufio.NewReader(s)}
		encIndex := 0
		for {
			unit, enc, err := f.next()
			if err != nil {
				c.Close()
				return
			}
			if enc {
				// Encrypted packet 0 is EXT_INFO (sent with NEWKEYS), 1 is SERVICE_ACCEPT.
				if encIndex == 1 {
					deadline := time.AfterFunc(giveUp, func() {
						g.mu.Lock()
						g.decided = true
						g.cond.Broadcast()
						g.mu.Unlock()
					})
					g.mu.Lock()
					for g.sent < 2 && !g.decided {
						g.cond.Wait()
					}
					g.met, g.atSent = g.sent >= 2, g.sent
					g.mu.Unlock()
					deadline.Stop()
				}
				encIndex++
			}
			if _, err := c.Write(unit); err != nil {
				return
			}
		}
	}()
	return g
}

// framer splits one direction of an SSH connection into the version line and binary packets
// (RFC 4253 section 6): cleartext until NEWKEYS (message 21), then AES-GCM packets, whose
// length field is in clear and followed by a 16-byte tag (RFC 5647 section 7.3).
type framer struct {
	r       *bufio.Reader
	version bool
	enc     bool
}

func (f *framer) next() ([]byte, bool, error) {
	if !f.version {
		line, err := f.r.ReadBytes('\n')
		f.version = true
		return line, false, err
	}
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(f.r, hdr); err != nil {
		return nil, false, err
	}
	n := int(binary.BigEndian.Uint32(hdr))
	if n > 1<<20 {
		return nil, false, fmt.Errorf("packet length %d", n)
	}
	if f.enc {
		n += 16
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(f.r, body); err != nil {
		return nil, false, err
	}
	unit := append(hdr, body...)
	if f.enc {
		return unit, true, nil
	}
	if len(body) > 1 && body[1] == 21 {
		f.enc = true
	}
	return unit, false, nil
}

// tcpPipe is a connected loopback TCP pair (net.Pipe is unbuffered, and both SSH ends write
// their version line before reading).
func tcpPipe(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			c = nil
		}
		acc <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}
