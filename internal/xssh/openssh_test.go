// Not generated: the aimachine fork's own code.

package xssh_test

import (
	"bytes"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	upstream "golang.org/x/crypto/ssh"

	"github.com/aimachine/aimachine/internal/xssh"
)

const sshdPath = "/usr/sbin/sshd"

// TestLeanAuthAgainstOpenSSH logs in to a real OpenSSH sshd (on 127.0.0.1, started from a
// throw-away config) with LeanAuth: an Ed25519 key, an RSA key (OpenSSH ≥ 8.8 refuses SHA-1
// signatures, so the algorithm must come from its server-sig-algs), a refused key followed by
// an accepted one, and then runs a command on the connection. sshd processes packets in order,
// so the authentication request that arrives before it has answered the service request is
// handled right after it. .ci/run installs openssh-server; the test needs root (sshd's
// privilege separation).
func TestLeanAuthAgainstOpenSSH(t *testing.T) {
	if _, err := os.Stat(sshdPath); err != nil {
		t.Skip("no OpenSSH sshd here (.ci/run installs openssh-server)")
	}
	if os.Geteuid() != 0 {
		t.Skip("sshd needs root for privilege separation")
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	ed, rs, refused := ed25519Pair(t), rsaPair(t), ed25519Pair(t)
	addr, logs := startSSHD(t, ed.pub, rs.pub)

	for _, tc := range []struct {
		name    string
		signers []xssh.Signer
		// sshd's debug1 log: "userauth-request for user U service ssh-connection method M"
		wantMethods []string
	}{
		{"ed25519", []xssh.Signer{ed.client}, []string{"publickey"}},
		{"rsa", []xssh.Signer{rs.client}, []string{"publickey"}},
		// The refused key's signed request, then the next key's query and signed request.
		{"refused-then-accepted", []xssh.Signer{refused.client, ed.client}, []string{"publickey", "publickey", "publickey"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientConfig(true, tc.signers...)
			cfg.User = me.Username
			cfg.Timeout = 10 * time.Second
			mark := logs.len()
			c, err := xssh.Dial("tcp", addr, cfg)
			if err != nil {
				t.Fatalf("dial sshd: %v", err)
			}
			defer c.Close()
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			out, err := s.Output("echo lean-$((40+2))")
			if err != nil {
				t.Fatalf("exec: %v", err)
			}
			if got := strings.TrimSpace(string(out)); got != "lean-42" {
				t.Fatalf("output %q", got)
			}
			var methods []string
			for _, line := range strings.Split(logs.since(mark), "\n") {
				if _, m, ok := strings.Cut(line, "service ssh-connection method "); ok && strings.Contains(line, "userauth-request") {
					methods = append(methods, strings.Fields(m)[0])
				}
			}
			if !slices.Equal(methods, tc.wantMethods) {
				t.Fatalf("sshd saw authentication requests %v, want %v", methods, tc.wantMethods)
			}
		})
	}
}

// startSSHD runs sshd -D on a free loopback port, accepting the given keys.
func startSSHD(t *testing.T, keys ...upstream.PublicKey) (string, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	block, err := upstream.MarshalPrivateKey(hostKey, "") // the key clientConfig pins
	if err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "host_ed25519")
	if err := os.WriteFile(hostKey, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	var ak bytes.Buffer
	for _, k := range keys {
		ak.Write(upstream.MarshalAuthorizedKey(k))
	}
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, ak.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := strings.Join([]string{
		"ListenAddress 127.0.0.1",
		"Port " + port,
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authKeys,
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"PidFile none",
		"LogLevel DEBUG1",
	}, "\n") + "\n"
	confPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // Debian's privilege-separation directory
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", confPath)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, logs
		}
		if i == 100 {
			t.Fatalf("sshd did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is sshd's log, written by the process's copier and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *syncBuffer) since(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()[n:]
}

func (b *syncBuffer) String() string { return b.since(0) }
