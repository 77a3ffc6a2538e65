package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aimachine/aimachine/provision/internal/retry"
	"github.com/aimachine/aimachine/provision/pve"
)

// Environment variables read by ConnOptionsFromEnv (the names of the bpg Terraform provider).
const (
	EnvEndpoint    = "PROXMOX_VE_ENDPOINT"    // https://host:8006/ (api2/json appended when missing)
	EnvAPIToken    = "PROXMOX_VE_API_TOKEN"   // USER@REALM!ID=SECRET
	EnvUsername    = "PROXMOX_VE_USERNAME"    // root@pam (ticket login; needed for a raw hostpci)
	EnvPassword    = "PROXMOX_VE_PASSWORD"    //
	EnvInsecure    = "PROXMOX_VE_INSECURE"    // true: skip TLS verification (lab only)
	EnvCAFile      = "PROXMOX_VE_CA_FILE"     // PEM the server certificate must chain to
	EnvFingerprint = "PROXMOX_VE_FINGERPRINT" // SHA-256 pin of the server certificate
	EnvSimulator   = "AIMACHINE_SIMULATOR"    // "1": loopback only (the simulator's env file sets it)
)

// ConnOptions say how to reach the Proxmox VE API.
type ConnOptions struct {
	// Endpoint is the base URL, e.g. https://pve.example:8006/ ("/api2/json" is appended when missing).
	Endpoint string
	// APIToken is "USER@REALM!ID=SECRET".
	APIToken string
	// Username and Password log in with a ticket (root@pam can set a raw hostpci; tokens cannot).
	// When both a token and a password are given, the password login is used.
	Username string
	Password string
	// CAFile and Fingerprint verify the server certificate; Insecure skips verification.
	CAFile      string
	Fingerprint string
	Insecure    bool
	// Simulator refuses a non-loopback endpoint and makes SSH loopback-only (AIMACHINE_SIMULATOR=1).
	Simulator bool
	// Timeout bounds each HTTP request (default 60s).
	Timeout time.Duration
	// Logger receives debug logs (secrets redacted); nil discards.
	Logger *slog.Logger
	// Backoff overrides the waits' backoff (tests); zero means retry.Default.
	Backoff retry.Backoff
}

// ConnOptionsFromEnv reads the PROXMOX_VE_* variables through getenv (os.Getenv when nil).
// A missing variable is an error naming exactly the missing variables.
func ConnOptionsFromEnv(getenv func(string) string) (ConnOptions, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	o := ConnOptions{
		Endpoint:    strings.TrimSpace(getenv(EnvEndpoint)),
		APIToken:    strings.TrimSpace(getenv(EnvAPIToken)),
		Username:    strings.TrimSpace(getenv(EnvUsername)),
		Password:    getenv(EnvPassword),
		CAFile:      strings.TrimSpace(getenv(EnvCAFile)),
		Fingerprint: strings.TrimSpace(getenv(EnvFingerprint)),
	}
	var missing []string
	if o.Endpoint == "" {
		missing = append(missing, EnvEndpoint)
	}
	switch {
	case o.Username != "" && o.Password == "":
		missing = append(missing, EnvPassword)
	case o.Username == "" && o.Password != "":
		missing = append(missing, EnvUsername)
	case o.APIToken == "" && o.Username == "":
		missing = append(missing, EnvAPIToken+" (or "+EnvUsername+" and "+EnvPassword+")")
	}
	if v := getenv(EnvInsecure); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("%s=%q is not a boolean (true or false)", EnvInsecure, v)
		}
		o.Insecure = b
	}
	o.Simulator = getenv(EnvSimulator) == "1"
	if len(missing) > 0 {
		return o, fmt.Errorf("missing environment: %s (hint: source the env file of your Proxmox host or of the simulator)", strings.Join(missing, ", "))
	}
	return o, nil
}

// Client is a connection to a Proxmox VE cluster; Plan, Deploy and Destroy run through it.
type Client struct {
	api       pve.API
	log       *slog.Logger
	backoff   retry.Backoff
	simulator bool
	endpoint  string
}

// Connect checks the options, builds the API client and proves the endpoint, TLS and
// credentials work with one request: the login (POST /access/ticket) with a username and
// password, the version read with a token.
//
// Credentials travel only over verified TLS: an endpoint that is not https, one that carries
// user:password@, and Insecure together with a Fingerprint or CAFile are refused before
// anything is sent.
func Connect(ctx context.Context, o ConnOptions) (*Client, error) {
	apiURL, err := apiURL(o.Endpoint)
	if err != nil {
		return nil, err
	}
	if err := o.checkTLS(); err != nil {
		return nil, err
	}
	if o.Simulator {
		if err := requireLoopback(apiURL); err != nil {
			return nil, err
		}
	}
	cfg := pve.ConnConfig{
		URL: apiURL, CAFile: o.CAFile, Fingerprint: o.Fingerprint, Insecure: o.Insecure,
		Timeout: o.Timeout, Logger: o.Logger, Username: o.Username, Password: o.Password,
	}
	if o.APIToken != "" {
		id, secret, ok := strings.Cut(o.APIToken, "=")
		if !ok || !strings.Contains(id, "!") || !strings.Contains(id, "@") || secret == "" {
			// Never quote the value: it holds the secret.
			return nil, fmt.Errorf("%s is not USER@REALM!TOKENID=SECRET", EnvAPIToken)
		}
		cfg.TokenID, cfg.TokenSecret = id, secret
	}
	if o.Username != "" && o.Password != "" {
		// Password login wins: root@pam may set a raw hostpci, a token may not.
		cfg.TokenID, cfg.TokenSecret = "", ""
	}
	b := o.Backoff
	if b.Initial == 0 {
		b = retry.Default
	}
	// A connection reset or a 5xx during the login is retried like every later call (the
	// ticket POST creates nothing); a refused login or a stall (the request timeout) is not.
	var api pve.API
	err = retry.Wait{Description: "connect to " + apiURL, Backoff: b, MaxAttempts: 3, Retryable: transientClass}.Do(ctx, func(ctx context.Context) error {
		var err error
		api, err = pve.DialContext(ctx, cfg)
		if err == nil && cfg.Username == "" {
			// With a token nothing was sent yet: the version read proves endpoint, TLS and
			// token. A password login (DialContext) has proved them already; the version is
			// read when needed (the evidence), off the critical path.
			_, err = api.Version(ctx)
		}
		return err
	})
	if err != nil {
		hint := connectHint(err, apiURL)
		return nil, &TaskError{Phase: PhaseInfra, Task: "connect to " + apiURL, Err: err, Hint: hint}
	}
	c := NewClient(api, o)
	c.endpoint = apiURL
	return c, nil
}

// NewClient wraps an existing API (tests, or a caller with its own adapter). Only Logger,
// Backoff and Simulator of o are used.
func NewClient(api pve.API, o ConnOptions) *Client {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := o.Backoff
	if b.Initial == 0 {
		b = retry.Default
	}
	return &Client{api: api, log: log, backoff: b, simulator: o.Simulator}
}

// API exposes the underlying Proxmox API (read-only checks in steps and verify).
func (c *Client) API() pve.API { return c.api }

// connectHint names the cause of a failed first contact with the API, from the error's
// class or, for the standard library's network and TLS errors, its text.
func connectHint(err error, apiURL string) string {
	host := apiURL
	if u, perr := url.Parse(apiURL); perr == nil {
		host = u.Host
	}
	msg := err.Error()
	switch {
	case errors.Is(err, pve.ErrAuth):
		return "check " + EnvAPIToken + " (USER@REALM!ID=SECRET) or " + EnvUsername + "/" + EnvPassword + ", and the user's permissions"
	case strings.Contains(msg, "read CA file"):
		return EnvCAFile + " names a file that cannot be read: copy the cluster CA from the node (/etc/pve/pve-root-ca.pem) and point " + EnvCAFile + " at the copy, or pin the certificate with " + EnvFingerprint
	case strings.Contains(msg, "holds no PEM certificate"):
		return EnvCAFile + " must hold a PEM certificate (-----BEGIN CERTIFICATE-----), e.g. a copy of the node's /etc/pve/pve-root-ca.pem"
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"), strings.Contains(msg, "first record does not look like a TLS handshake"):
		return host + " answers plain HTTP, not TLS: pveproxy serves the API with TLS on port 8006, so another service listens on this port; check the port in " + EnvEndpoint
	case strings.Contains(msg, "does not match the pinned"):
		return "the node's certificate is not the pinned one: if it was renewed, read the new one with `pvenode cert info` on the node and update " + EnvFingerprint + "; otherwise something intercepts the connection"
	case strings.Contains(msg, "certificate") || strings.Contains(msg, "x509"):
		return "the node's certificate is not trusted: set " + EnvCAFile + " (the cluster CA /etc/pve/pve-root-ca.pem) or " + EnvFingerprint + " (the node's ssl_fingerprint); " + EnvInsecure + "=true only in a lab"
	case strings.Contains(msg, "connection refused"):
		return "nothing listens at " + host + ": check the host and port in " + EnvEndpoint + " and that pveproxy runs (systemctl status pveproxy)"
	case strings.Contains(msg, "no such host"):
		return "the host name in " + EnvEndpoint + " does not resolve: check it, or use the node's address"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "i/o timeout"):
		return "no answer from " + host + " in time: check the address, routing and firewall (port 8006)"
	}
	return "check " + EnvEndpoint + " and that pveproxy is reachable"
}

// checkTLS refuses an insecure mode that would override a configured pin or CA: the user
// asked for verification, and --insecure would silently drop it.
func (o ConnOptions) checkTLS() error {
	if !o.Insecure {
		return nil
	}
	var set []string
	if o.Fingerprint != "" {
		set = append(set, EnvFingerprint)
	}
	if o.CAFile != "" {
		set = append(set, EnvCAFile)
	}
	if len(set) == 0 {
		return nil
	}
	return fmt.Errorf("TLS verification is configured (%s) and insecure mode (--insecure or %s=true) would switch it off: "+
		"drop --insecure and unset %s to verify the API's certificate, or unset %s to run without verification (lab only)",
		strings.Join(set, ", "), EnvInsecure, EnvInsecure, strings.Join(set, " and "))
}

// Warnings are what the caller should print on every run with these options: today, that
// insecure mode is on.
func (o ConnOptions) Warnings() []string {
	if !o.Insecure {
		return nil
	}
	host := "the endpoint"
	if u, err := url.Parse(o.Endpoint); err == nil && u.Host != "" {
		host = u.Host
	}
	return []string{fmt.Sprintf("TLS verification of the Proxmox API is off (--insecure or %s=true): the API token or password goes to whoever answers at %s; "+
		"pin the certificate instead with %s (the node's ssl_fingerprint) or %s", EnvInsecure, host, EnvFingerprint, EnvCAFile)}
}

// apiURL turns a base URL into the API URL ending in /api2/json. Only https is accepted:
// the token or password goes with every request. The endpoint is never quoted in an error,
// since it may carry credentials.
func apiURL(endpoint string) (string, error) {
	if endpoint == "" {
		return "", fmt.Errorf("missing environment: %s", EnvEndpoint)
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return "", fmt.Errorf("%s is not a URL like https://pve.example:8006/ (its value is not shown: it may hold credentials)", EnvEndpoint)
	}
	if u.User != nil {
		return "", fmt.Errorf("%s carries credentials (user:password@ before the host), which would be sent and logged with the URL: "+
			"remove them and set %s, or %s and %s", EnvEndpoint, EnvAPIToken, EnvUsername, EnvPassword)
	}
	if !strings.EqualFold(u.Scheme, "https") {
		hint := "use https://" + u.Host + "/ (pveproxy serves the API with TLS on port 8006)"
		if strings.EqualFold(u.Scheme, "http") && u.Port() == "8006" {
			hint = "pveproxy answers only TLS on port 8006: use https://" + u.Host + "/"
		}
		return "", fmt.Errorf("%s uses %s://: the API token or password travels only over verified TLS, so nothing was sent (hint: %s)",
			EnvEndpoint, strings.ToLower(u.Scheme), hint)
	}
	u.Scheme = "https"
	p := strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(p, "/api2/json") {
		p += "/api2/json"
	}
	u.Path = p
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// requireLoopback refuses anything but 127.0.0.0/8, ::1 or localhost (simulator mode).
func requireLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s=1 but %s points at %q, not a loopback address (hint: the simulator listens on 127.0.0.1; unset %s for a real host)",
		EnvSimulator, EnvEndpoint, host, EnvSimulator)
}
