package pve

import (
	"context"
	"time"
)

// The guest hook: how the fake Proxmox host hands a VM's life to a simulated guest.
//
// Lifecycle, as the fake host drives it:
//   - POST qemu (create task finished)       -> GuestFactory.NewGuest: one Guest per VM incarnation
//     (a re-created VM with the same id gets a new Guest, hence new SSH host keys).
//   - status/start (qmstart task succeeded)   -> Guest.PowerOn(BootInfo) — the VM is "running" from PVE's view.
//   - status/stop                             -> Guest.PowerOff(false) (hard)
//   - status/shutdown                         -> Guest.PowerOff(true)  (clean)
//   - status/reboot                           -> Guest.Reboot()
//   - DELETE qemu                             -> Guest.Destroy()
//   - agent/* while running                   -> Guest.Agent(); nil or !Ready() => "500 QEMU guest agent is not running".
//
// A guest that powers itself off (poweroff inside the VM) calls Host.GuestPoweredOff so the VM's
// status becomes "stopped". A reboot inside the guest keeps the VM "running" (as on real PVE).

// GuestFactory creates simulated guests. It is an option of the fake server.
type GuestFactory interface {
	NewGuest(id VMIdentity, host Host) (Guest, error)
}

// VMIdentity names one incarnation of a VM.
type VMIdentity struct {
	Node string
	VMID int
	// Incarnation changes every time a VM with this id is (re)created.
	Incarnation string
}

// Host is the fake host as seen from a guest.
type Host interface {
	// GuestPoweredOff marks the VM stopped (a poweroff from inside the guest).
	GuestPoweredOff(vmid int)
	// Scale converts a realistic duration to simulated time (time-scale factor; 0 = instant).
	Scale(d time.Duration) time.Duration
}

// Guest is one simulated VM incarnation.
type Guest interface {
	// PowerOn boots the guest with the hardware and cloud-init data derived from the VM config.
	PowerOn(ctx context.Context, b BootInfo) error
	// PowerOff stops the guest; clean is true for an ACPI shutdown.
	PowerOff(clean bool) error
	// Reboot restarts the guest (status/reboot).
	Reboot() error
	// Destroy releases everything the guest holds (VM deleted).
	Destroy() error
	// Agent returns the guest agent, or nil when none is installed/started yet.
	Agent() Agent
}

// BootInfo is what a guest learns at power-on.
type BootInfo struct {
	Name      string
	Machine   string // q35, pc-q35-9.2, i440fx...
	BIOS      string
	CPU       string // host, kvm64, x86-64-v2-AES ...
	Cores     int
	MemoryMiB int
	// GPUs are the PCI functions passed through (resolved from hostpci raw ids or mappings).
	GPUs      []PCIDevice
	CloudInit CloudInitData
	// Config is the VM config as PVE stores it (key -> raw value), for anything else.
	Config map[string]string
}

// CloudInitData is the NoCloud seed PVE renders from the VM config.
type CloudInitData struct {
	Hostname string
	User     string
	// SSHKeys are the decoded public key lines from the config's sshkeys.
	SSHKeys []string
	// IPConfig0 is the raw ipconfig0 value, e.g. "ip=192.168.0.140/24,gw=192.168.0.1".
	IPConfig0  string
	Nameserver string
	// VendorData is the content of a cicustom vendor= snippet ("" when none).
	VendorData string
}

// PCIDevice is one PCI function of a node (as /nodes/{node}/hardware/pci lists it).
type PCIDevice struct {
	ID              string // 0000:01:00.0
	Class           string // 0x030000
	Vendor          string // 0x10de
	Device          string // 0x2d04
	VendorName      string
	DeviceName      string
	SubsystemVendor string
	SubsystemDevice string
	IOMMUGroup      int // -1 when IOMMU is off
	// MemoryMiB is the simulated VRAM as nvidia-smi reports it (GPUs only; not part of the PVE payload).
	MemoryMiB int
	// Model is the marketing name nvidia-smi prints (not part of the PVE payload).
	Model string
}

// Agent is the QEMU guest agent inside a guest.
type Agent interface {
	// Ready reports whether the agent answers (false => "QEMU guest agent is not running").
	Ready() bool
	// Exec starts argv with stdin and returns a pid for ExecStatus.
	Exec(argv []string, stdin []byte) (pid int, err error)
	ExecStatus(pid int) (ExecStatus, error)
	// FileRead returns a file's content (guest-file-read).
	FileRead(path string) ([]byte, error)
	// Interfaces lists network interfaces, lo included.
	Interfaces() []NetInterface
	OSInfo() map[string]string
}

// ExecStatus is guest-exec-status.
type ExecStatus struct {
	Exited   bool
	ExitCode int
	Signal   int
	Stdout   []byte
	Stderr   []byte
}

// NetInterface is one guest interface as network-get-interfaces reports it.
type NetInterface struct {
	Name            string
	HardwareAddress string
	IPs             []IPAddress
}

// IPAddress is one address of an interface.
type IPAddress struct {
	Type   string // ipv4 | ipv6
	Addr   string
	Prefix int
}
