package catalog

import "net/netip"

// The defaults, in one place. ApplyDefaults is the only code that uses them.
const (
	// DefaultMachine: PCIe passthrough (gpu.pcie) needs a q35 machine.
	DefaultMachine = "q35"
	// DefaultBIOS: OVMF (UEFI) boots the GPT/UEFI noble cloud image and modern GPUs' ROMs.
	DefaultBIOS = "ovmf"
	// DefaultCPU: "host" passes AVX/AVX2 through; kvm64 hides them and Ollama falls back to the CPU.
	DefaultCPU = "host"
	// DefaultCloudImage is the Ubuntu 24.04 (noble) cloud image as imported on the node.
	// The live-server ISO cannot install unattended (shared/reference/guest.md §9).
	DefaultCloudImage = "local:import/noble-server-cloudimg-amd64.qcow2"
	// DefaultImageURL is the pinned noble cloud image prepare downloads: Ubuntu 24.04 server,
	// release 20260321, from its dated (immutable) release directory.
	DefaultImageURL = "https://cloud-images.ubuntu.com/releases/noble/release-20260321/ubuntu-24.04-server-cloudimg-amd64.img"
	// DefaultImageSHA256 is that file's SHA-256. Source: this directory's SHA256SUMS as quoted,
	// with the same URL, by two unrelated public repositories (a Proxmox cloud-image catalog,
	// "Checksum from this dir's SHA256SUMS", and a Lima image pin "sha256:5c3ddb00…"); it was
	// not re-downloaded here (no network). Check it with:
	//   curl -s https://cloud-images.ubuntu.com/releases/noble/release-20260321/SHA256SUMS | grep server-cloudimg-amd64.img
	DefaultImageSHA256 = "5c3ddb00f60bc455dac0862fabe9d8bacec46c33ac1751143c5c3683404b110d"
	// DefaultStrategy derives a VM's address from its id.
	DefaultStrategy = StrategyID
	// DefaultBridge is Proxmox's default Linux bridge.
	DefaultBridge = "vmbr0"

	// DefaultVLLMPort is vLLM's own default API port.
	DefaultVLLMPort = 8000
	// DefaultGPUMemoryUtilization is vLLM's --gpu-memory-utilization. vLLM's own default (0.90)
	// reserves 90 % of the VRAM at start, and Ollama then fails to load anything (guest.md §7.7).
	// 0.60 of the 16 GB RTX 5060 Ti (16311 MiB) leaves about 6.5 GB for Ollama, so both fit
	// on the one card.
	DefaultGPUMemoryUtilization = 0.60
	// DefaultOllamaPort is Ollama's own default port.
	DefaultOllamaPort = 11434
	// DefaultOllamaModelsDir keeps models off the service user's home (OLLAMA_MODELS).
	DefaultOllamaModelsDir = "/opt/ollama/models"
	// DefaultVLLMModelsDir is where the vLLM model is downloaded before the service starts.
	DefaultVLLMModelsDir = "/opt/models"
)

// Address strategies (NetworkDefaults.Strategy).
const (
	// StrategyID: id 140 in 192.168.0.0/24 is 192.168.0.140; an explicit ip must agree.
	StrategyID = "id"
	// StrategyExplicit: every VM sets network.ip.
	StrategyExplicit = "explicit"
)

// ApplyDefaults fills every field the catalog left empty with its default. It is idempotent,
// never overrides a value that was set, and leaves alone what it cannot compute (an id with
// no address in the subnet, a malformed subnet): Validate reports those.
//
// Parse and Load call it, so a parsed catalog is already complete; call it yourself only on
// a Catalog built in Go.
//
// Defaults: network strategy "id", bridge vmbr0; per VM machine q35, bios ovmf, cpu host,
// agent and onboot true, image cloud_image local:import/noble-server-cloudimg-amd64.qcow2,
// network ip from the strategy, cidr from the subnet, gateway and bridge from network;
// gpu pcie and rombar true; vLLM port 8000, bind [vm ip, 127.0.0.1],
// gpu_memory_utilization 0.60; Ollama port 11434, bind [vm ip], models_dir /opt/ollama/models.
func (c *Catalog) ApplyDefaults() {
	n := &c.Network
	if n.Strategy == "" {
		n.Strategy = DefaultStrategy
	}
	if n.Bridge == "" {
		n.Bridge = DefaultBridge
	}
	subnet, subnetErr := netip.ParsePrefix(n.Subnet)

	for i := range c.VMs {
		vm := &c.VMs[i]
		setString(&vm.Machine, DefaultMachine)
		setString(&vm.BIOS, DefaultBIOS)
		setString(&vm.CPU, DefaultCPU)
		setBool(&vm.Agent, true)
		setBool(&vm.OnBoot, true)
		if vm.Image.CloudImage == "" && vm.Image.ISO == "" {
			vm.Image.CloudImage = DefaultCloudImage
		}
		if vm.Image.CloudImage != "" && vm.Image.URL == "" && vm.Image.SHA256 == "" {
			vm.Image.URL, vm.Image.SHA256 = DefaultImageURL, DefaultImageSHA256
		}

		net := &vm.Network
		if net.IP == "" && n.Strategy == StrategyID && subnetErr == nil {
			if ip, ok := addressForID(subnet, vm.ID); ok {
				net.IP = ip.String()
			}
		}
		if net.CIDR == 0 && subnetErr == nil {
			net.CIDR = subnet.Bits()
		}
		setString(&net.Gateway, n.Gateway)
		setString(&net.Bridge, n.Bridge)

		if g := vm.GPU; g != nil {
			setBool(&g.PCIe, true)
			setBool(&g.ROMBar, true)
		}

		if v := vm.Services.VLLM; v != nil {
			setInt(&v.Port, DefaultVLLMPort)
			setString(&v.ModelsDir, DefaultVLLMModelsDir)
			if v.GPUMemoryUtilization == 0 {
				v.GPUMemoryUtilization = DefaultGPUMemoryUtilization
			}
			if len(v.Bind) == 0 && net.IP != "" {
				v.Bind = []string{net.IP, "127.0.0.1"}
			}
		}
		if o := vm.Services.Ollama; o != nil {
			setInt(&o.Port, DefaultOllamaPort)
			setString(&o.ModelsDir, DefaultOllamaModelsDir)
			if len(o.Bind) == 0 && net.IP != "" {
				o.Bind = []string{net.IP}
			}
		}
	}
}

// addressForID is the "id" strategy: the subnet's network address plus id, when that is a
// usable host address of the subnet (not the network or broadcast address).
func addressForID(subnet netip.Prefix, id int) (netip.Addr, bool) {
	if !subnet.Addr().Is4() || id <= 0 {
		return netip.Addr{}, false
	}
	subnet = subnet.Masked()
	hostBits := 32 - subnet.Bits()
	if hostBits < 2 || uint64(id) >= (uint64(1)<<hostBits)-1 {
		return netip.Addr{}, false
	}
	b := subnet.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(id)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func setString(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func setInt(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

func setBool(p **bool, def bool) {
	if *p == nil {
		*p = &def
	}
}

// usableHost reports whether ip is a host address of subnet (inside it, not its network or
// broadcast address).
func usableHost(subnet netip.Prefix, ip netip.Addr) bool {
	if !subnet.Contains(ip) {
		return false
	}
	if subnet.Bits() >= 31 {
		return true
	}
	return ip != subnet.Masked().Addr() && ip != lastAddr(subnet)
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= (uint32(1) << (32 - p.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
