package pve

// Topology is the initial state of the fake cluster. New copies it; POST /_sim/reset returns to it.
type Topology struct {
	// ClusterName is "" for a standalone node (cluster/status then lists only node entries).
	ClusterName string
	Nodes       []NodeSpec
	Storages    []StorageSpec
	// Mappings are cluster PCI resource mappings (GET/POST /cluster/mapping/pci).
	Mappings []PCIMappingSpec
	Users    []UserSpec
	Tokens   []TokenSpec
	// VMs exist before the first request (config as PVE stores it, key -> raw value).
	VMs []VMSpec
}

// NodeSpec is one cluster node.
type NodeSpec struct {
	Name      string
	IP        string // shown in cluster/status; never dialled
	Cores     int    // logical CPUs (maxcpu)
	Sockets   int
	CPUModel  string
	MemoryGiB int
	// IOMMU is false when the node booted without intel_iommu/amd_iommu (iommugroup -1, pass-through fails).
	IOMMU bool
	PCI   []PCIDevice
}

// StorageSpec is one storage (storage.cfg entry) with its content.
type StorageSpec struct {
	Name    string
	Type    string   // dir, lvmthin, zfspool, nfs ...
	Content []string // iso, vztmpl, backup, import, snippets, images, rootdir
	// Nodes restricts the storage to some nodes (nil = all nodes).
	Nodes      []string
	Shared     bool
	TotalBytes uint64
	Volumes    []VolumeSpec
}

// VolumeSpec is one volume on a storage.
type VolumeSpec struct {
	VolID  string // local:iso/ubuntu-24.04.3-live-server-amd64.iso
	Format string // raw, qcow2, iso, txt ...
	Size   uint64 // bytes
	VMID   int    // owner (images), 0 = none
	// Data is the file content for snippets (readable by guests through Server.SnippetContent).
	Data string
}

// PCIMappingSpec is a cluster PCI resource mapping (/etc/pve/mapping/pci.cfg).
type PCIMappingSpec struct {
	ID          string
	Description string
	// Map entries: "node=pve,path=0000:01:00,id=10de:2d04,iommugroup=12".
	Map []string
}

// UserSpec is a PVE user. Privs nil means every privilege (root@pam).
type UserSpec struct {
	ID       string // root@pam
	Password string
	Privs    []string
}

// TokenSpec is an API token. Without privilege separation it has its user's privileges.
type TokenSpec struct {
	ID      string // root@pam!aimachine
	Secret  string
	Privsep bool
	Privs   []string // used when Privsep
}

// VMSpec is a VM present at start.
type VMSpec struct {
	Node    string
	VMID    int
	Config  map[string]string
	Running bool
}

// Defaults of DefaultTopology.
const (
	DefaultNode          = "pve"
	DefaultRootPassword  = "aimachine-root-pw"
	DefaultTokenID       = "root@pam!aimachine"
	DefaultTokenSecret   = "5b1c7a3e-9d2f-4c1a-8e6b-2f0d9c4a7e11"
	DefaultGPUID         = "0000:01:00.0"
	DefaultGPUAudioID    = "0000:01:00.1"
	DefaultCloudImage    = "local:import/noble-server-cloudimg-amd64.qcow2"
	DefaultISO           = "local:iso/ubuntu-24.04.3-live-server-amd64.iso"
	DefaultVendorSnippet = "local:snippets/aimachine-vendor.yaml"
)

// DefaultVendorData is the content of DefaultVendorSnippet.
const DefaultVendorData = `#cloud-config
packages:
  - qemu-guest-agent
runcmd:
  - [systemctl, enable, --now, qemu-guest-agent]
`

// RTX5060Ti returns the two PCI functions of an RTX 5060 Ti 16 GB (Gigabyte board, subsystem
// 1458:4181) in slot bus:dev (e.g. "0000:01:00"); NVIDIAGPU builds any other card of the table.
func RTX5060Ti(slot string, iommuGroup int) []PCIDevice {
	devs, err := NVIDIAGPU(slot, iommuGroup, "2d04", "0x1458", "0x4181")
	if err != nil {
		panic(err)
	}
	return devs
}

// DefaultTopology is one node "pve" (64 threads, 128 GiB, IOMMU on) with an RTX 5060 Ti at 0000:01:00,
// storages local (dir) and local-lvm (lvmthin), root@pam with a password and the token root@pam!aimachine.
func DefaultTopology() Topology {
	pci := []PCIDevice{
		{ID: "0000:00:00.0", Class: "0x060000", Vendor: "0x1022", Device: "0x14d8", VendorName: "Advanced Micro Devices, Inc. [AMD]",
			DeviceName: "Raphael/Granite Ridge Root Complex", SubsystemVendor: "0x1458", SubsystemDevice: "0x5000", IOMMUGroup: 0},
	}
	pci = append(pci, RTX5060Ti("0000:01:00", 12)...)
	pci = append(pci,
		PCIDevice{ID: "0000:02:00.0", Class: "0x010802", Vendor: "0x144d", Device: "0xa80c", VendorName: "Samsung Electronics Co Ltd",
			DeviceName: "NVMe SSD Controller S4LV008[Pascal]", SubsystemVendor: "0x144d", SubsystemDevice: "0xa801", IOMMUGroup: 13},
		PCIDevice{ID: "0000:03:00.0", Class: "0x020000", Vendor: "0x8086", Device: "0x125c", VendorName: "Intel Corporation",
			DeviceName: "Ethernet Controller I226-V", SubsystemVendor: "0x1458", SubsystemDevice: "0xe000", IOMMUGroup: 14},
	)
	return Topology{
		Nodes: []NodeSpec{{
			Name: DefaultNode, IP: "192.168.0.10", Cores: 64, Sockets: 1,
			CPUModel: "AMD Ryzen Threadripper PRO 7985WX 64-Cores", MemoryGiB: 128, IOMMU: true, PCI: pci,
		}},
		Storages: []StorageSpec{
			{
				Name: "local", Type: "dir", Content: []string{"iso", "vztmpl", "backup", "import", "snippets"},
				TotalBytes: 100 << 30,
				Volumes: []VolumeSpec{
					{VolID: DefaultCloudImage, Format: "qcow2", Size: 3584 << 20},
					{VolID: DefaultISO, Format: "iso", Size: 3213064192},
					{VolID: DefaultVendorSnippet, Format: "snippet", Size: uint64(len(DefaultVendorData)), Data: DefaultVendorData},
				},
			},
			{Name: "local-lvm", Type: "lvmthin", Content: []string{"images", "rootdir"}, TotalBytes: 1800 << 30},
		},
		Users:  []UserSpec{{ID: "root@pam", Password: DefaultRootPassword}},
		Tokens: []TokenSpec{{ID: DefaultTokenID, Secret: DefaultTokenSecret}},
	}
}

func (t Topology) clone() Topology {
	c := t
	c.Nodes = append([]NodeSpec(nil), t.Nodes...)
	for i := range c.Nodes {
		c.Nodes[i].PCI = append([]PCIDevice(nil), t.Nodes[i].PCI...)
	}
	c.Storages = append([]StorageSpec(nil), t.Storages...)
	for i := range c.Storages {
		c.Storages[i].Content = append([]string(nil), t.Storages[i].Content...)
		c.Storages[i].Volumes = append([]VolumeSpec(nil), t.Storages[i].Volumes...)
	}
	c.Mappings = append([]PCIMappingSpec(nil), t.Mappings...)
	for i := range c.Mappings {
		c.Mappings[i].Map = append([]string(nil), t.Mappings[i].Map...)
	}
	c.Users = append([]UserSpec(nil), t.Users...)
	c.Tokens = append([]TokenSpec(nil), t.Tokens...)
	c.VMs = append([]VMSpec(nil), t.VMs...)
	for i := range c.VMs {
		m := map[string]string{}
		for k, v := range t.VMs[i].Config {
			m[k] = v
		}
		c.VMs[i].Config = m
	}
	return c
}
