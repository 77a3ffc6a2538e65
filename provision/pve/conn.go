package pve

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/luthermonson/go-proxmox"
)

// ConnConfig says how to reach and authenticate to a PVE API.
type ConnConfig struct {
	// URL is the API base, ending in /api2/json.
	URL string
	// TokenID ("root@pam!aimachine") and TokenSecret authenticate with an API token.
	TokenID     string
	TokenSecret string
	// Username ("root@pam") and Password authenticate with a ticket; they win over a token
	// (a raw hostpci needs root@pam).
	Username string
	Password string
	// CAFile is a PEM bundle the server certificate must chain to (the system pool otherwise).
	CAFile string
	// Fingerprint pins the server certificate's SHA-256 ("AB:CD:…", colons and case optional).
	// With a fingerprint and no CAFile the chain is not checked, only the pin.
	Fingerprint string
	// ServerName overrides the TLS server name checked against the certificate.
	ServerName string
	// Insecure skips every TLS check (lab use, only when asked).
	Insecure bool
	// Timeout bounds every HTTP request (default 60s).
	Timeout time.Duration
	// Logger gets debug lines (secrets redacted); nil discards.
	Logger *slog.Logger
}

// DialContext builds the adapter and, with a username and password, logs in at once
// (POST /access/ticket), so that no request goes out unauthenticated: go-proxmox otherwise
// sends the first call without a ticket and waits for pveproxy's delayed "401 No ticket"
// (about 3 s) before logging in. With a token it does not contact the server.
func DialContext(ctx context.Context, cfg ConnConfig) (API, error) {
	api, err := Dial(cfg)
	if err != nil {
		return nil, err
	}
	if a := api.(*adapter); a.id.User != "" && !a.id.Token {
		if err := a.c.CreateSession(ctx); err != nil && !errors.Is(err, proxmox.ErrSessionExists) {
			return nil, wrap("log in as "+cfg.Username+" (POST /access/ticket)", err)
		}
	}
	return api, nil
}

// Dial builds the adapter. It does not contact the server (see DialContext).
func Dial(cfg ConnConfig) (API, error) {
	if cfg.URL == "" {
		return nil, errors.New("pve: no API URL")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, errors.New("pve: the API URL is not an absolute URL (not shown: it may hold credentials)")
	}
	// Credentials go with every request: only over TLS, and never inside the URL.
	if u.Scheme != "https" {
		return nil, fmt.Errorf("pve: the API URL uses %s://, want https:// (credentials travel only over TLS)", u.Scheme)
	}
	if u.User != nil {
		return nil, errors.New("pve: the API URL carries user:password@; pass credentials in the config instead")
	}
	if cfg.Insecure && (cfg.Fingerprint != "" || cfg.CAFile != "") {
		return nil, errors.New("pve: Insecure with a Fingerprint or CAFile: the pin would be ignored")
	}
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	// pveproxy speaks HTTP/1.1 only; its error text lives in the reason phrase.
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	hc := &http.Client{Transport: statusTransport{tr}, Timeout: timeout}

	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	secrets := []string{cfg.TokenSecret, cfg.Password}
	opts := []proxmox.Option{
		proxmox.WithHTTPClient(hc),
		proxmox.WithUserAgent("aimachine"),
		proxmox.WithLogger(&redactingLogger{log: log, secrets: secrets}),
	}
	id := Identity{}
	switch {
	case cfg.Username != "" && cfg.Password != "":
		opts = append(opts, proxmox.WithCredentials(&proxmox.Credentials{Username: cfg.Username, Password: cfg.Password}))
		id = Identity{User: cfg.Username}
	case cfg.TokenID != "" && cfg.TokenSecret != "":
		opts = append(opts, proxmox.WithAPIToken(cfg.TokenID, cfg.TokenSecret))
		id = Identity{User: cfg.TokenID, Token: true}
	default:
		return nil, errors.New("pve: no credentials (an API token or a username and password)")
	}
	c := proxmox.NewClient(strings.TrimRight(cfg.URL, "/"), opts...)
	return &adapter{c: c, id: id, log: log}, nil
}

func tlsConfig(cfg ConnConfig) (*tls.Config, error) {
	// The session cache lets a new connection (pveproxy closes idle keep-alive connections)
	// resume the TLS session: no certificate exchange, one round trip less with TLS 1.2.
	// VerifyConnection (the pin) runs on resumed sessions too.
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	if cfg.Insecure {
		tc.InsecureSkipVerify = true
		return tc, nil
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.Fingerprint != "" {
		want, err := parseFingerprint(cfg.Fingerprint)
		if err != nil {
			return nil, err
		}
		if cfg.CAFile == "" {
			// The pin replaces the chain check (PVE's self-signed certificates); it is checked
			// in VerifyConnection, which runs even with InsecureSkipVerify.
			tc.InsecureSkipVerify = true
		}
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if string(got[:]) != string(want) {
				return fmt.Errorf("server certificate fingerprint %s does not match the pinned %s (hint: check PROXMOX_VE_FINGERPRINT against the node's ssl_fingerprint)",
					formatFingerprint(got[:]), formatFingerprint(want))
			}
			return nil
		}
	}
	return tc, nil
}

func parseFingerprint(s string) ([]byte, error) {
	h := strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimPrefix(strings.ToLower(s), "sha256:")))
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("fingerprint %q is not a SHA-256 (want 32 hex bytes like AB:CD:…)", s)
	}
	return b, nil
}

func formatFingerprint(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

// statusTransport turns gateway statuses into errors: go-proxmox decodes the body of any
// status other than 400/401/403/500/501 as a success, so a 503 with an empty body would pass.
type statusTransport struct{ next http.RoundTripper }

func (t statusTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	switch res.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, 596, http.StatusTooManyRequests:
		_ = res.Body.Close()
		return nil, &HTTPStatusError{Code: res.StatusCode, Status: res.Status}
	}
	return res, nil
}

// redactingLogger adapts slog to go-proxmox's logger and removes secrets from every line.
type redactingLogger struct {
	log     *slog.Logger
	secrets []string
}

func (l *redactingLogger) redact(format string, v ...any) string {
	s := fmt.Sprintf(format, v...)
	for _, sec := range l.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

func (l *redactingLogger) Debugf(format string, v ...any) {
	l.log.Debug(l.redact(format, v...), "component", "go-proxmox")
}
func (l *redactingLogger) Infof(format string, v ...any) {
	l.log.Info(l.redact(format, v...), "component", "go-proxmox")
}
func (l *redactingLogger) Warnf(format string, v ...any) {
	l.log.Warn(l.redact(format, v...), "component", "go-proxmox")
}
func (l *redactingLogger) Errorf(format string, v ...any) {
	l.log.Error(l.redact(format, v...), "component", "go-proxmox")
}
