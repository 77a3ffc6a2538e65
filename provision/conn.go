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

// Connect checks the options, builds the API client and makes one read (the version) to
// prove the endpoint, TLS and credentials work.
func Connect(ctx context.Context, o ConnOptions) (*Client, error) {
	apiURL, err := apiURL(o.Endpoint)
	if err != nil {
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
	api, err := pve.DialContext(ctx, cfg)
	if err == nil {
		_, err = api.Version(ctx)
	}
	if err != nil {
		hint := "check " + EnvEndpoint + " and that pveproxy is reachable"
		switch {
		case errors.Is(err, pve.ErrAuth):
			hint = "check " + EnvAPIToken + " (USER@REALM!ID=SECRET) or " + EnvUsername + "/" + EnvPassword + ", and the user's permissions"
		case strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "x509") || strings.Contains(err.Error(), "fingerprint"):
			hint = "set " + EnvCAFile + " (the cluster CA /etc/pve/pve-root-ca.pem) or " + EnvFingerprint + " (the node's ssl_fingerprint); " + EnvInsecure + "=true only in a lab"
		}
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

// apiURL turns a base URL into the API URL ending in /api2/json.
func apiURL(endpoint string) (string, error) {
	if endpoint == "" {
		return "", fmt.Errorf("missing environment: %s", EnvEndpoint)
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("%s=%q is not a URL like https://pve.example:8006/", EnvEndpoint, endpoint)
	}
	u.User = nil
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
