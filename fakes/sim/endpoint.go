package sim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Names of the files a simulator writes into its state dir.
const (
	EnvFileName        = "pvesim.env"
	CAFileName         = "pve-root-ca.pem"
	TLSKeyFileName     = "pve-ssl.key"
	HostKeyFileName    = "ssh_host_ed25519_key"
	ToolKeyFileName    = "id_ed25519"
	AuthorizedKeysName = "authorized_keys"
	KnownHostsFileName = "known_hosts"
)

// Environment variables of the env file (<state-dir>/pvesim.env).
//
// PROXMOX_VE_ENDPOINT follows the bpg/terraform-provider-proxmox convention: it is the base URL
// of the host (https://127.0.0.1:PORT/); a client appends "api2/json" itself.
const (
	EnvEndpoint    = "PROXMOX_VE_ENDPOINT"
	EnvAPIToken    = "PROXMOX_VE_API_TOKEN" // root@pam!aimachine=SECRET
	EnvUsername    = "PROXMOX_VE_USERNAME"
	EnvPassword    = "PROXMOX_VE_PASSWORD"
	EnvCAFile      = "PROXMOX_VE_CA_FILE"
	EnvFingerprint = "PROXMOX_VE_FINGERPRINT"
	EnvJumpHost    = "AIMACHINE_JUMP_HOST" // root@127.0.0.1:PORT
	EnvSSHKey      = "AIMACHINE_SSH_KEY"
	EnvKnownHosts  = "AIMACHINE_KNOWN_HOSTS"
	EnvSimulator   = "AIMACHINE_SIMULATOR" // "1"
	EnvControlURL  = "PVESIM_CONTROL_URL"  // https://127.0.0.1:PORT/_sim/
)

// Endpoint is everything a client needs to use a running simulator, whether it runs
// in-process (Sim) or in a container (fakes/container). All addresses are loopback.
type Endpoint struct {
	// BaseURL is the host's base URL, "https://127.0.0.1:PORT/" (what PROXMOX_VE_ENDPOINT holds).
	BaseURL string
	// APIURL is BaseURL + "api2/json" (what go-proxmox's NewClient takes).
	APIURL string
	// ControlURL is the simulator control API, BaseURL + "_sim/".
	ControlURL string
	// CAPEM is the PEM of the self-signed certificate the API serves (it is its own CA).
	CAPEM []byte
	// CAFile is a file holding CAPEM.
	CAFile string
	// Fingerprint is the SHA-256 of the certificate, upper-case colon hex like PVE's ssl_fingerprint.
	Fingerprint string
	// TokenID is the API token id ("root@pam!aimachine"), TokenSecret its secret.
	TokenID     string
	TokenSecret string
	// Username and Password are the root@pam credentials (ticket login).
	Username string
	Password string
	// JumpUser and JumpAddr name the SSH jump host ("root", "127.0.0.1:PORT").
	JumpUser string
	JumpAddr string
	// JumpHostKey is the jump host's public host key in authorized_keys format (no newline).
	JumpHostKey string
	// SSHKeyFile is the private key (OpenSSH format) the tool uses for the jump host and the guests;
	// SSHPublicKey is its public half in authorized_keys format.
	SSHKeyFile   string
	SSHPublicKey string
	// KnownHostsFile pins the jump host key under "[127.0.0.1]:PORT".
	KnownHostsFile string
	// EnvFile is the env file describing all of the above.
	EnvFile string
	// StateDir is the directory holding the files above.
	StateDir string
}

// JumpHost returns "user@host:port" as AIMACHINE_JUMP_HOST and ssh -J take it.
func (e Endpoint) JumpHost() string { return e.JumpUser + "@" + e.JumpAddr }

// APIToken returns "root@pam!aimachine=SECRET".
func (e Endpoint) APIToken() string { return e.TokenID + "=" + e.TokenSecret }

// Env returns the env file's variables.
func (e Endpoint) Env() map[string]string {
	return map[string]string{
		EnvEndpoint:    e.BaseURL,
		EnvAPIToken:    e.APIToken(),
		EnvUsername:    e.Username,
		EnvPassword:    e.Password,
		EnvCAFile:      e.CAFile,
		EnvFingerprint: e.Fingerprint,
		EnvJumpHost:    e.JumpHost(),
		EnvSSHKey:      e.SSHKeyFile,
		EnvKnownHosts:  e.KnownHostsFile,
		EnvSimulator:   "1",
		EnvControlURL:  e.ControlURL,
	}
}

// envOrder is the order variables are written in.
var envOrder = []string{EnvEndpoint, EnvAPIToken, EnvUsername, EnvPassword, EnvCAFile, EnvFingerprint,
	EnvJumpHost, EnvSSHKey, EnvKnownHosts, EnvSimulator, EnvControlURL}

// MarshalEnv renders vars as an env file: KEY=VALUE lines, values single-quoted only when they
// contain characters a shell would interpret. Known keys come first in a fixed order.
func MarshalEnv(vars map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString("# written by pvesim; secrets inside: keep it 0600\n# use it from a shell with: source pvesim.env (every line is an export)\n")
	seen := map[string]bool{}
	write := func(k string) {
		v, ok := vars[k]
		if !ok || seen[k] {
			return
		}
		seen[k] = true
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	for _, k := range envOrder {
		write(k)
	}
	var rest []string
	for k := range vars {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		write(k)
	}
	return b.Bytes()
}

func shellQuote(v string) string {
	safe := v != ""
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_!", r)) {
			safe = false
			break
		}
	}
	if safe {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// ParseEnv reads an env file written by MarshalEnv (KEY=VALUE, '#' comments, optional single
// or double quotes around a value).
func ParseEnv(data []byte) (map[string]string, error) {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("env file line %d: want [export ]KEY=VALUE, got %q", n, line)
		}
		uq, err := unquote(v)
		if err != nil {
			return nil, fmt.Errorf("env file line %d: %w", n, err)
		}
		vars[k] = uq
	}
	return vars, sc.Err()
}

func unquote(v string) (string, error) {
	if len(v) < 2 {
		return v, nil
	}
	switch v[0] {
	case '"':
		if v[len(v)-1] != '"' {
			return "", fmt.Errorf("unterminated double quote in %q", v)
		}
		return v[1 : len(v)-1], nil
	case '\'':
		// shellQuote's form: 'a'\''b'
		var b strings.Builder
		rest := v
		for rest != "" {
			if rest[0] != '\'' {
				return "", fmt.Errorf("bad single quoting in %q", v)
			}
			end := strings.IndexByte(rest[1:], '\'')
			if end < 0 {
				return "", fmt.Errorf("unterminated single quote in %q", v)
			}
			b.WriteString(rest[1 : 1+end])
			rest = rest[end+2:]
			if strings.HasPrefix(rest, `\'`) {
				b.WriteByte('\'')
				rest = rest[2:]
			}
		}
		return b.String(), nil
	}
	return v, nil
}

// LoadEndpoint reads a state dir's env file and the files it names (CA, public keys, known_hosts).
func LoadEndpoint(stateDir string) (Endpoint, error) {
	envFile := filepath.Join(stateDir, EnvFileName)
	data, err := os.ReadFile(envFile)
	if err != nil {
		return Endpoint{}, fmt.Errorf("read simulator env file: %w (hint: is pvesim running with --state-dir %s?)", err, stateDir)
	}
	vars, err := ParseEnv(data)
	if err != nil {
		return Endpoint{}, fmt.Errorf("parse %s: %w", envFile, err)
	}
	e, err := EndpointFromEnv(vars)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%s: %w", envFile, err)
	}
	e.EnvFile, e.StateDir = envFile, stateDir
	if e.CAPEM, err = os.ReadFile(e.CAFile); err != nil {
		return Endpoint{}, fmt.Errorf("read simulator CA: %w", err)
	}
	if pub, err := os.ReadFile(e.SSHKeyFile + ".pub"); err == nil {
		e.SSHPublicKey = NormalizeAuthorizedKey(pub)
	}
	if hk, err := os.ReadFile(filepath.Join(stateDir, HostKeyFileName+".pub")); err == nil {
		e.JumpHostKey = NormalizeAuthorizedKey(hk)
	}
	return e, nil
}

// NormalizeAuthorizedKey returns "TYPE BASE64" of an authorized_keys line (no options, no
// comment), or "" when it does not parse.
func NormalizeAuthorizedKey(line []byte) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// EndpointFromEnv fills an Endpoint from env-file variables (files are not read).
func EndpointFromEnv(vars map[string]string) (Endpoint, error) {
	var missing []string
	get := func(k string) string {
		v := vars[k]
		if v == "" {
			missing = append(missing, k)
		}
		return v
	}
	e := Endpoint{
		BaseURL:        get(EnvEndpoint),
		Username:       get(EnvUsername),
		Password:       get(EnvPassword),
		CAFile:         get(EnvCAFile),
		Fingerprint:    get(EnvFingerprint),
		SSHKeyFile:     get(EnvSSHKey),
		KnownHostsFile: vars[EnvKnownHosts],
		ControlURL:     vars[EnvControlURL],
	}
	token, jump := get(EnvAPIToken), get(EnvJumpHost)
	if len(missing) > 0 {
		return Endpoint{}, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	if !strings.HasSuffix(e.BaseURL, "/") {
		e.BaseURL += "/"
	}
	e.APIURL = e.BaseURL + "api2/json"
	if e.ControlURL == "" {
		e.ControlURL = e.BaseURL + "_sim/"
	}
	var ok bool
	if e.TokenID, e.TokenSecret, ok = strings.Cut(token, "="); !ok {
		return Endpoint{}, fmt.Errorf("%s: want USER@REALM!TOKENID=SECRET", EnvAPIToken)
	}
	if e.JumpUser, e.JumpAddr, ok = strings.Cut(jump, "@"); !ok {
		return Endpoint{}, fmt.Errorf("%s: want user@host:port, got %q", EnvJumpHost, jump)
	}
	return e, nil
}
