package catalog

// Catalog is the whole infrastructure catalog file.
//
// Field names in YAML are snake_case; unknown fields are rejected by Parse.
type Catalog struct {
	// Version of the catalog format; only 1 exists.
	Version int `yaml:"version"`
	// Network holds the addressing strategy shared by every VM.
	Network NetworkDefaults `yaml:"network"`
	// Nodes are the Proxmox nodes VMs may be placed on, with their declared capacity.
	Nodes []Node `yaml:"nodes"`
	// JumpHost is an optional SSH bastion used to reach every guest (a VM may override it).
	JumpHost *JumpHost `yaml:"jump_host,omitempty"`
	// VMs are the virtual machines this catalog describes.
	VMs []VM `yaml:"vms"`

	// Path is the file the catalog was loaded from ("" when parsed from bytes).
	Path string `yaml:"-"`
	// positions maps a field path ("vms[0].network.ip") to its place in the file.
	positions map[string]Position `yaml:"-"`
	// missingEnabled are the sections (e.g. "vms[0].gpu") the file wrote without "enabled".
	missingEnabled []string `yaml:"-"`
}

// NetworkDefaults describe how VM ids map to addresses.
type NetworkDefaults struct {
	// Strategy "id" derives a VM's address from its id inside Subnet
	// (id 140 in 192.168.0.0/24 -> 192.168.0.140); "explicit" requires an ip per VM.
	Strategy string `yaml:"strategy"`
	// Subnet is the IPv4 prefix VMs live in, e.g. 192.168.0.0/24.
	Subnet string `yaml:"subnet"`
	// Gateway is the default gateway handed to cloud-init.
	Gateway string `yaml:"gateway"`
	// Bridge is the default Linux bridge for net0.
	Bridge string `yaml:"bridge"`
	// Nameservers handed to cloud-init (optional).
	Nameservers []string `yaml:"nameservers,omitempty"`
}

// NodeAuto as a VM's node lets the tool place it (it needs gpu.mapping).
const NodeAuto = "auto"

// Node is a Proxmox node as the catalog knows it.
type Node struct {
	Name string `yaml:"name"`
	// Cores and MemoryMB are the node's declared capacity (0 = not declared, not checked).
	Cores    int `yaml:"cores,omitempty"`
	MemoryMB int `yaml:"memory_mb,omitempty"`
	// Storages lists the storage ids available on the node.
	Storages []string `yaml:"storages"`
}

// JumpHost is an SSH bastion (for the simulator: the PVE host's own sshd).
type JumpHost struct {
	// Address is host:port.
	Address string `yaml:"address"`
	User    string `yaml:"user"`
}

// VM is one virtual machine.
type VM struct {
	ID   int    `yaml:"id"`
	Name string `yaml:"name"`
	// Node is the Proxmox node, or NodeAuto: the tool picks a node where gpu.mapping has a
	// free device and the VM fits (provision/fleet Place); a VM that exists stays on its node.
	Node     string `yaml:"node"`
	Cores    int    `yaml:"cores"`
	MemoryMB int    `yaml:"memory_mb"`
	Disk     Disk   `yaml:"disk"`
	Image    Image  `yaml:"image"`
	// Machine is Proxmox's machine type, passed through verbatim: q35 (the default; PCIe
	// passthrough needs it), pc (i440fx), or a pinned pc-q35-X.Y / pc-i440fx-X.Y.
	Machine   string    `yaml:"machine"`
	BIOS      string    `yaml:"bios"` // ovmf | seabios (default ovmf)
	CPU       string    `yaml:"cpu"`  // default host (kvm64 hides AVX)
	Network   VMNetwork `yaml:"network"`
	GPU       *GPU      `yaml:"gpu,omitempty"`
	CloudInit CloudInit `yaml:"cloud_init"`
	Agent     *bool     `yaml:"agent,omitempty"`  // default true
	OnBoot    *bool     `yaml:"onboot,omitempty"` // default true
	// JumpHost overrides the catalog-wide jump host for this VM.
	JumpHost *JumpHost `yaml:"jump_host,omitempty"`
	Services Services  `yaml:"services"`
	Tags     []string  `yaml:"tags,omitempty"`
	// Description is free text; the tool appends its ownership marker.
	Description string `yaml:"description,omitempty"`
}

// Disk is the boot disk.
type Disk struct {
	SizeGB  int    `yaml:"size_gb"`
	Storage string `yaml:"storage"`
}

// Image is what the boot disk is made from: exactly one of CloudImage or ISO.
type Image struct {
	// CloudImage is a volume id of the Ubuntu noble cloud image,
	// e.g. local:import/noble-server-cloudimg-amd64.qcow2 (the default).
	CloudImage string `yaml:"cloud_image,omitempty"`
	// ISO is a volume id of an installer ISO; accepted, but it cannot install unattended.
	ISO string `yaml:"iso,omitempty"`
	// VendorData is an optional cloud-init vendor snippet (volume id) installed with cicustom,
	// e.g. local:snippets/aimachine-vendor.yaml (installs qemu-guest-agent).
	VendorData string `yaml:"vendor_data,omitempty"`
	// URL is where `aimachine prepare` downloads the cloud image from (download-url into the
	// storage of CloudImage, under CloudImage's file name). Default: DefaultImageURL, a dated
	// noble release (never a moving "current" link: its checksum changes).
	URL string `yaml:"url,omitempty"`
	// SHA256 is the image's checksum, verified by Proxmox after the download (default
	// DefaultImageSHA256, with URL's default; required with any other URL).
	SHA256 string `yaml:"sha256,omitempty"`
}

// VMNetwork is a VM's address; fields left empty come from the catalog's NetworkDefaults.
type VMNetwork struct {
	IP      string `yaml:"ip,omitempty"`
	CIDR    int    `yaml:"cidr,omitempty"`
	Gateway string `yaml:"gateway,omitempty"`
	Bridge  string `yaml:"bridge,omitempty"`
}

// GPU is a PCI passthrough device.
type GPU struct {
	Enabled bool `yaml:"enabled"`
	// PCIAddress is a raw host address like 0000:01:00 (all functions) or 0000:01:00.0;
	// setting it needs root@pam (API tokens are refused by PVE).
	PCIAddress string `yaml:"pci_address,omitempty"`
	// Mapping is a cluster PCI resource-mapping name (token-friendly). Exactly one of the two.
	Mapping string    `yaml:"mapping,omitempty"`
	PCIe    *bool     `yaml:"pcie,omitempty"`   // default true
	ROMBar  *bool     `yaml:"rombar,omitempty"` // default true
	XVGA    bool      `yaml:"x_vga,omitempty"`
	Expect  GPUExpect `yaml:"expect"`
}

// GPUExpect is what the guest must see.
type GPUExpect struct {
	Model     string `yaml:"model"`      // e.g. NVIDIA GeForce RTX 5060 Ti
	PCIID     string `yaml:"pci_id"`     // vendor:device, e.g. 10de:2d04
	MemoryMiB int    `yaml:"memory_mib"` // as nvidia-smi reports, e.g. 16311
}

// CloudInit configures the first-boot user.
type CloudInit struct {
	User    string   `yaml:"user"`
	SSHKeys []SSHKey `yaml:"ssh_keys"`
}

// SSHKey is a public key, given literally or as a file path (~ expanded).
type SSHKey struct {
	Key  string `yaml:"key,omitempty"`
	File string `yaml:"file,omitempty"`

	// dir is the directory of the catalog file: a relative File is read from there.
	dir string
}

// Services are the LLM services the guest phase installs.
type Services struct {
	VLLM   *VLLM   `yaml:"vllm,omitempty"`
	Ollama *Ollama `yaml:"ollama,omitempty"`
}

// VLLM is the vLLM OpenAI-compatible server.
type VLLM struct {
	Enabled bool   `yaml:"enabled"`
	Version string `yaml:"version"` // pinned pip version
	Model   string `yaml:"model"`
	// Bind lists the addresses vLLM listens on; default: the VM's IP and 127.0.0.1.
	Bind []string `yaml:"bind,omitempty"`
	Port int      `yaml:"port"` // default 8000
	// APIKeyEnv names the environment variable (on the machine running aimachine) holding the API key.
	APIKeyEnv string `yaml:"api_key_env,omitempty"`
	// GPUMemoryUtilization is vLLM's --gpu-memory-utilization; the default 0.60 leaves room for Ollama.
	GPUMemoryUtilization float64 `yaml:"gpu_memory_utilization,omitempty"`
	MaxModelLen          int     `yaml:"max_model_len,omitempty"`
	// ModelsDir is where the model is downloaded ahead of the service (the Hugging Face
	// cache layout; vLLM's --download-dir); default /opt/models.
	ModelsDir string `yaml:"models_dir,omitempty"`
	// Revision pins the model's Hugging Face revision (a commit, branch or tag); empty = main.
	Revision string `yaml:"revision,omitempty"`
	// HFTokenEnv names the environment variable (on the machine running aimachine) holding a
	// Hugging Face token, needed for gated models.
	HFTokenEnv string `yaml:"hf_token_env,omitempty"`
}

// Ollama is the Ollama server.
type Ollama struct {
	Enabled bool `yaml:"enabled"`
	// Version pins the Ollama release (install.sh's OLLAMA_VERSION); empty = the latest.
	Version   string   `yaml:"version,omitempty"`
	Bind      []string `yaml:"bind,omitempty"` // default: the VM's IP
	Port      int      `yaml:"port"`           // default 11434
	ModelsDir string   `yaml:"models_dir"`     // default /opt/ollama/models
	// Models are pulled after the service starts (ollama pull); models not listed are left alone.
	Models []string `yaml:"models,omitempty"`
}

// Position is a place in the catalog file.
type Position struct {
	Line, Column int
}
