package provision

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fakepve "github.com/aimachine/aimachine/fakes/pve"
)

// countingListener is a raw TCP listener on loopback that records every connection and
// every byte anyone sends it.
type countingListener struct {
	ln    *net.TCPListener
	conns atomic.Int64
	bytes atomic.Int64
}

func newCountingListener(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &countingListener{ln: ln.(*net.TCPListener)}
}

func (l *countingListener) addr() string { return l.ln.Addr().String() }

// drain accepts whatever connected so far (the kernel queues connections whether or not
// Accept runs) and reads what each sent, until the queue is empty.
func (l *countingListener) drain(t *testing.T) {
	t.Helper()
	for {
		_ = l.ln.SetDeadline(time.Now().Add(100 * time.Millisecond))
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.conns.Add(1)
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			l.bytes.Add(int64(n))
			if err != nil {
				break
			}
		}
		c.Close()
	}
}

// TestCredentialsOnlyOverVerifiedTLS: every refused endpoint or option set is refused
// before a connection is opened — the listener at the endpoint receives nothing — and the
// error never quotes a credential.
func TestCredentialsOnlyOverVerifiedTLS(t *testing.T) {
	const secret, password, urlPass = "tok-secret-31337", "root-pass-4242", "url-pass-777"
	l := newCountingListener(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    ConnOptions
		want string
	}{
		{"http with a token", ConnOptions{Endpoint: "http://" + l.addr() + "/", APIToken: "root@pam!t=" + secret}, "PROXMOX_VE_ENDPOINT uses http://: the API token or password travels only over verified TLS, so nothing was sent"},
		{"http with a password", ConnOptions{Endpoint: "http://" + l.addr() + "/", Username: "root@pam", Password: password}, "uses http://"},
		{"HTTP in capitals", ConnOptions{Endpoint: "HTTP://" + l.addr() + "/", APIToken: "root@pam!t=" + secret}, "uses http://"},
		{"websocket", ConnOptions{Endpoint: "ws://" + l.addr() + "/", APIToken: "root@pam!t=" + secret}, "uses ws://"},
		{"ftp", ConnOptions{Endpoint: "ftp://" + l.addr() + "/", APIToken: "root@pam!t=" + secret}, "uses ftp://"},
		{"credentials in the URL", ConnOptions{Endpoint: "https://root%40pam:" + urlPass + "@" + l.addr() + "/", APIToken: "root@pam!t=" + secret}, "PROXMOX_VE_ENDPOINT carries credentials (user:password@ before the host)"},
		{"credentials in an http URL", ConnOptions{Endpoint: "http://root:" + urlPass + "@" + l.addr() + "/", APIToken: "root@pam!t=" + secret}, "carries credentials"},
		{"no scheme", ConnOptions{Endpoint: "//root:" + urlPass + "@" + l.addr(), APIToken: "root@pam!t=" + secret}, "is not a URL like https://pve.example:8006/ (its value is not shown"},
		{"insecure with a fingerprint", ConnOptions{Endpoint: "https://" + l.addr() + "/", APIToken: "root@pam!t=" + secret, Insecure: true, Fingerprint: strings.Repeat("AB:", 31) + "AB"},
			"TLS verification is configured (PROXMOX_VE_FINGERPRINT) and insecure mode (--insecure or PROXMOX_VE_INSECURE=true) would switch it off"},
		{"insecure with a CA file", ConnOptions{Endpoint: "https://" + l.addr() + "/", Username: "root@pam", Password: password, Insecure: true, CAFile: ca},
			"TLS verification is configured (PROXMOX_VE_CA_FILE)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Connect(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			for _, s := range []string{secret, password, urlPass} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error quotes a credential: %v", err)
				}
			}
			l.drain(t)
			if n, b := l.conns.Load(), l.bytes.Load(); n != 0 || b != 0 {
				t.Errorf("the endpoint received %d connections and %d bytes, want none", n, b)
			}
		})
	}
	// The listener does count: an https attempt reaches it (and fails the handshake).
	_, err := Connect(context.Background(), ConnOptions{Endpoint: "https://" + l.addr() + "/", APIToken: "root@pam!t=" + secret, Timeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("a raw listener passed for a Proxmox API")
	}
	l.drain(t)
	if l.conns.Load() == 0 {
		t.Error("the listener saw no connection from an https endpoint: it would prove nothing above")
	}
}

func TestInsecureModeWarnsOnEveryRun(t *testing.T) {
	o := ConnOptions{Endpoint: "https://pve.example:8006/", APIToken: "root@pam!t=s3cr3t", Insecure: true}
	w := o.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "TLS verification of the Proxmox API is off") || !strings.Contains(w[0], "pve.example:8006") || strings.Contains(w[0], "s3cr3t") {
		t.Errorf("warnings %q", w)
	}
	o.Insecure = false
	if w := o.Warnings(); len(w) != 0 {
		t.Errorf("verified mode warns: %q", w)
	}
	// From the environment as well.
	env := map[string]string{EnvEndpoint: "https://pve:8006/", EnvAPIToken: "root@pam!a=b", EnvInsecure: "true"}
	o, err := ConnOptionsFromEnv(func(k string) string { return env[k] })
	if err != nil || len(o.Warnings()) != 1 {
		t.Errorf("%s=true: %v, warnings %q", EnvInsecure, err, o.Warnings())
	}
}

// TestConnectHintsNameTheRealCause: one row per failure of the first contact, each against
// a real listener on loopback, and the hint must name that cause.
func TestConnectHintsNameTheRealCause(t *testing.T) {
	srv := fakepve.New(fakepve.WithAuthDelay(0), fakepve.WithTimeScale(0))
	tlsSrv := srv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	plain := httptest.NewServer(http.NotFoundHandler()) // plain HTTP where TLS is expected
	t.Cleanup(plain.Close)
	closed := newCountingListener(t)
	closedAddr := closed.addr()
	closed.ln.Close()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := fakepve.DefaultTokenID + "=" + fakepve.DefaultTokenSecret
	https := func(u string) string { return strings.Replace(u, "http://", "https://", 1) + "/" }
	for _, tc := range []struct {
		name string
		o    ConnOptions
		hint string
	}{
		{"missing CA file", ConnOptions{Endpoint: tlsSrv.URL + "/", APIToken: token, CAFile: filepath.Join(dir, "no-such-ca.pem")},
			"PROXMOX_VE_CA_FILE names a file that cannot be read: copy the cluster CA from the node (/etc/pve/pve-root-ca.pem)"},
		{"CA file that is not PEM", ConnOptions{Endpoint: tlsSrv.URL + "/", APIToken: token, CAFile: notPEM},
			"PROXMOX_VE_CA_FILE must hold a PEM certificate"},
		{"plain http on the TLS port", ConnOptions{Endpoint: https(plain.URL), APIToken: token},
			"answers plain HTTP, not TLS: pveproxy serves the API with TLS on port 8006, so another service listens on this port"},
		{"untrusted certificate", ConnOptions{Endpoint: tlsSrv.URL + "/", APIToken: token},
			"the node's certificate is not trusted: set PROXMOX_VE_CA_FILE"},
		{"certificate not the pinned one", ConnOptions{Endpoint: tlsSrv.URL + "/", APIToken: token, Fingerprint: strings.Repeat("AB:", 31) + "AB"},
			"the node's certificate is not the pinned one: if it was renewed, read the new one with `pvenode cert info`"},
		{"nothing listens", ConnOptions{Endpoint: "https://" + closedAddr + "/", APIToken: token},
			"nothing listens at " + closedAddr},
		{"wrong token", ConnOptions{Endpoint: tlsSrv.URL + "/", APIToken: fakepve.DefaultTokenID + "=wrong", Fingerprint: srv.Fingerprint()},
			"check PROXMOX_VE_API_TOKEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Timeout = 5 * time.Second
			_, err := Connect(context.Background(), tc.o)
			var te *TaskError
			if !errors.As(err, &te) {
				t.Fatalf("got %v, want a TaskError", err)
			}
			if !strings.Contains(te.Hint, tc.hint) {
				t.Errorf("hint %q\nwant %q\n(error: %v)", te.Hint, tc.hint, te.Err)
			}
		})
	}
}
