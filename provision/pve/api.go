package pve

import (
	"context"
	"sort"
	"strconv"
	"strings"
)

// API is what the provisioning tasks need from Proxmox VE. Methods that start a PVE task
// wait for it (bounded by ctx) and return a *TaskFailedError when it ends in anything but OK.
// Errors match the sentinels of errors.go with errors.Is.
type API interface {
	// Version is the PVE version ("8.4.1").
	Version(ctx context.Context) (string, error)
	// Identity says who the client is authenticated as.
	Identity() Identity

	// Resources lists cluster resources of one type ("vm", "node", "storage").
	Resources(ctx context.Context, typ string) ([]Resource, error)
	// NodeStatus is a node's capacity and load.
	NodeStatus(ctx context.Context, node string) (*NodeStatus, error)
	// StorageContent lists the volumes of a storage on a node.
	StorageContent(ctx context.Context, node, storage string) ([]Volume, error)
	// StorageStatus is a storage's type and space on a node (GET /nodes/{node}/storage/{storage}/status).
	StorageStatus(ctx context.Context, node, storage string) (*StorageStatus, error)
	// PCIDevices lists a node's PCI functions (no class blacklist).
	PCIDevices(ctx context.Context, node string) ([]PCIDevice, error)
	// PCIMappings lists the cluster PCI resource mappings.
	PCIMappings(ctx context.Context) ([]PCIMapping, error)

	// VMStatus is status/current of a VM (ErrNotFound when it does not exist).
	VMStatus(ctx context.Context, node string, vmid int) (*VMStatus, error)
	// VMConfig is the VM's config (pending values merged, as PVE returns by default).
	VMConfig(ctx context.Context, node string, vmid int) (Config, error)
	// CreateVM posts a new VM and waits for the qmcreate task. Never retried here.
	CreateVM(ctx context.Context, node string, vmid int, params Params) (*TaskResult, error)
	// UpdateConfig sets params and deletes the keys in del (async config POST, waited for).
	UpdateConfig(ctx context.Context, node string, vmid int, params Params, del []string) (*TaskResult, error)
	// SetConfigSync writes params with the synchronous config PUT, only when the config's
	// digest is still digest (ErrModified otherwise): PVE compares and writes under the
	// config lock, so it is a compare-and-swap.
	SetConfigSync(ctx context.Context, node string, vmid int, params Params, digest string) error
	// ResizeDisk grows disk to size ("500G").
	ResizeDisk(ctx context.Context, node string, vmid int, disk, size string) (*TaskResult, error)
	StartVM(ctx context.Context, node string, vmid int) (*TaskResult, error)
	// StopVM is a hard stop (status/stop).
	StopVM(ctx context.Context, node string, vmid int) (*TaskResult, error)
	// DeleteVM destroys the VM and purges its disks and references.
	DeleteVM(ctx context.Context, node string, vmid int) (*TaskResult, error)

	// AgentPing succeeds once the guest agent answers (ErrAgentNotRunning before).
	AgentPing(ctx context.Context, node string, vmid int) error
	// AgentExec starts argv in the guest and returns its pid.
	AgentExec(ctx context.Context, node string, vmid int, argv []string, stdin string) (int, error)
	AgentExecStatus(ctx context.Context, node string, vmid int, pid int) (*ExecStatus, error)
	// AgentFileRead returns a guest file's content.
	AgentFileRead(ctx context.Context, node string, vmid int, path string) (string, error)
	AgentInterfaces(ctx context.Context, node string, vmid int) ([]NetInterface, error)
}

// Identity is the authenticated principal.
type Identity struct {
	// User is "root@pam" for a ticket, "root@pam!aimachine" for a token.
	User  string
	Token bool
}

// IsRootPam reports whether raw hostpci values may be set (PVE allows exactly root@pam).
func (i Identity) IsRootPam() bool { return !i.Token && i.User == "root@pam" }

// Resource is one /cluster/resources entry.
type Resource struct {
	ID       string // qemu/140, node/pve, storage/pve/local
	Type     string // qemu, lxc, node, storage
	Node     string
	VMID     int
	Name     string
	Status   string
	Tags     string
	Lock     string
	Template bool
	Storage  string
	MaxCPU   int
	MaxMem   uint64
	MaxDisk  uint64
}

// NodeStatus is a node's capacity.
type NodeStatus struct {
	Node     string
	CPUs     int
	MemTotal uint64
	MemFree  uint64
	Version  string
}

// StorageStatus is /nodes/{node}/storage/{storage}/status: the API schema documents total,
// used and avail in bytes, all optional (an inactive storage reports none).
type StorageStatus struct {
	Storage string
	Type    string // dir, lvm, lvmthin, zfspool, nfs, …
	Active  bool
	Total   uint64
	Used    uint64
	Avail   uint64
}

// Volume is one storage volume.
type Volume struct {
	VolID   string
	Content string
	Format  string
	Size    uint64
	VMID    int
}

// PCIDevice is one PCI function of a node.
type PCIDevice struct {
	ID         string // 0000:01:00.0
	Class      string
	Vendor     string // 0x10de
	Device     string // 0x2d04
	VendorName string
	DeviceName string
	// IOMMUGroup is -1 when the node has no IOMMU.
	IOMMUGroup int
}

// PCIID is "10de:2d04".
func (d PCIDevice) PCIID() string {
	return strings.TrimPrefix(d.Vendor, "0x") + ":" + strings.TrimPrefix(d.Device, "0x")
}

// PCIMapping is a cluster PCI resource mapping.
type PCIMapping struct {
	ID          string
	Description string
	Map         []PCIMappingEntry
}

// PCIMappingEntry is one "node=pve,path=0000:01:00,id=10de:2d04,iommugroup=12" entry.
type PCIMappingEntry struct {
	Node       string
	Path       string
	ID         string
	IOMMUGroup string
}

// VMStatus is status/current.
type VMStatus struct {
	VMID      int
	Name      string
	Status    string // running | stopped
	QMPStatus string
	Lock      string
}

// Running reports whether the VM runs.
func (s *VMStatus) Running() bool { return s != nil && s.Status == "running" }

// Config is a VM config as strings: numbers are rendered in decimal ("32"), strings as is.
type Config map[string]string

// Keys returns the config keys sorted.
func (c Config) Keys() []string {
	ks := make([]string, 0, len(c))
	for k := range c {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Int returns a numeric key (0 when absent or not a number).
func (c Config) Int(key string) int {
	n, _ := strconv.Atoi(c[key])
	return n
}

// Params are request parameters. Values must have the JSON type PVE accepts: string for
// string properties (agent, hostpci0, ...), int for integers and booleans (onboot: 1).
type Params map[string]any

// TaskResult is a finished PVE task.
type TaskResult struct {
	UPID       string
	Type       string // qmcreate, qmstart, ...
	ExitStatus string // "OK", "WARNINGS: 1", or the error text
	// LogTail is the end of the task log (at most 20 lines).
	LogTail []string
}

// ExecStatus is a guest agent exec-status.
type ExecStatus struct {
	Exited   bool
	ExitCode int
	Signal   int
	Stdout   string
	Stderr   string
}

// NetInterface is one guest network interface.
type NetInterface struct {
	Name string
	MAC  string
	IPs  []IPAddress
}

// IPAddress is one interface address.
type IPAddress struct {
	Type   string // ipv4 | ipv6
	Addr   string
	Prefix int
}

// FindVM looks a QEMU VM up in the cluster by id (when vmid > 0) or else by name;
// ErrNotFound when there is none.
func FindVM(ctx context.Context, api API, vmid int, name string) (*Resource, error) {
	rs, err := api.Resources(ctx, "vm")
	if err != nil {
		return nil, err
	}
	for i := range rs {
		r := &rs[i]
		if r.Type != "" && r.Type != "qemu" {
			continue
		}
		if (vmid > 0 && r.VMID == vmid) || (vmid <= 0 && name != "" && r.Name == name) {
			return r, nil
		}
	}
	if vmid > 0 {
		return nil, Classed(ErrNotFound, "no VM %d in the cluster", vmid)
	}
	return nil, Classed(ErrNotFound, "no VM named %q in the cluster", name)
}
