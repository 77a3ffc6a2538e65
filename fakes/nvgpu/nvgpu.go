// Package nvgpu is a table of real NVIDIA GPUs as the simulators show them: PCI ids and the
// names noble's pci.ids gives them (what `lspci -nn` prints in an Ubuntu 24.04 guest), the name,
// memory and compute capability nvidia-smi reports, and which driver branches and kernel-module
// flavours support them (what `ubuntu-drivers list --gpgpu` offers on noble). The fake Proxmox
// host builds PCI devices from it (pve.NVIDIAGPU) and the simulated guest reads every
// card-specific fact from it, so that no card is special.
//
// Sources (each row repeats the ones it uses):
//   - [pciids]   pciutils/pciids pci.ids: HEAD c1c12547 (2026-08-22) for PCIName, snapshot eae06dcb
//     (2024-03-31) for NoblePCIName — noble (released 2024-04) ships a pci.ids no newer than that; every
//     name below is the same in the 2023-09-22 snapshot fd7d37fc, and every Blackwell id is absent
//     from both (first added 2025-01-27: 2b85; 2025-05-26: 2d04).
//   - [cc]       NVIDIA "CUDA GPUs – Compute Capability" (developer.nvidia.com/cuda-gpus).
//   - [spec]     NVIDIA product pages / datasheets (memory bandwidth, default power limit).
//   - [smi]      public nvidia-smi captures of memory.total (named per row).
//   - [open]     NVIDIA open-gpu-kernel-modules README: the open modules support Turing and later
//     (GSP); on older GPUs the open nvidia.ko logs "... is not supported by open nvidia.ko because it
//     does not include the required GPU System Processor (GSP)".
//   - [r580]     NVIDIA: the 580 branch is the last to support Maxwell, Pascal and Volta (590+ moved
//     them to legacy), so noble's nvidia-driver-595* carry no Pascal modaliases.
//   - [class]    data-centre boards enumerate as 3D controllers (class 0302), e.g. the Tesla T4 in
//     akash-network/provider-configs#52 ("subclass 02 3D controller").
//   - [guest]    shared/reference/guest.md §0, §1, §2 (Blackwell needs the open module; noble archive
//     branches 580 and 595; closed builds are offered and even recommended for Blackwell).
package nvgpu

import "strings"

// Device is one NVIDIA GPU model (its display function and, when the board has one, its HDMI/DP
// audio function).
type Device struct {
	DeviceID string // PCI device id, lower-case hex: "2d04"
	AudioID  string // device id of the audio function ("" = none, data-centre boards)
	// Class is the display function's PCI class: 030000 (VGA compatible controller) for GeForce
	// boards, 030200 (3D controller) for the data-centre boards without display outputs.
	Class string
	// PCIName is the current pci.ids name; NoblePCIName the one in noble's pci.ids ("" = unknown
	// there: lspci prints "NVIDIA Corporation Device [10de:xxxx]").
	PCIName, NoblePCIName           string
	AudioPCIName, NobleAudioPCIName string
	Name                            string // nvidia-smi name / torch.cuda.get_device_name
	Arch                            string // Blackwell, Ada Lovelace, ...
	ComputeCap                      string // "12.0"
	MemoryMiB                       int    // nvidia-smi memory.total
	BandwidthGBs                    int    // memory bandwidth, GB/s
	PowerW                          int    // default power limit (nvidia-smi power.limit)
	// OpenRequired: the proprietary module refuses the GPU (Blackwell). OpenSupported: the open
	// module drives it (Turing and later, GSP).
	OpenRequired, OpenSupported bool
	// LastBranch is the newest driver branch supporting the GPU (0 = every current branch).
	LastBranch int
	Sources    string
}

// Default is the device id of the default topology's GPU (RTX 5060 Ti 16 GB).
const Default = "2d04"

var devices = []Device{
	{Class: "030000", DeviceID: "2d04", AudioID: "22eb", PCIName: "GB206 [GeForce RTX 5060 Ti]", AudioPCIName: "GB206 High Definition Audio Controller",
		Name: "NVIDIA GeForce RTX 5060 Ti", Arch: "Blackwell", ComputeCap: "12.0", MemoryMiB: 16311, BandwidthGBs: 448, PowerW: 180,
		OpenRequired: true, OpenSupported: true,
		Sources: "[pciids] 2d04/22eb absent from noble's snapshot (guest.md §5 real `Device [10de:2d04]`); [smi] guest.md §1 (16311 MiB, 180W); [cc] 12.0; [spec] 448 GB/s (128-bit GDDR7 28 Gbps)"},
	{Class: "030000", DeviceID: "2d05", AudioID: "22eb", PCIName: "GB206 [GeForce RTX 5060]", AudioPCIName: "GB206 High Definition Audio Controller",
		Name: "NVIDIA GeForce RTX 5060", Arch: "Blackwell", ComputeCap: "12.0", MemoryMiB: 8151, BandwidthGBs: 448, PowerW: 145,
		OpenRequired: true, OpenSupported: true,
		Sources: "[pciids]; [smi] guest.md §1 (8151 MiB); [cc] 12.0; [spec] 448 GB/s, 145 W"},
	{Class: "030000", DeviceID: "2b85", AudioID: "22e8", PCIName: "GB202 [GeForce RTX 5090]", AudioPCIName: "GB202 High Definition Audio Controller",
		Name: "NVIDIA GeForce RTX 5090", Arch: "Blackwell", ComputeCap: "12.0", MemoryMiB: 32607, BandwidthGBs: 1792, PowerW: 575,
		OpenRequired: true, OpenSupported: true,
		Sources: "[pciids] (added 2025-01-27); [smi] noonghunna/club-3090#617, #1261 (32607MiB, 575W); [cc] 12.0; [spec] 1792 GB/s"},
	{Class: "030000", DeviceID: "2684", AudioID: "22ba", PCIName: "AD102 [GeForce RTX 4090]", NoblePCIName: "AD102 [GeForce RTX 4090]",
		AudioPCIName: "AD102 High Definition Audio Controller", NobleAudioPCIName: "AD102 High Definition Audio Controller",
		Name: "NVIDIA GeForce RTX 4090", Arch: "Ada Lovelace", ComputeCap: "8.9", MemoryMiB: 24564, BandwidthGBs: 1008, PowerW: 450, OpenSupported: true,
		Sources: "[pciids]; [smi] RLinf/RLinf#255 (24564MiB, 450W); [cc] 8.9; [spec] 1008 GB/s"},
	{Class: "030000", DeviceID: "2803", AudioID: "22bd", PCIName: "AD106 [GeForce RTX 4060 Ti]", NoblePCIName: "AD106 [GeForce RTX 4060 Ti]",
		AudioPCIName: "AD106M High Definition Audio Controller",
		Name:         "NVIDIA GeForce RTX 4060 Ti", Arch: "Ada Lovelace", ComputeCap: "8.9", MemoryMiB: 8188, BandwidthGBs: 288, PowerW: 160, OpenSupported: true,
		Sources: "[pciids] (22bd only after 2024); [smi] public captures `NVIDIA GeForce RTX 4060 Ti, 8188 MiB`; [cc] 8.9; [spec] 8 GB: 288 GB/s, 160 W"},
	{Class: "030000", DeviceID: "2204", AudioID: "1aef", PCIName: "GA102 [GeForce RTX 3090]", NoblePCIName: "GA102 [GeForce RTX 3090]",
		AudioPCIName: "GA102 High Definition Audio Controller", NobleAudioPCIName: "GA102 High Definition Audio Controller",
		Name: "NVIDIA GeForce RTX 3090", Arch: "Ampere", ComputeCap: "8.6", MemoryMiB: 24576, BandwidthGBs: 936, PowerW: 350, OpenSupported: true,
		Sources: "[pciids]; [smi] noonghunna/club-3090#1127 (24576MiB); [cc] 8.6; [spec] 936 GB/s, 350 W"},
	{Class: "030200", DeviceID: "27b8", PCIName: "AD104GL [L4]", NoblePCIName: "AD104GL [L4]",
		Name: "NVIDIA L4", Arch: "Ada Lovelace", ComputeCap: "8.9", MemoryMiB: 23034, BandwidthGBs: 300, PowerW: 72, OpenSupported: true,
		Sources: "[pciids]; [smi] modal-labs/modal-client#2797 (23034MiB); [cc] 8.9; [spec] 300 GB/s, 72 W"},
	{Class: "030200", DeviceID: "20b5", PCIName: "GA100 [A100 PCIe 80GB]", NoblePCIName: "GA100 [A100 PCIe 80GB]",
		Name: "NVIDIA A100 80GB PCIe", Arch: "Ampere", ComputeCap: "8.0", MemoryMiB: 81920, BandwidthGBs: 1935, PowerW: 300, OpenSupported: true,
		Sources: "[pciids]; [smi] modal-labs/modal-client#2797 (81920MiB), public captures `NVIDIA A100 80GB PCIe, 81920 MiB, 8.0`; [cc] 8.0; [spec] 1935 GB/s, 300 W"},
	{Class: "030200", DeviceID: "2330", PCIName: "GH100 [H100 SXM5 80GB]", NoblePCIName: "GH100 [H100 SXM5 80GB]",
		Name: "NVIDIA H100 80GB HBM3", Arch: "Hopper", ComputeCap: "9.0", MemoryMiB: 81559, BandwidthGBs: 3350, PowerW: 700, OpenSupported: true,
		Sources: "[pciids]; [smi] modal-labs/modal-client#2797 (81559MiB), NVIDIA/nccl#1264 (`NVIDIA H100 80GB HBM3`, 700W); [cc] 9.0; [spec] 3.35 TB/s"},
	{Class: "030200", DeviceID: "1eb8", PCIName: "TU104GL [Tesla T4]", NoblePCIName: "TU104GL [Tesla T4]",
		Name: "Tesla T4", Arch: "Turing", ComputeCap: "7.5", MemoryMiB: 15360, BandwidthGBs: 320, PowerW: 70, OpenSupported: true,
		Sources: "[pciids]; [smi] modal-labs/modal-client#2797 (15360MiB), captures `Tesla T4, 15360 MiB`; [cc] 7.5; [spec] 320 GB/s, 70 W"},
	{Class: "030000", DeviceID: "1b06", AudioID: "10ef", PCIName: "GP102 [GeForce GTX 1080 Ti]", NoblePCIName: "GP102 [GeForce GTX 1080 Ti]",
		AudioPCIName: "GP102 HDMI Audio Controller", NobleAudioPCIName: "GP102 HDMI Audio Controller",
		Name: "NVIDIA GeForce GTX 1080 Ti", Arch: "Pascal", ComputeCap: "6.1", MemoryMiB: 11264, BandwidthGBs: 484, PowerW: 250, LastBranch: 580,
		Sources: "[pciids]; [smi] PromtEngineer/localGPT#14 (11264MiB, 250W); [cc] 6.1; [spec] 484 GB/s; [open] no GSP; [r580]"},
}

// All returns the table.
func All() []Device { return append([]Device(nil), devices...) }

// Lookup finds a device by PCI device id ("2d04", "0x2D04").
func Lookup(deviceID string) (Device, bool) {
	id := strings.TrimPrefix(strings.ToLower(deviceID), "0x")
	for _, d := range devices {
		if d.DeviceID == id {
			return d, true
		}
	}
	return Device{}, false
}

// LookupAudio finds the device whose audio function has this PCI device id.
func LookupAudio(deviceID string) (Device, bool) {
	id := strings.TrimPrefix(strings.ToLower(deviceID), "0x")
	for _, d := range devices {
		if d.AudioID == id {
			return d, true
		}
	}
	return Device{}, false
}

// Supports reports whether driver branch (580, 595) in the given kernel-module flavour drives the
// GPU, i.e. whether that package carries the GPU's modalias [r580][open][guest]. Closed builds are
// listed for Blackwell too (guest.md §2.2 real captures), although their module refuses the GPU.
func (d Device) Supports(branch int, open bool) bool {
	if d.LastBranch != 0 && branch > d.LastBranch {
		return false
	}
	return !open || d.OpenSupported
}

// NobleLspciName is the vendor + device text lspci prints in a noble guest.
func NobleLspciName(vendorDevice string) string {
	if vendorDevice == "" {
		return "NVIDIA Corporation Device"
	}
	return "NVIDIA Corporation " + vendorDevice
}
