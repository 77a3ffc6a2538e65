package pve

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/luthermonson/go-proxmox"

	"github.com/aimachine/aimachine/provision/internal/retry"
)

// HostAPI is what the host-readiness checks (aimachine doctor) and the host steps
// (aimachine prepare) need beyond API. The go-proxmox adapter implements it; Host finds it.
type HostAPI interface {
	API
	// Permissions are the caller's effective privileges (GET /access/permissions):
	// path -> privilege -> propagate.
	Permissions(ctx context.Context) (Permissions, error)
	// ClusterStatus is GET /cluster/status: a cluster entry (when clustered) and one per node.
	ClusterStatus(ctx context.Context) ([]ClusterMember, error)
	// Storages lists a node's storages with their content types and state (GET /nodes/{node}/storage).
	Storages(ctx context.Context, node string) ([]StorageInfo, error)
	// DownloadURL starts download-url into a storage and waits for the task, handing each new
	// task log line to progress (nil: none).
	DownloadURL(ctx context.Context, node, storage string, d Download, progress func(line string)) (*TaskResult, error)
	// CreatePCIMapping creates a cluster PCI resource mapping (POST /cluster/mapping/pci).
	CreatePCIMapping(ctx context.Context, m PCIMapping) error
}

// Host returns api's HostAPI side, when it has one.
func Host(api API) (HostAPI, bool) {
	h, ok := api.(HostAPI)
	return h, ok
}

var _ HostAPI = (*adapter)(nil)

// Permissions maps an ACL path to the privileges held there (value: propagated).
type Permissions map[string]map[string]bool

// Has reports whether priv is held on path: on the path itself, or propagated from the
// nearest ancestor the answer lists (GET /access/permissions lists the ACL paths; a path
// below them inherits what propagates, and a deeper ACL path replaces its parent's set).
func (p Permissions) Has(path, priv string) bool {
	for cur := path; ; {
		if privs, ok := p[cur]; ok {
			prop, held := privs[priv]
			if cur == path {
				return held
			}
			return held && prop
		}
		if cur == "/" {
			return false
		}
		i := strings.LastIndex(cur, "/")
		if i <= 0 {
			cur = "/"
		} else {
			cur = cur[:i]
		}
	}
}

// ClusterMember is one /cluster/status entry.
type ClusterMember struct {
	Type    string // cluster | node
	Name    string
	Online  bool // node
	Quorate bool // cluster
	Nodes   int  // cluster
}

// StorageInfo is one storage of a node.
type StorageInfo struct {
	Storage string
	Type    string
	Content []string
	Active  bool
	Enabled bool
	Total   uint64
	Avail   uint64
}

// HasContent reports whether the storage holds content type c.
func (s StorageInfo) HasContent(c string) bool {
	for _, x := range s.Content {
		if x == c {
			return true
		}
	}
	return false
}

// Download is a download-url request.
type Download struct {
	URL      string
	Content  string // import | iso | vztmpl
	Filename string
	SHA256   string
}

func (a *adapter) Permissions(ctx context.Context) (Permissions, error) {
	var raw map[string]map[string]flexInt
	if err := a.get(ctx, "/access/permissions", &raw); err != nil {
		return nil, err
	}
	out := Permissions{}
	for path, privs := range raw {
		out[path] = map[string]bool{}
		for p, v := range privs {
			out[path][p] = v != 0
		}
	}
	return out, nil
}

func (a *adapter) ClusterStatus(ctx context.Context) ([]ClusterMember, error) {
	var raw []struct {
		Type    string  `json:"type"`
		Name    string  `json:"name"`
		Online  flexInt `json:"online"`
		Quorate flexInt `json:"quorate"`
		Nodes   flexInt `json:"nodes"`
	}
	if err := a.get(ctx, "/cluster/status", &raw); err != nil {
		return nil, err
	}
	out := make([]ClusterMember, 0, len(raw))
	for _, r := range raw {
		out = append(out, ClusterMember{Type: r.Type, Name: r.Name, Online: r.Online != 0, Quorate: r.Quorate != 0, Nodes: int(r.Nodes)})
	}
	return out, nil
}

func (a *adapter) Storages(ctx context.Context, node string) ([]StorageInfo, error) {
	var raw []struct {
		Storage string  `json:"storage"`
		Type    string  `json:"type"`
		Content string  `json:"content"`
		Active  flexInt `json:"active"`
		Enabled flexInt `json:"enabled"`
		Total   flexInt `json:"total"`
		Avail   flexInt `json:"avail"`
	}
	if err := a.get(ctx, "/nodes/"+url.PathEscape(node)+"/storage", &raw); err != nil {
		return nil, err
	}
	out := make([]StorageInfo, 0, len(raw))
	for _, r := range raw {
		var content []string
		for _, c := range strings.Split(r.Content, ",") {
			if c = strings.TrimSpace(c); c != "" {
				content = append(content, c)
			}
		}
		out = append(out, StorageInfo{Storage: r.Storage, Type: r.Type, Content: content, Active: r.Active != 0,
			Enabled: r.Enabled != 0, Total: uint64(r.Total), Avail: uint64(r.Avail)})
	}
	return out, nil
}

func (a *adapter) DownloadURL(ctx context.Context, node, storage string, d Download, progress func(string)) (*TaskResult, error) {
	op := fmt.Sprintf("download %s into %s:%s/%s on node %q", d.URL, storage, d.Content, d.Filename, node)
	body := map[string]any{"url": d.URL, "content": d.Content, "filename": d.Filename}
	if d.SHA256 != "" {
		body["checksum"], body["checksum-algorithm"] = d.SHA256, "sha256"
	}
	var upid proxmox.UPID
	p := fmt.Sprintf("/nodes/%s/storage/%s/download-url", url.PathEscape(node), url.PathEscape(storage))
	if err := a.c.Post(ctx, p, body, &upid); err != nil {
		return nil, wrap(op, err)
	}
	if progress != nil {
		a.followLog(ctx, node, upid, progress)
	}
	return a.waitTask(ctx, op, upid)
}

// followLog hands each new task log line to progress until the task stops (or ctx ends).
func (a *adapter) followLog(ctx context.Context, node string, upid proxmox.UPID, progress func(string)) {
	ctx, cancel := context.WithTimeout(ctx, TaskTimeout)
	defer cancel()
	next := 0
	base := fmt.Sprintf("/nodes/%s/tasks/%s/", node, url.PathEscape(string(upid)))
	_ = retry.Wait{
		Description: "follow task " + string(upid),
		Backoff:     retry.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.1},
		Retryable:   retry.Any(retry.Pending, transient),
	}.Do(ctx, func(ctx context.Context) error {
		var st struct {
			Status string `json:"status"`
		}
		if err := wrap("GET task status", a.c.Get(ctx, base+"status", &st)); err != nil {
			return err
		}
		var lines []struct {
			N flexInt `json:"n"`
			T string  `json:"t"`
		}
		if err := wrap("GET task log", a.c.Get(ctx, fmt.Sprintf("%slog?start=%d&limit=500", base, next), &lines)); err != nil {
			return err
		}
		for _, l := range lines {
			if l.T == "no content" && next == 0 {
				continue
			}
			next = int(l.N)
			if !strings.HasPrefix(l.T, "TASK ") {
				progress(l.T)
			}
		}
		if st.Status == "running" || st.Status == "" {
			return retry.ErrNotYet
		}
		return nil
	})
}

func (a *adapter) CreatePCIMapping(ctx context.Context, m PCIMapping) error {
	var maps []string
	for _, e := range m.Map {
		s := "node=" + e.Node + ",path=" + e.Path + ",id=" + e.ID
		if e.IOMMUGroup != "" {
			s += ",iommugroup=" + e.IOMMUGroup
		}
		maps = append(maps, s)
	}
	body := map[string]any{"id": m.ID, "map": maps}
	if m.Description != "" {
		body["description"] = m.Description
	}
	return wrap("create PCI mapping "+m.ID+" (POST /cluster/mapping/pci)", a.c.Post(ctx, "/cluster/mapping/pci", body, nil))
}

// TLSInfo is what a TLS handshake with the API endpoint showed.
type TLSInfo struct {
	// Fingerprint is the SHA-256 of the server certificate, "AB:CD:…" (PVE's ssl_fingerprint form).
	Fingerprint string
	Subject     string
	// Trusted: the certificate passed the configured checks (CA file, pin, or the system pool).
	Trusted bool
	// Err is why it is not trusted.
	Err error
}

// ProbeTLS connects to the endpoint of cfg.URL twice: once to read the certificate whatever it
// is, once with cfg's trust settings. Only a failure to connect at all is an error.
func ProbeTLS(ctx context.Context, cfg ConnConfig) (*TLSInfo, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("pve: API URL %q is not an absolute URL", cfg.URL)
	}
	if u.Scheme != "https" {
		return &TLSInfo{Trusted: false, Err: errors.New("the endpoint is plain http: pveproxy serves https on port 8006")}, nil
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 15 * time.Second}, Config: &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}} // #nosec G402 -- reads the certificate only; nothing is sent
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", host, err)
	}
	cs := c.(*tls.Conn).ConnectionState()
	_ = c.Close()
	info := &TLSInfo{}
	if len(cs.PeerCertificates) > 0 {
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		info.Fingerprint = formatFingerprint(sum[:])
		info.Subject = cs.PeerCertificates[0].Subject.String()
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		info.Err = err
		return info, nil
	}
	if tc.ServerName == "" {
		tc.ServerName = u.Hostname()
	}
	d2 := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 15 * time.Second}, Config: tc}
	c2, err := d2.DialContext(ctx, "tcp", host)
	if err != nil {
		info.Err = err
		return info, nil
	}
	_ = c2.Close()
	info.Trusted = true
	return info, nil
}
