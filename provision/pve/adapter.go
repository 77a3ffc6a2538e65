package pve

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/luthermonson/go-proxmox"

	"github.com/aimachine/aimachine/provision/internal/retry"
)

// adapter implements API over a go-proxmox client. Reads are retried on transient failures;
// writes are not (the caller decides, after checking what happened).
type adapter struct {
	c   *proxmox.Client
	id  Identity
	log *slog.Logger

	// version is the server's version once read (it does not change under a run): asking
	// twice would cost a round trip for an answer already known.
	verMu   sync.Mutex
	version string
}

var _ API = (*adapter)(nil)

// TaskTimeout bounds every wait for a PVE task.
var TaskTimeout = 30 * time.Minute

// readRetries bounds the retries of an idempotent read.
const readRetries = 5

// readBackoff is short: transient faults of a healthy host clear in a second or two.
var readBackoff = retry.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.2}

func transient(err error) (string, bool) {
	if IsTransient(err) {
		return err.Error(), true
	}
	return "", false
}

// get is a retried GET decoding data into v.
func (a *adapter) get(ctx context.Context, path string, v any) error {
	op := "GET " + path
	return retry.Wait{
		Description: op, Backoff: readBackoff, Retryable: transient, MaxAttempts: readRetries,
		OnRetry: func(n int, reason string, err error, next time.Duration) {
			a.log.Debug("retrying read", "op", op, "attempt", n, "error", err, "next", next)
		},
	}.Do(ctx, func(ctx context.Context) error {
		return wrap(op, a.c.Get(ctx, path, v))
	})
}

func (a *adapter) Identity() Identity { return a.id }

func (a *adapter) Version(ctx context.Context) (string, error) {
	a.verMu.Lock()
	defer a.verMu.Unlock()
	if a.version != "" {
		return a.version, nil
	}
	var v struct {
		Version string `json:"version"`
	}
	if err := a.get(ctx, "/version", &v); err != nil {
		return "", err
	}
	a.version = v.Version
	return v.Version, nil
}

// flexInt decodes a JSON number or numeric string (PVE is not consistent).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = flexInt(n)
	return nil
}

func (a *adapter) Resources(ctx context.Context, typ string) ([]Resource, error) {
	var raw []struct {
		ID       string  `json:"id"`
		Type     string  `json:"type"`
		Node     string  `json:"node"`
		VMID     flexInt `json:"vmid"`
		Name     string  `json:"name"`
		Status   string  `json:"status"`
		Tags     string  `json:"tags"`
		Lock     string  `json:"lock"`
		Template flexInt `json:"template"`
		Storage  string  `json:"storage"`
		MaxCPU   flexInt `json:"maxcpu"`
		MaxMem   flexInt `json:"maxmem"`
		MaxDisk  flexInt `json:"maxdisk"`
	}
	p := "/cluster/resources"
	if typ != "" {
		p += "?type=" + url.QueryEscape(typ)
	}
	if err := a.get(ctx, p, &raw); err != nil {
		return nil, err
	}
	out := make([]Resource, 0, len(raw))
	for _, r := range raw {
		out = append(out, Resource{ID: r.ID, Type: r.Type, Node: r.Node, VMID: int(r.VMID), Name: r.Name, Status: r.Status,
			Tags: r.Tags, Lock: r.Lock, Template: r.Template != 0, Storage: r.Storage,
			MaxCPU: int(r.MaxCPU), MaxMem: uint64(r.MaxMem), MaxDisk: uint64(r.MaxDisk)})
	}
	return out, nil
}

func (a *adapter) NodeStatus(ctx context.Context, node string) (*NodeStatus, error) {
	var raw struct {
		CPUInfo struct {
			CPUs flexInt `json:"cpus"`
		} `json:"cpuinfo"`
		Memory struct {
			Total flexInt `json:"total"`
			Free  flexInt `json:"free"`
		} `json:"memory"`
		PVEVersion string `json:"pveversion"`
	}
	if err := a.get(ctx, "/nodes/"+url.PathEscape(node)+"/status", &raw); err != nil {
		return nil, err
	}
	return &NodeStatus{Node: node, CPUs: int(raw.CPUInfo.CPUs), MemTotal: uint64(raw.Memory.Total), MemFree: uint64(raw.Memory.Free), Version: raw.PVEVersion}, nil
}

func (a *adapter) StorageStatus(ctx context.Context, node, storage string) (*StorageStatus, error) {
	var raw struct {
		Type   string  `json:"type"`
		Active flexInt `json:"active"`
		Total  flexInt `json:"total"`
		Used   flexInt `json:"used"`
		Avail  flexInt `json:"avail"`
	}
	if err := a.get(ctx, fmt.Sprintf("/nodes/%s/storage/%s/status", url.PathEscape(node), url.PathEscape(storage)), &raw); err != nil {
		return nil, err
	}
	return &StorageStatus{Storage: storage, Type: raw.Type, Active: raw.Active != 0, Total: uint64(max(raw.Total, 0)),
		Used: uint64(max(raw.Used, 0)), Avail: uint64(max(raw.Avail, 0))}, nil
}

func (a *adapter) StorageContent(ctx context.Context, node, storage string) ([]Volume, error) {
	var raw []struct {
		VolID   string  `json:"volid"`
		Content string  `json:"content"`
		Format  string  `json:"format"`
		Size    flexInt `json:"size"`
		Approx  flexInt `json:"approximate-size"`
		VMID    flexInt `json:"vmid"`
	}
	if err := a.get(ctx, fmt.Sprintf("/nodes/%s/storage/%s/content", url.PathEscape(node), url.PathEscape(storage)), &raw); err != nil {
		return nil, err
	}
	out := make([]Volume, 0, len(raw))
	for _, v := range raw {
		size := v.Size
		if size == 0 {
			size = v.Approx
		}
		out = append(out, Volume{VolID: v.VolID, Content: v.Content, Format: v.Format, Size: uint64(size), VMID: int(v.VMID)})
	}
	return out, nil
}

// PCIDevices decodes the list itself: go-proxmox's PCIDevice types mdev as bool, PVE sends 1.
func (a *adapter) PCIDevices(ctx context.Context, node string) ([]PCIDevice, error) {
	var raw []struct {
		ID         string  `json:"id"`
		Class      string  `json:"class"`
		Vendor     string  `json:"vendor"`
		Device     string  `json:"device"`
		VendorName string  `json:"vendor_name"`
		DeviceName string  `json:"device_name"`
		IOMMUGroup flexInt `json:"iommugroup"`
	}
	// An empty blacklist lists every class (the default hides bridges, which is fine, but
	// the GPU's audio function must be visible).
	if err := a.get(ctx, "/nodes/"+url.PathEscape(node)+"/hardware/pci?pci-class-blacklist=", &raw); err != nil {
		return nil, err
	}
	out := make([]PCIDevice, 0, len(raw))
	for _, d := range raw {
		out = append(out, PCIDevice{ID: d.ID, Class: d.Class, Vendor: d.Vendor, Device: d.Device,
			VendorName: d.VendorName, DeviceName: d.DeviceName, IOMMUGroup: int(d.IOMMUGroup)})
	}
	return out, nil
}

func (a *adapter) PCIMappings(ctx context.Context) ([]PCIMapping, error) {
	var raw []struct {
		ID          string   `json:"id"`
		Description string   `json:"description"`
		Map         []string `json:"map"`
	}
	if err := a.get(ctx, "/cluster/mapping/pci", &raw); err != nil {
		return nil, err
	}
	out := make([]PCIMapping, 0, len(raw))
	for _, m := range raw {
		pm := PCIMapping{ID: m.ID, Description: m.Description}
		for _, e := range m.Map {
			kv := ParsePropertyString(e, "")
			pm.Map = append(pm.Map, PCIMappingEntry{Node: kv["node"], Path: kv["path"], ID: kv["id"], IOMMUGroup: kv["iommugroup"]})
		}
		out = append(out, pm)
	}
	return out, nil
}

func vmPath(node string, vmid int) string {
	return fmt.Sprintf("/nodes/%s/qemu/%d", url.PathEscape(node), vmid)
}

func (a *adapter) VMStatus(ctx context.Context, node string, vmid int) (*VMStatus, error) {
	var raw struct {
		VMID      flexInt `json:"vmid"`
		Name      string  `json:"name"`
		Status    string  `json:"status"`
		QMPStatus string  `json:"qmpstatus"`
		Lock      string  `json:"lock"`
	}
	if err := a.get(ctx, vmPath(node, vmid)+"/status/current", &raw); err != nil {
		return nil, err
	}
	return &VMStatus{VMID: int(raw.VMID), Name: raw.Name, Status: raw.Status, QMPStatus: raw.QMPStatus, Lock: raw.Lock}, nil
}

func (a *adapter) VMConfig(ctx context.Context, node string, vmid int) (Config, error) {
	var raw map[string]json.RawMessage
	if err := a.get(ctx, vmPath(node, vmid)+"/config", &raw); err != nil {
		return nil, err
	}
	cfg := Config{}
	for k, v := range raw {
		if string(v) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			cfg[k] = s
			continue
		}
		cfg[k] = string(v) // numbers (and the rare bool) as their literal
	}
	return cfg, nil
}

// startTask runs a task-starting call and waits for the task.
func (a *adapter) startTask(ctx context.Context, op string, call func(*proxmox.UPID) error) (*TaskResult, error) {
	var upid proxmox.UPID
	if err := call(&upid); err != nil {
		return nil, wrap(op, err)
	}
	if upid == "" {
		// {"data":null}: a synchronous answer (go-proxmox would hand back a nil *Task).
		return &TaskResult{ExitStatus: "OK"}, nil
	}
	return a.waitTask(ctx, op, upid)
}

// waitTask polls the task until it stops (go-proxmox's Wait returns nil for failed tasks and
// sleeps without ctx), then checks the exit status and fetches the log tail on failure.
func (a *adapter) waitTask(ctx context.Context, op string, upid proxmox.UPID) (*TaskResult, error) {
	parts := strings.Split(string(upid), ":")
	if len(parts) < 9 || parts[0] != "UPID" {
		return nil, &APIError{Op: op, Message: fmt.Sprintf("unparsable task id %q", upid), kinds: nil}
	}
	node := parts[1]
	res := &TaskResult{UPID: string(upid), Type: parts[5]}
	// A bound besides the caller's: PVE's own start timeout for 50 GiB with a GPU is 200 s,
	// an import of a cloud image takes minutes; nothing legitimate takes half an hour.
	ctx, cancel := context.WithTimeout(ctx, TaskTimeout)
	defer cancel()
	statusPath := fmt.Sprintf("/nodes/%s/tasks/%s/status", node, url.PathEscape(string(upid)))
	var st struct {
		Status     string `json:"status"`
		ExitStatus string `json:"exitstatus"`
	}
	err := retry.Wait{
		Description: "wait for task " + res.Type + " (" + op + ")",
		Backoff:     retry.Backoff{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.1},
		Retryable:   retry.Any(retry.Pending, transient),
	}.Do(ctx, func(ctx context.Context) error {
		if err := wrap("GET "+statusPath, a.c.Get(ctx, statusPath, &st)); err != nil {
			return err
		}
		if st.Status == "running" || st.Status == "" {
			return retry.ErrNotYet
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("%s: %w", op, err)
	}
	res.ExitStatus = st.ExitStatus
	if st.ExitStatus == "OK" || strings.HasPrefix(st.ExitStatus, "WARNINGS") {
		// WARNINGS: the task did its job (bpg, Ansible agree); go-proxmox calls it failed.
		if strings.HasPrefix(st.ExitStatus, "WARNINGS") {
			res.LogTail = a.logTail(ctx, node, upid)
		}
		return res, nil
	}
	res.LogTail = a.logTail(ctx, node, upid)
	return res, &TaskFailedError{Op: op, Result: *res, kinds: classifyText(st.ExitStatus)}
}

func (a *adapter) logTail(ctx context.Context, node string, upid proxmox.UPID) []string {
	var lines []struct {
		N flexInt `json:"n"`
		T string  `json:"t"`
	}
	// limit=0 would mean "all" on some versions; ask for a generous window and keep the end.
	if err := a.get(ctx, fmt.Sprintf("/nodes/%s/tasks/%s/log?start=0&limit=500", node, url.PathEscape(string(upid))), &lines); err != nil {
		return []string{"(task log unavailable: " + err.Error() + ")"}
	}
	var out []string
	for _, l := range lines {
		out = append(out, l.T)
	}
	if len(out) > 20 {
		out = out[len(out)-20:]
	}
	return out
}

func (a *adapter) CreateVM(ctx context.Context, node string, vmid int, params Params) (*TaskResult, error) {
	body := map[string]any{"vmid": vmid}
	for k, v := range params {
		body[k] = v
	}
	p := fmt.Sprintf("/nodes/%s/qemu", url.PathEscape(node))
	return a.startTask(ctx, fmt.Sprintf("create VM %d on node %q", vmid, node), func(u *proxmox.UPID) error {
		return a.c.Post(ctx, p, body, u)
	})
}

func (a *adapter) UpdateConfig(ctx context.Context, node string, vmid int, params Params, del []string) (*TaskResult, error) {
	body := map[string]any{}
	for k, v := range params {
		body[k] = v
	}
	if len(del) > 0 {
		body["delete"] = strings.Join(del, ",")
	}
	return a.startTask(ctx, fmt.Sprintf("update config of VM %d", vmid), func(u *proxmox.UPID) error {
		return a.c.Post(ctx, vmPath(node, vmid)+"/config", body, u)
	})
}

func (a *adapter) SetConfigSync(ctx context.Context, node string, vmid int, params Params, digest string) error {
	body := map[string]any{}
	for k, v := range params {
		body[k] = v
	}
	if digest != "" {
		body["digest"] = digest
	}
	return wrap(fmt.Sprintf("PUT %s/config", vmPath(node, vmid)), a.c.Put(ctx, vmPath(node, vmid)+"/config", body, nil))
}

func (a *adapter) ResizeDisk(ctx context.Context, node string, vmid int, disk, size string) (*TaskResult, error) {
	return a.startTask(ctx, fmt.Sprintf("resize %s of VM %d to %s", disk, vmid, size), func(u *proxmox.UPID) error {
		return a.c.Put(ctx, vmPath(node, vmid)+"/resize", map[string]any{"disk": disk, "size": size}, u)
	})
}

func (a *adapter) StartVM(ctx context.Context, node string, vmid int) (*TaskResult, error) {
	return a.startTask(ctx, fmt.Sprintf("start VM %d", vmid), func(u *proxmox.UPID) error {
		return a.c.Post(ctx, vmPath(node, vmid)+"/status/start", nil, u)
	})
}

func (a *adapter) StopVM(ctx context.Context, node string, vmid int) (*TaskResult, error) {
	return a.startTask(ctx, fmt.Sprintf("stop VM %d", vmid), func(u *proxmox.UPID) error {
		return a.c.Post(ctx, vmPath(node, vmid)+"/status/stop", nil, u)
	})
}

func (a *adapter) DeleteVM(ctx context.Context, node string, vmid int) (*TaskResult, error) {
	return a.startTask(ctx, fmt.Sprintf("delete VM %d", vmid), func(u *proxmox.UPID) error {
		return a.c.Delete(ctx, vmPath(node, vmid)+"?purge=1&destroy-unreferenced-disks=1", u)
	})
}

func (a *adapter) AgentPing(ctx context.Context, node string, vmid int) error {
	op := fmt.Sprintf("ping the guest agent of VM %d", vmid)
	return wrap(op, a.c.Post(ctx, vmPath(node, vmid)+"/agent/ping", nil, nil))
}

// AgentExec posts itself: go-proxmox turns every HTTP error into "no pid returned".
func (a *adapter) AgentExec(ctx context.Context, node string, vmid int, argv []string, stdin string) (int, error) {
	op := fmt.Sprintf("agent exec %q in VM %d", strings.Join(argv, " "), vmid)
	body := map[string]any{"command": argv}
	if stdin != "" {
		body["input-data"] = stdin
	}
	var out struct {
		PID *flexInt `json:"pid"`
	}
	if err := a.c.Post(ctx, vmPath(node, vmid)+"/agent/exec", body, &out); err != nil {
		return 0, wrap(op, err)
	}
	if out.PID == nil {
		return 0, &APIError{Op: op, Message: "the agent returned no pid"}
	}
	return int(*out.PID), nil
}

// AgentExecStatus decodes itself: go-proxmox types signal and err-truncated as bool.
func (a *adapter) AgentExecStatus(ctx context.Context, node string, vmid int, pid int) (*ExecStatus, error) {
	var raw struct {
		Exited   flexBool `json:"exited"`
		ExitCode flexInt  `json:"exitcode"`
		Signal   flexInt  `json:"signal"`
		OutData  string   `json:"out-data"`
		ErrData  string   `json:"err-data"`
	}
	if err := a.get(ctx, fmt.Sprintf("%s/agent/exec-status?pid=%d", vmPath(node, vmid), pid), &raw); err != nil {
		return nil, err
	}
	return &ExecStatus{Exited: bool(raw.Exited), ExitCode: int(raw.ExitCode), Signal: int(raw.Signal), Stdout: raw.OutData, Stderr: raw.ErrData}, nil
}

// flexBool decodes 0/1, "0"/"1" and true/false.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.Trim(string(b), `"`) {
	case "1", "true":
		*f = true
	case "0", "false", "", "null":
		*f = false
	default:
		return fmt.Errorf("not a boolean: %s", b)
	}
	return nil
}

func (a *adapter) AgentFileRead(ctx context.Context, node string, vmid int, path string) (string, error) {
	var out struct {
		Content   string   `json:"content"`
		Truncated flexBool `json:"truncated"`
	}
	q := url.Values{"file": {path}}
	op := fmt.Sprintf("read %s in VM %d through the guest agent", path, vmid)
	if err := wrap(op, a.c.Get(ctx, vmPath(node, vmid)+"/agent/file-read?"+q.Encode(), &out)); err != nil {
		return "", err
	}
	if out.Truncated {
		return out.Content, &APIError{Op: op, Message: "content truncated"}
	}
	return out.Content, nil
}

func (a *adapter) AgentInterfaces(ctx context.Context, node string, vmid int) ([]NetInterface, error) {
	var raw struct {
		Result []struct {
			Name string `json:"name"`
			MAC  string `json:"hardware-address"`
			IPs  []struct {
				Type   string  `json:"ip-address-type"`
				Addr   string  `json:"ip-address"`
				Prefix flexInt `json:"prefix"`
			} `json:"ip-addresses"`
		} `json:"result"`
	}
	op := fmt.Sprintf("list the interfaces of VM %d through the guest agent", vmid)
	if err := wrap(op, a.c.Get(ctx, vmPath(node, vmid)+"/agent/network-get-interfaces", &raw)); err != nil {
		return nil, err
	}
	var out []NetInterface
	for _, r := range raw.Result {
		ni := NetInterface{Name: r.Name, MAC: r.MAC}
		for _, ip := range r.IPs {
			ni.IPs = append(ni.IPs, IPAddress{Type: ip.Type, Addr: ip.Addr, Prefix: int(ip.Prefix)})
		}
		out = append(out, ni)
	}
	return out, nil
}

// ParsePropertyString splits a PVE property string ("virtio=BC:24:..,bridge=vmbr0") into
// keys and values; a value without "=" goes under defaultKey (e.g. "host" for hostpci,
// "file" for disks).
func ParsePropertyString(s, defaultKey string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			out[defaultKey] = part
			continue
		}
		out[k] = v
	}
	return out
}

// EncodeSSHKeys encodes public keys for the sshkeys parameter (go-proxmox's encoding: every
// reserved character percent-encoded, no '+').
func EncodeSSHKeys(keys ...string) string { return proxmox.EncodeSSHKeys(keys...) }
