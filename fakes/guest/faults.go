package guest

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"time"
)

// Fault kinds. Each fault applies to every guest, or to one VM when VMID is set.
const (
	// FaultDKMSBuild makes the DKMS build of nvidia-dkms-* fail (bad return status, dpkg exit 10).
	FaultDKMSBuild = "dkms-build-failure"
	// FaultNoPrebuiltModules removes Canonical's prebuilt linux-modules-nvidia-* packages for the
	// running kernel from the archive, as when a new kernel ABI is out before linux-restricted-modules
	// catch up (guest.md §2.4 step 4): ubuntu-drivers then offers the driver only through DKMS
	// (--include-dkms), and the DKMS faults below can bite a driver install.
	FaultNoPrebuiltModules = "no-prebuilt-modules"
	// FaultMissingHeaders removes linux-headers-<kver> from the archive: DKMS cannot find the headers.
	FaultMissingHeaders = "missing-kernel-headers"
	// FaultSecureBoot turns Secure Boot on (mokutil, unsigned DKMS modules rejected by modprobe).
	FaultSecureBoot = "secure-boot"
	// FaultApt404 makes downloads fail with "404  Not Found"; Pattern is a package glob
	// ("nvidia-utils-*"), or "update" for the package lists; empty = every download.
	FaultApt404 = "apt-404"
	// FaultDpkgLock keeps /var/lib/dpkg/lock-frontend held by unattended-upgrades: for Count apt
	// runs, or for Duration (simulated, from injection), whichever is set.
	FaultDpkgLock = "dpkg-lock"
	// FaultDriverConflict makes apt refuse NVIDIA driver packages with unmet dependencies (exit 100).
	FaultDriverConflict = "driver-conflict"
	// FaultVLLMOOM makes the next vLLM engine start fail with CUDA out of memory.
	FaultVLLMOOM = "vllm-oom"
	// FaultSSHDrop drops the SSH connection running the next command matching Pattern (a regexp;
	// empty = any): by default after the command ran and before its exit status is sent;
	// with BeforeRun, before it runs.
	FaultSSHDrop = "ssh-drop"
	// FaultSlowBoot makes boots take Duration (simulated) instead of ~20 s.
	FaultSlowBoot = "slow-boot"
	// FaultAgentNeverStarts keeps the QEMU guest agent from answering even when installed.
	FaultAgentNeverStarts = "agent-never-starts"
	// FaultCloudInitDegraded makes cloud-init finish with recoverable errors (status --wait exit 2).
	FaultCloudInitDegraded = "cloud-init-degraded"
	// FaultCloudInitCrash makes cloud-init crash (status: error, exit 1).
	FaultCloudInitCrash = "cloud-init-crash"
	// FaultHubSlow makes Hugging Face downloads take Duration (simulated) longer.
	FaultHubSlow = "hub-slow"
	// FaultHubDrop drops the connection half-way through the next model file download (hf
	// download fails with httpx.RemoteProtocolError and leaves a .incomplete blob).
	FaultHubDrop = "hub-download-fails"
	// FaultDiskFull fills the disk under Pattern (a path prefix; empty = anywhere) for the next
	// model download: OSError [Errno 28] No space left on device.
	FaultDiskFull = "disk-full"
)

var faultKinds = map[string]string{
	FaultDKMSBuild:         "DKMS build of nvidia-dkms-* fails",
	FaultMissingHeaders:    "linux-headers-<kver> missing from the archive",
	FaultNoPrebuiltModules: "no prebuilt linux-modules-nvidia-* for the running kernel (DKMS only)",
	FaultSecureBoot:        "Secure Boot enabled in the guest firmware",
	FaultApt404:            "apt downloads answer 404 (pattern: package glob or 'update')",
	FaultDpkgLock:          "dpkg frontend lock held by unattended-upgrades (count runs or duration)",
	FaultDriverConflict:    "apt refuses NVIDIA driver packages (unmet dependencies)",
	FaultVLLMOOM:           "next vLLM engine start fails with CUDA out of memory",
	FaultSSHDrop:           "SSH connection dropped on the next command matching pattern",
	FaultSlowBoot:          "boot takes duration (simulated)",
	FaultAgentNeverStarts:  "QEMU guest agent never answers",
	FaultCloudInitDegraded: "cloud-init finishes with recoverable errors (exit 2)",
	FaultCloudInitCrash:    "cloud-init crashes (exit 1)",
	FaultHubSlow:           "Hugging Face downloads take duration (simulated) longer",
	FaultHubDrop:           "the next model file download from the Hugging Face Hub breaks half-way",
	FaultDiskFull:          "the disk is full for the next model download (pattern: path prefix)",
}

// Fault is one injected failure.
type Fault struct {
	ID   int    `json:"id"`
	Kind string `json:"kind"`
	// VMID limits the fault to one VM (0 = every guest).
	VMID int `json:"vmid,omitempty"`
	// Pattern selects what the fault applies to (kind-specific).
	Pattern string `json:"pattern,omitempty"`
	// Count is how many times the fault fires before it clears itself (0 = until cleared).
	Count int `json:"count,omitempty"`
	// Duration is a realistic duration ("5m"), multiplied by the time scale.
	Duration string `json:"duration,omitempty"`
	// BeforeRun (ssh-drop) drops the connection before the command runs.
	BeforeRun bool `json:"before_run,omitempty"`
	// Fired counts how often the fault has fired.
	Fired int `json:"fired"`

	until time.Time
	re    *regexp.Regexp
}

type faultSet struct {
	next int
	list []*Fault
}

// FaultKinds documents the fault kinds (kind -> description).
func FaultKinds() map[string]string {
	out := map[string]string{}
	for k, v := range faultKinds {
		out[k] = v
	}
	return out
}

// InjectFault adds a fault and returns it with its id.
func (f *Factory) InjectFault(ft Fault) (Fault, error) {
	if _, ok := faultKinds[ft.Kind]; !ok {
		kinds := make([]string, 0, len(faultKinds))
		for k := range faultKinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		return Fault{}, fmt.Errorf("unknown fault kind %q (known: %v)", ft.Kind, kinds)
	}
	if ft.Count < 0 {
		return Fault{}, fmt.Errorf("fault %s: count %d must not be negative", ft.Kind, ft.Count)
	}
	if ft.Duration != "" {
		d, err := time.ParseDuration(ft.Duration)
		if err != nil {
			return Fault{}, fmt.Errorf("fault %s: duration %q: %w", ft.Kind, ft.Duration, err)
		}
		if ft.Kind == FaultDpkgLock {
			ft.until = time.Now().Add(f.Scale(d))
		}
	}
	if ft.Kind == FaultSlowBoot && ft.Duration == "" {
		return Fault{}, fmt.Errorf("fault %s needs a duration (e.g. \"5m\")", ft.Kind)
	}
	if ft.Kind == FaultSSHDrop {
		re, err := regexp.Compile(ft.Pattern)
		if err != nil {
			return Fault{}, fmt.Errorf("fault %s: pattern %q: %w", ft.Kind, ft.Pattern, err)
		}
		ft.re = re
		if ft.Count == 0 {
			ft.Count = 1
		}
	}
	if ft.Kind == FaultApt404 && ft.Pattern != "" && ft.Pattern != "update" {
		if _, err := path.Match(ft.Pattern, ""); err != nil {
			return Fault{}, fmt.Errorf("fault %s: pattern %q: %w", ft.Kind, ft.Pattern, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults.next++
	ft.ID = f.faults.next
	ft.Fired = 0
	c := ft
	f.faults.list = append(f.faults.list, &c)
	f.log.Info("fault injected", "id", c.ID, "kind", c.Kind, "vmid", c.VMID, "pattern", c.Pattern)
	return c, nil
}

// Faults lists the active faults.
func (f *Factory) Faults() []Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Fault, 0, len(f.faults.list))
	for _, ft := range f.faults.list {
		out = append(out, *ft)
	}
	return out
}

// ClearFault removes one fault by id; it reports whether it existed.
func (f *Factory) ClearFault(id int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ft := range f.faults.list {
		if ft.ID == id {
			f.faults.list = append(f.faults.list[:i], f.faults.list[i+1:]...)
			return true
		}
	}
	return false
}

// ClearFaults removes every fault of a kind ("" = all) and returns how many were removed.
func (f *Factory) ClearFaults(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.faults.list[:0]
	n := 0
	for _, ft := range f.faults.list {
		if kind == "" || ft.Kind == kind {
			n++
			continue
		}
		kept = append(kept, ft)
	}
	f.faults.list = kept
	return n
}

// fault finds an active fault of kind for vmid accepted by match (nil = any), counts it as
// fired and consumes one of its counts. It returns a copy, or nil.
func (f *Factory) fault(kind string, vmid int, match func(*Fault) bool) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ft := range f.faults.list {
		if ft.Kind != kind || (ft.VMID != 0 && ft.VMID != vmid) {
			continue
		}
		if !ft.until.IsZero() && time.Now().After(ft.until) && ft.Count == 0 {
			continue
		}
		if match != nil && !match(ft) {
			continue
		}
		ft.Fired++
		c := *ft
		if ft.Count > 0 {
			ft.Count--
			if ft.Count == 0 {
				f.faults.list = append(f.faults.list[:i], f.faults.list[i+1:]...)
			}
		}
		return &c
	}
	return nil
}

// hasFault reports whether a fault is active without consuming it.
func (f *Factory) hasFault(kind string, vmid int) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ft := range f.faults.list {
		if ft.Kind == kind && (ft.VMID == 0 || ft.VMID == vmid) {
			c := *ft
			return &c
		}
	}
	return nil
}

// Stats are the simulator's counters, JSON-serialisable.
type Stats struct {
	SSHConnections int                 `json:"ssh_connections"`
	AuthFailures   int                 `json:"auth_failures"`
	Sessions       int                 `json:"sessions"`
	Commands       int                 `json:"commands"`
	AgentCommands  int                 `json:"agent_commands"`
	Dials          int                 `json:"dials"`
	Guests         map[int]*GuestStats `json:"guests"`
}

// GuestStats are one VM's counters (summed over its incarnations).
type GuestStats struct {
	SSHConnections int `json:"ssh_connections"`
	AuthFailures   int `json:"auth_failures"`
	Sessions       int `json:"sessions"`
	Commands       int `json:"commands"`
	AgentCommands  int `json:"agent_commands"`
	Dials          int `json:"dials"`
	Boots          int `json:"boots"`
}

type statsCounters struct {
	total    GuestStats
	perGuest map[int]*GuestStats
}

func (f *Factory) count(vmid int, fn func(s *GuestStats)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.stats.total)
	s := f.stats.perGuest[vmid]
	if s == nil {
		s = &GuestStats{}
		f.stats.perGuest[vmid] = s
	}
	fn(s)
}

// Stats returns a snapshot of the counters.
func (f *Factory) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.stats.total
	out := Stats{
		SSHConnections: t.SSHConnections, AuthFailures: t.AuthFailures, Sessions: t.Sessions,
		Commands: t.Commands, AgentCommands: t.AgentCommands, Dials: t.Dials,
		Guests: map[int]*GuestStats{},
	}
	for id, s := range f.stats.perGuest {
		c := *s
		out.Guests[id] = &c
	}
	return out
}

// ResetStats zeroes the counters.
func (f *Factory) ResetStats() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.total = GuestStats{}
	f.stats.perGuest = map[int]*GuestStats{}
}
