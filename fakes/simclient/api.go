package simclient

import (
	"context"
	"net/http"
	"time"
)

// Stats are the simulator's counters: API requests, jump host and guests.
type Stats struct {
	API   APIStats   `json:"api"`
	Jump  JumpStats  `json:"jump"`
	Guest GuestStats `json:"guest"`
}

// APIStats count /api2/json requests (the control API is not counted).
type APIStats struct {
	Total    int            `json:"total"`
	Read     int            `json:"read"`
	Mutating int            `json:"mutating"`
	Auth     int            `json:"auth"`
	Faults   int            `json:"faults"`
	ByMethod map[string]int `json:"by_method"`
	// ByPath keys are "METHOD /path" with the concrete path relative to /api2/json,
	// e.g. "GET /nodes/pve/qemu/140/config".
	ByPath map[string]int `json:"by_path"`
	// ByRoute keys are "METHOD pattern", e.g. "GET /nodes/{node}/qemu/{vmid}/config".
	ByRoute  map[string]int `json:"by_route"`
	ByStatus map[int]int    `json:"by_status"`
}

// JumpStats count what the SSH jump host did.
type JumpStats struct {
	Connections       int `json:"connections"`
	AuthFailures      int `json:"auth_failures"`
	Forwards          int `json:"forwards"`
	ForwardsRefused   int `json:"forwards_refused"`
	SessionsRefused   int `json:"sessions_refused"`
	ActiveConnections int `json:"active_connections"`
}

// GuestStats count SSH and agent work in the guests (Guests: per VMID).
type GuestStats struct {
	GuestCounters
	Guests map[int]GuestCounters `json:"guests"`
}

// GuestCounters are one guest's (or all guests') counters.
type GuestCounters struct {
	SSHConnections int `json:"ssh_connections"`
	AuthFailures   int `json:"auth_failures"`
	Sessions       int `json:"sessions"`
	Commands       int `json:"commands"`
	AgentCommands  int `json:"agent_commands"`
	Dials          int `json:"dials"`
	Boots          int `json:"boots"`
}

// Stats reads every counter.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var raw struct {
		APIStats
		Sources struct {
			Jump  JumpStats  `json:"jump"`
			Guest GuestStats `json:"guest"`
		} `json:"sources"`
	}
	if err := c.Do(ctx, http.MethodGet, "stats", nil, &raw); err != nil {
		return Stats{}, err
	}
	return Stats{API: raw.APIStats, Jump: raw.Sources.Jump, Guest: raw.Sources.Guest}, nil
}

// Reset returns the simulator to its start: VMs and guests gone, faults cleared, counters zero.
func (c *Client) Reset(ctx context.Context) error {
	return c.Do(ctx, http.MethodPost, "reset", nil, nil)
}

// ResetTopology is Reset onto another cluster topology for this reset only (the next Reset
// returns to the simulator's start topology). topology is a pve.Topology or anything that
// marshals to the same JSON (fakes/sim LoadTopology reads one from a file); users and tokens it
// does not list are kept, so the credentials in the env file keep working.
func (c *Client) ResetTopology(ctx context.Context, topology any) error {
	return c.Do(ctx, http.MethodPost, "reset", map[string]any{"topology": topology}, nil)
}

// Request is one logged API request (secrets redacted).
type Request struct {
	Time   time.Time      `json:"time"`
	Method string         `json:"method"`
	Path   string         `json:"path"`
	Route  string         `json:"route,omitempty"`
	Query  string         `json:"query,omitempty"`
	Params map[string]any `json:"params,omitempty"`
	Class  string         `json:"class"`
	User   string         `json:"user,omitempty"`
	Status int            `json:"status"`
	Reason string         `json:"reason"`
	Fault  bool           `json:"fault,omitempty"`
}

// Requests returns the API request log since the last reset.
func (c *Client) Requests(ctx context.Context) ([]Request, error) {
	var out []Request
	return out, c.Do(ctx, http.MethodGet, "requests", nil, &out)
}

// State decodes the fake host's state snapshot (VMs, configs, reservations) into out.
func (c *Client) State(ctx context.Context, out any) error {
	return c.Do(ctx, http.MethodGet, "state", nil, out)
}

// APIFault makes the next Count API calls matching Method and Path fail.
type APIFault struct {
	// Method is GET, POST, PUT or DELETE ("" = any).
	Method string `json:"method,omitempty"`
	// Path is a path.Match pattern relative to /api2/json, e.g. "/nodes/*/qemu/*/status/start".
	Path string `json:"path"`
	// Count is how many matching calls fail (0 = 1).
	Count int `json:"count,omitempty"`
	// Status and Reason form the answer, e.g. 500 "got timeout".
	Status int    `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Reset closes the connection with a TCP reset instead of answering.
	Reset bool `json:"reset,omitempty"`
}

// InjectAPIFault installs an API fault.
func (c *Client) InjectAPIFault(ctx context.Context, f APIFault) error {
	return c.Do(ctx, http.MethodPost, "faults", f, nil)
}

// TaskFault makes the next Count tasks of Type (qmstart, qmcreate, ...) fail with ExitStatus.
type TaskFault struct {
	Type       string `json:"type"`
	ExitStatus string `json:"exitstatus"`
	Count      int    `json:"count,omitempty"`
}

// InjectTaskFault installs a task fault.
func (c *Client) InjectTaskFault(ctx context.Context, f TaskFault) error {
	return c.Do(ctx, http.MethodPost, "task-faults", f, nil)
}

// SetLatency adds d to every API answer.
func (c *Client) SetLatency(ctx context.Context, d time.Duration) error {
	return c.Do(ctx, http.MethodPost, "latency", map[string]string{"latency": d.String()}, nil)
}

// ClearAPIFaults removes API faults, task faults and latency.
func (c *Client) ClearAPIFaults(ctx context.Context) error {
	return c.Do(ctx, http.MethodDelete, "faults", nil, nil)
}

// MarkPCIBusy reserves a PCI function (full id, "0000:01:00.0") on node for another VMID.
func (c *Client) MarkPCIBusy(ctx context.Context, node, id string, vmid int) error {
	return c.Do(ctx, http.MethodPost, "pci/busy", map[string]any{"node": node, "id": id, "vmid": vmid}, nil)
}

// MarkPCIBusyAfter arms a race: VM vmid (created stopped with hostpci0 on id's slot if it does not
// exist) starts and holds the PCI function id when the next task of taskType (e.g. "qmcreate")
// finishes, as if another user started it between a preflight and a start.
func (c *Client) MarkPCIBusyAfter(ctx context.Context, node, id string, vmid int, taskType string) error {
	return c.Do(ctx, http.MethodPost, "pci/busy-after", map[string]any{"node": node, "id": id, "vmid": vmid, "after": taskType}, nil)
}

// Device and QEMU fault kinds for SetPCIFault and SetVMFault.
const (
	PCIFaultVFIOBind  = "vfio-bind"   // start fails: can't unbind/bind PCI group to VFIO '<id>'
	VMFaultKVMTimeout = "kvm-timeout" // next start fails: start failed: command '/usr/bin/kvm -id …' failed: got timeout
)

// SetPCIFault gives a PCI function a lasting fault (PCIFaultVFIOBind; "" clears it).
func (c *Client) SetPCIFault(ctx context.Context, node, id, kind string) error {
	return c.Do(ctx, http.MethodPost, "pci/fault", map[string]any{"node": node, "id": id, "kind": kind}, nil)
}

// SetVMFault makes a VM's next start fail (VMFaultKVMTimeout; "" clears it).
func (c *Client) SetVMFault(ctx context.Context, vmid int, kind string) error {
	return c.Do(ctx, http.MethodPost, "vm/fault", map[string]any{"vmid": vmid, "kind": kind}, nil)
}

// KillQEMU ends a running VM's QEMU without PVE's cleanup: its PCI reservation stays as a leftover.
func (c *Client) KillQEMU(ctx context.Context, vmid int) error {
	return c.Do(ctx, http.MethodPost, "vm/kill", map[string]any{"vmid": vmid}, nil)
}

// SetLock sets a VM's lock ("backup", "migrate" ...; "" clears it).
func (c *Client) SetLock(ctx context.Context, vmid int, lock string) error {
	return c.Do(ctx, http.MethodPost, "vm/lock", map[string]any{"vmid": vmid, "lock": lock}, nil)
}

// ReleasePCI drops a reservation made with MarkPCIBusy.
func (c *Client) ReleasePCI(ctx context.Context, node, id string) error {
	return c.Do(ctx, http.MethodPost, "pci/release", map[string]any{"node": node, "id": id}, nil)
}

// SetIOMMU switches a node's IOMMU on or off.
func (c *Client) SetIOMMU(ctx context.Context, node string, on bool) error {
	return c.Do(ctx, http.MethodPost, "iommu", map[string]any{"node": node, "enabled": on}, nil)
}
