package simclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Guest fault kinds (fakes/guest); see GuestFaults for their descriptions.
const (
	FaultDKMSBuild         = "dkms-build-failure"
	FaultMissingHeaders    = "missing-kernel-headers"
	FaultNoPrebuiltModules = "no-prebuilt-modules"
	FaultSecureBoot        = "secure-boot"
	FaultApt404            = "apt-404"
	FaultDpkgLock          = "dpkg-lock"
	FaultDriverConflict    = "driver-conflict"
	FaultVLLMOOM           = "vllm-oom"
	FaultSSHDrop           = "ssh-drop"
	FaultSlowBoot          = "slow-boot"
	FaultAgentNeverStarts  = "agent-never-starts"
	FaultCloudInitDegraded = "cloud-init-degraded"
	FaultCloudInitCrash    = "cloud-init-crash"
	FaultHubSlow           = "hub-slow"
	FaultHubDrop           = "hub-download-fails"
	FaultDiskFull          = "disk-full"
)

// GuestFault is one injected guest failure.
type GuestFault struct {
	ID   int    `json:"id,omitempty"`
	Kind string `json:"kind"`
	// VMID limits the fault to one VM (0 = every guest).
	VMID int `json:"vmid,omitempty"`
	// Pattern selects what the fault applies to (kind-specific: a package glob, a command regexp).
	Pattern string `json:"pattern,omitempty"`
	// Count is how many times the fault fires before it clears itself (0 = until cleared).
	Count int `json:"count,omitempty"`
	// Duration is a realistic duration ("5m"), scaled by the simulator's time scale.
	Duration string `json:"duration,omitempty"`
	// BeforeRun (ssh-drop) drops the connection before the command runs.
	BeforeRun bool `json:"before_run,omitempty"`
	// Fired counts how often the fault has fired (read only).
	Fired int `json:"fired,omitempty"`
}

// InjectGuestFault adds a guest fault and returns it with its id.
func (c *Client) InjectGuestFault(ctx context.Context, f GuestFault) (GuestFault, error) {
	var out GuestFault
	return out, c.Do(ctx, http.MethodPost, "guest/faults", f, &out)
}

// GuestFaults lists the active guest faults and the known kinds (kind -> description).
func (c *Client) GuestFaults(ctx context.Context) ([]GuestFault, map[string]string, error) {
	var out struct {
		Faults []GuestFault      `json:"faults"`
		Kinds  map[string]string `json:"kinds"`
	}
	err := c.Do(ctx, http.MethodGet, "guest/faults", nil, &out)
	return out.Faults, out.Kinds, err
}

// ClearGuestFaults removes every guest fault of kind ("" = all) and returns how many.
func (c *Client) ClearGuestFaults(ctx context.Context, kind string) (int, error) {
	path := "guest/faults"
	if kind != "" {
		path += "?kind=" + url.QueryEscape(kind)
	}
	var out struct {
		Cleared int `json:"cleared"`
	}
	err := c.Do(ctx, http.MethodDelete, path, nil, &out)
	return out.Cleared, err
}

// ClearGuestFault removes one guest fault by id.
func (c *Client) ClearGuestFault(ctx context.Context, id int) error {
	return c.Do(ctx, http.MethodDelete, "guest/faults/"+strconv.Itoa(id), nil, nil)
}

// ClearFaults removes every API fault, task fault, latency and guest fault.
func (c *Client) ClearFaults(ctx context.Context) error {
	if err := c.ClearAPIFaults(ctx); err != nil {
		return err
	}
	_, err := c.ClearGuestFaults(ctx, "")
	return err
}

// GuestInfo describes one simulated guest.
type GuestInfo struct {
	VMID        int      `json:"vmid"`
	Incarnation string   `json:"incarnation"`
	State       string   `json:"state"`
	IP          string   `json:"ip"`
	Boots       int      `json:"boots"`
	HostKeys    []string `json:"host_keys"` // "TYPE SHA256:..." fingerprints
	AgentReady  bool     `json:"agent_ready"`
	CloudInit   string   `json:"cloud_init"`
}

// Guests lists the live guests.
func (c *Client) Guests(ctx context.Context) ([]GuestInfo, error) {
	var out []GuestInfo
	return out, c.Do(ctx, http.MethodGet, "guest/guests", nil, &out)
}

// ExecResult is a command run through GuestExec.
type ExecResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// GuestExec runs command in VM vmid's guest as user ("" = root), bypassing SSH: for checking
// the guest's state from a test, never for doing the tool's work.
func (c *Client) GuestExec(ctx context.Context, vmid int, user, command string) (ExecResult, error) {
	var out ExecResult
	err := c.Do(ctx, http.MethodPost, "guest/guests/"+strconv.Itoa(vmid)+"/exec",
		map[string]string{"command": command, "user": user}, &out)
	return out, err
}

// GuestCommandLines returns every command line VM vmid's guest ran (argv joined with spaces),
// for tests proving that no secret was passed on a command line.
func (c *Client) GuestCommandLines(ctx context.Context, vmid int) ([]string, error) {
	var out []string
	return out, c.Do(ctx, http.MethodGet, "guest/guests/"+strconv.Itoa(vmid)+"/cmdlines", nil, &out)
}
