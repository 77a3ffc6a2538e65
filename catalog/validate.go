package catalog

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The patterns the catalog's strings must match. catalog/schema.json carries the same
// expressions; schema_test.go keeps the two in step.
var (
	// dnsLabelRE: VM and node names become guest hostnames: one lower-case DNS label.
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// storageIDRE is Proxmox's pve-storage-id.
	storageIDRE = regexp.MustCompile(`^[a-z][a-z0-9._-]*[a-z0-9]$`)
	// cloudImageRE: a disk image import-from accepts. qemu-server (PVE/API2/Qemu.pm, the
	// import-from check) wants a source of content type 'images' or 'import', and pve-storage's
	// PVE::Storage::Plugin::parse_volname parses import/NAME only with $IMPORT_EXT_RE_1
	// (src/PVE/Storage.pm: .ova .ovf .qcow2 .raw .vmdk) and a name of $SAFE_CHAR_CLASS_RE;
	// .ova and .ovf are appliances, not disks, so a cloud image is .qcow2, .raw or .vmdk.
	cloudImageRE = regexp.MustCompile(`^([a-z][a-z0-9._-]*[a-z0-9]):import/[a-zA-Z0-9.+=_-]+\.(qcow2|raw|vmdk)$`)
	// anyVolumeRE splits a volume id that cloudImageRE refused, to say what is wrong with it.
	anyVolumeRE = regexp.MustCompile(`^([a-z][a-z0-9._-]*[a-z0-9]):([a-z]+)/([^/]+)$`)
	isoRE       = regexp.MustCompile(`^([a-z][a-z0-9._-]*[a-z0-9]):iso/[^/\s]+\.iso$`)
	snippetRE   = regexp.MustCompile(`^([a-z][a-z0-9._-]*[a-z0-9]):snippets/[^/\s]+$`)
	// pciAddressRE is qemu-server's hostpci id (shared/reference/proxmox-api.md §5.1): lower-case hex,
	// domain and function optional; without a function every function of the slot is passed.
	pciAddressRE = regexp.MustCompile(`^(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?$`)
	// mappingRE is Proxmox's pve-configid (cluster resource mapping names).
	mappingRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]+$`)
	// pciIDRE is vendor:device as lspci -nn prints it, e.g. 10de:2d04.
	pciIDRE   = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{4}$`)
	machineRE = regexp.MustCompile(`^(q35|pc|pc-(i440fx|q35)-[0-9]+\.[0-9]+(\+pve[0-9]+)?)$`)
	cpuRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)
	bridgeRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,14}$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	tagRE     = regexp.MustCompile(`^[a-z0-9_][a-z0-9_+.-]*$`)
	versionRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+(\.[0-9]+)?([.+-]?[0-9A-Za-z.]+)?$`)
	envRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	absPathRE = regexp.MustCompile(`^/\S*$`)
	// revisionRE: a git ref or commit as the Hub accepts them.
	revisionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	// ollamaModelRE: [namespace/]name[:tag], as ollama pull takes them.
	ollamaModelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)?(:[A-Za-z0-9][A-Za-z0-9._-]*)?$`)
)

// Bounds.
const (
	MinVMID = 100       // Proxmox reserves ids below 100
	MaxVMID = 999999999 // Proxmox's largest VM id
	// MinCloudImageDiskGB: the noble cloud image's disk is 3.5 GB and Proxmox can only grow a disk.
	MinCloudImageDiskGB = 4
	// MaxMemoryMB is qemu-server's $MAX_MEM (PVE::QemuServer::Memory): 4 TiB.
	MaxMemoryMB = 4 << 20
	// MaxCores bounds a VM's (and a node's) cores: no Proxmox host has more; larger values
	// are typing mistakes that would otherwise reach arithmetic.
	MaxCores = 8192
	// MaxDiskGB bounds the boot disk: 1 PiB, beyond any single Proxmox storage; preflight
	// checks the real free space.
	MaxDiskGB = 1 << 20
	// MaxModelLen bounds vLLM's --max-model-len (tokens): no model has a longer context.
	MaxModelLen = 1 << 24
	// MaxGPUMemoryMiB bounds gpu.expect.memory_mib: 1 TiB of VRAM.
	MaxGPUMemoryMiB = 1 << 20
)

// Validate checks every value and every rule across values, and returns nil or
// ValidationErrors holding every problem (one line each: FILE:LINE:COL: path: message).
// It reads the SSH public key files the catalog names. Warnings are not errors: see Warnings.
// It judges the catalog as it is: one built in Go needs ApplyDefaults first (Parse and Load
// apply them).
func (c *Catalog) Validate() error {
	errs, _ := c.check()
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// Warnings lists what is valid but probably not what the user wants (an ISO image that
// cannot install unattended, a CPU type that hides AVX, …), one line each in the same
// FILE:LINE:COL: path: message form as the errors.
func (c *Catalog) Warnings() []string {
	_, warns := c.check()
	out := make([]string, len(warns))
	for i, w := range warns {
		out[i] = w.Error()
	}
	return out
}

func (c *Catalog) check() (ValidationErrors, ValidationErrors) {
	k := &checker{c: c}
	k.catalog()
	sortErrors(k.errs)
	sortErrors(k.warns)
	return k.errs, k.warns
}

type checker struct {
	c           *Catalog
	errs, warns ValidationErrors
	subnet      netip.Prefix
	subnetOK    bool
	// refused are the fields text() refused (a control character, too long): their own
	// rules would only repeat it.
	refused map[string]bool
}

func (k *checker) errf(path, format string, args ...any) {
	if k.refused[path] {
		return
	}
	k.errs = append(k.errs, k.c.fieldError(path, format, args...))
}

func (k *checker) warnf(path, format string, args ...any) {
	e := k.c.fieldError(path, format, args...)
	e.Msg = "warning: " + e.Msg
	k.warns = append(k.warns, e)
}

// has reports whether the file set path (as opposed to a default or nothing).
func (k *checker) has(path string) bool {
	_, ok := k.c.positions[path]
	return ok
}

func (k *checker) catalog() {
	c := k.c
	k.text()
	switch {
	case c.Version == 0:
		k.errf("version", "is required: set version: 1")
	case c.Version != 1:
		k.errf("version", "got %d, want 1 (the only catalog format)", c.Version)
	}
	k.network()
	k.nodes()
	if c.JumpHost != nil {
		k.jumpHost("jump_host", c.JumpHost)
	}
	if len(c.VMs) == 0 {
		k.errf("vms", "no VMs: the catalog must describe at least one")
	}
	for i := range c.VMs {
		k.vm(i, &c.VMs[i])
	}
	k.acrossVMs()
}

func (k *checker) network() {
	n := k.c.Network
	switch n.Strategy {
	case StrategyID, StrategyExplicit:
	default:
		k.errf("network.strategy", "got %q, want %q (address = subnet + VM id) or %q (every VM sets network.ip)", n.Strategy, StrategyID, StrategyExplicit)
	}
	if n.Subnet == "" {
		k.errf("network.subnet", "is required: the IPv4 prefix the VMs live in, e.g. 192.168.0.0/24")
	} else if p, err := netip.ParsePrefix(n.Subnet); err != nil || !p.Addr().Is4() {
		k.errf("network.subnet", "got %q, want an IPv4 prefix like 192.168.0.0/24", n.Subnet)
	} else if p.Masked() != p {
		k.errf("network.subnet", "got %q with host bits set, want the network address: %s", n.Subnet, p.Masked())
	} else if p.Bits() > 30 {
		k.errf("network.subnet", "got %q, want a prefix of /30 or shorter (room for a gateway and VMs)", n.Subnet)
	} else {
		k.subnet, k.subnetOK = p, true
	}
	if n.Gateway == "" {
		k.errf("network.gateway", "is required: the default gateway handed to cloud-init, e.g. 192.168.0.1")
	} else if gw, ok := k.ipv4("network.gateway", n.Gateway); ok && k.subnetOK && !usableHost(k.subnet, gw) {
		k.errf("network.gateway", "%s is not a host address of network.subnet %s", gw, k.subnet)
	}
	if !bridgeRE.MatchString(n.Bridge) {
		k.errf("network.bridge", "got %q, want a Linux bridge name like vmbr0 (pattern %s)", n.Bridge, bridgeRE)
	}
	for i, ns := range n.Nameservers {
		k.ipv4(fmt.Sprintf("network.nameservers[%d]", i), ns)
	}
}

// ipv4 parses an IPv4 address, reporting a bad one at path.
func (k *checker) ipv4(path, s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		k.errf(path, "got %q, want an IPv4 address like 192.168.0.10", s)
		return netip.Addr{}, false
	}
	return a, true
}

// autoNode checks a VM with node: auto: its GPU comes from a cluster mapping (the tool places
// it where the mapping has a free device), and at least one catalog node can hold it.
func (k *checker) autoNode(p string, vm *VM) {
	if vm.GPU == nil || !vm.GPU.Enabled || vm.GPU.Mapping == "" {
		k.errf(p+".node", "%s places the VM on a node where its GPU's cluster mapping has a free device: it needs gpu.enabled with gpu.mapping (or name the node; known nodes: %s)", NodeAuto, k.nodeNames())
		return
	}
	for _, n := range k.c.Nodes {
		if (n.Cores == 0 || vm.Cores <= n.Cores) && (n.MemoryMB == 0 || vm.MemoryMB <= n.MemoryMB) && slices.Contains(n.Storages, vm.Disk.Storage) {
			return
		}
	}
	k.errf(p+".node", "%s: no catalog node declares room for %d cores, %d MB and storage %q (known nodes: %s)", NodeAuto, vm.Cores, vm.MemoryMB, vm.Disk.Storage, k.nodeNames())
}

func (k *checker) nodes() {
	if len(k.c.Nodes) == 0 {
		k.errf("nodes", "no nodes: declare at least the Proxmox node the VMs run on (name and storages)")
	}
	seen := map[string]int{}
	for i, n := range k.c.Nodes {
		p := fmt.Sprintf("nodes[%d]", i)
		switch {
		case n.Name == "":
			k.errf(p+".name", "is required: the Proxmox node name, e.g. pve")
		case !dnsLabelRE.MatchString(n.Name):
			k.errf(p+".name", "got %q, want a lower-case DNS label (pattern %s)", n.Name, dnsLabelRE)
		case n.Name == NodeAuto:
			k.errf(p+".name", "%q is reserved: vms[].node: %s asks the tool to place the VM", NodeAuto, NodeAuto)
		}
		if j, dup := seen[n.Name]; dup && n.Name != "" {
			k.errf(p+".name", "node %q is already declared at nodes[%d]", n.Name, j)
		} else {
			seen[n.Name] = i
		}
		if n.Cores < 0 || n.Cores > MaxCores {
			k.errf(p+".cores", "got %d, want the node's core count, 1–%d (or leave it out: 0 = not declared)", n.Cores, MaxCores)
		}
		if n.MemoryMB < 0 || n.MemoryMB > MaxMemoryMB {
			k.errf(p+".memory_mb", "got %d, want the node's memory in MB, at most %d (or leave it out: 0 = not declared)", n.MemoryMB, MaxMemoryMB)
		}
		if len(n.Storages) == 0 {
			k.errf(p+".storages", "no storages: list the storage ids VM disks and images may use, e.g. [local, local-lvm]")
		}
		seenStorage := map[string]bool{}
		for j, s := range n.Storages {
			sp := fmt.Sprintf("%s.storages[%d]", p, j)
			if !storageIDRE.MatchString(s) {
				k.errf(sp, "got %q, want a Proxmox storage id (pattern %s)", s, storageIDRE)
			}
			if seenStorage[s] {
				k.errf(sp, "storage %q is listed twice", s)
			}
			seenStorage[s] = true
		}
	}
}

func (k *checker) jumpHost(p string, j *JumpHost) {
	if j.Address == "" {
		k.errf(p+".address", "is required: host:port of the SSH bastion")
	} else if host, port, err := net.SplitHostPort(j.Address); err != nil || host == "" {
		k.errf(p+".address", "got %q, want host:port, e.g. pve.example.net:22", j.Address)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		k.errf(p+".address", "got %q, want a port in 1–65535", j.Address)
	}
	if j.User == "" {
		k.errf(p+".user", "is required: the SSH user on the bastion")
	} else if strings.ContainsAny(j.User, " \t") {
		k.errf(p+".user", "got %q, want an SSH user name without spaces", j.User)
	}
}

func (k *checker) vm(i int, vm *VM) {
	p := fmt.Sprintf("vms[%d]", i)
	if vm.ID < MinVMID || vm.ID > MaxVMID {
		if vm.ID == 0 && !k.has(p+".id") {
			k.errf(p+".id", "is required: the Proxmox VM id (%d–%d)", MinVMID, MaxVMID)
		} else {
			k.errf(p+".id", "got %d, want a Proxmox VM id in %d–%d", vm.ID, MinVMID, MaxVMID)
		}
	}
	switch {
	case vm.Name == "":
		k.errf(p+".name", "is required: the VM name (also its hostname), e.g. vm-llm-aimachine")
	case !dnsLabelRE.MatchString(vm.Name):
		k.errf(p+".name", "got %q, want a DNS label: lower-case letters, digits and '-', 1–63 characters, no leading or trailing '-' (pattern %s)", vm.Name, dnsLabelRE)
	}

	node, nodeOK := k.c.Node(vm.Node)
	switch {
	case vm.Node == "":
		k.errf(p+".node", "is required: the Proxmox node to create the VM on (known nodes: %s)", k.nodeNames())
	case vm.Node == NodeAuto:
		k.autoNode(p, vm)
	case !nodeOK:
		k.errf(p+".node", "unknown node %q (known nodes: %s)", vm.Node, k.nodeNames())
	}

	if vm.Cores <= 0 {
		k.errf(p+".cores", "got %d, want at least 1 core", vm.Cores)
	} else if vm.Cores > MaxCores {
		k.errf(p+".cores", "got %d, want at most %d cores", vm.Cores, MaxCores)
	} else if nodeOK && node.Cores > 0 && vm.Cores > node.Cores {
		k.errf(p+".cores", "got %d, more than node %q declares (%d cores)", vm.Cores, node.Name, node.Cores)
	}
	if vm.MemoryMB <= 0 {
		k.errf(p+".memory_mb", "got %d, want the RAM in MB (e.g. 51200 for 50 GiB)", vm.MemoryMB)
	} else if vm.MemoryMB > MaxMemoryMB {
		k.errf(p+".memory_mb", "got %d, want at most %d (4 TiB, Proxmox's limit for a VM)", vm.MemoryMB, MaxMemoryMB)
	} else if nodeOK && node.MemoryMB > 0 && vm.MemoryMB > node.MemoryMB {
		k.errf(p+".memory_mb", "got %d, more than node %q declares (%d MB); with a GPU passed through all of it is pinned", vm.MemoryMB, node.Name, node.MemoryMB)
	}

	k.disk(p, vm, node, nodeOK)
	k.image(p, vm, node, nodeOK)

	if !machineRE.MatchString(vm.Machine) {
		hint := ""
		if vm.Machine == "i440fx" {
			hint = " (Proxmox calls i440fx \"pc\")"
		}
		k.errf(p+".machine", "got %q, want q35, pc, or a pinned pc-q35-X.Y / pc-i440fx-X.Y%s", vm.Machine, hint)
	}
	if vm.BIOS != "ovmf" && vm.BIOS != "seabios" {
		k.errf(p+".bios", "got %q, want ovmf or seabios", vm.BIOS)
	}
	if !cpuRE.MatchString(vm.CPU) {
		k.errf(p+".cpu", "got %q, want a Proxmox CPU type such as host (pattern %s)", vm.CPU, cpuRE)
	} else if (vm.VLLMEnabled() || vm.OllamaEnabled()) && isBasicCPU(vm.CPU) {
		k.warnf(p+".cpu", "%q hides AVX/AVX2 from the guest: Ollama falls back to the CPU and vLLM's CPU paths slow down; use host", vm.CPU)
	}

	k.vmNetwork(p, vm)
	if vm.GPU != nil {
		k.gpu(p+".gpu", vm)
	}
	k.cloudInit(p+".cloud_init", vm)
	if vm.JumpHost != nil {
		k.jumpHost(p+".jump_host", vm.JumpHost)
	}
	k.services(p+".services", vm)
	for j, t := range vm.Tags {
		if !tagRE.MatchString(t) {
			k.errf(fmt.Sprintf("%s.tags[%d]", p, j), "got %q, want a Proxmox tag: lower-case letters, digits, _ + . - (pattern %s)", t, tagRE)
		}
	}
}

func isBasicCPU(cpu string) bool {
	switch cpu {
	case "kvm64", "kvm32", "qemu64", "qemu32":
		return true
	}
	return false
}

func (k *checker) nodeNames() string {
	if len(k.c.Nodes) == 0 {
		return "none"
	}
	names := make([]string, len(k.c.Nodes))
	for i, n := range k.c.Nodes {
		names[i] = n.Name
	}
	return strings.Join(names, ", ")
}

// storageOnNode reports a storage the node does not list.
func (k *checker) storageOnNode(path, what, storage string, node *Node, nodeOK bool) {
	if !nodeOK {
		return
	}
	for _, s := range node.Storages {
		if s == storage {
			return
		}
	}
	k.errf(path, "%s storage %q is not on node %q (its storages: %s)", what, storage, node.Name, strings.Join(node.Storages, ", "))
}

func (k *checker) disk(p string, vm *VM, node *Node, nodeOK bool) {
	d := vm.Disk
	switch {
	case d.SizeGB <= 0:
		k.errf(p+".disk.size_gb", "got %d, want the boot disk size in GB (e.g. 500)", d.SizeGB)
	case d.SizeGB > MaxDiskGB:
		k.errf(p+".disk.size_gb", "got %d, want at most %d GB (1 PiB)", d.SizeGB, MaxDiskGB)
	case vm.Image.CloudImage != "" && d.SizeGB < MinCloudImageDiskGB:
		k.errf(p+".disk.size_gb", "got %d, want at least %d: the cloud image's disk is 3.5 GB and Proxmox can only grow a disk", d.SizeGB, MinCloudImageDiskGB)
	}
	switch {
	case d.Storage == "":
		k.errf(p+".disk.storage", "is required: the storage id the boot disk is created on, e.g. local-lvm")
	case !storageIDRE.MatchString(d.Storage):
		k.errf(p+".disk.storage", "got %q, want a Proxmox storage id (pattern %s)", d.Storage, storageIDRE)
	default:
		k.storageOnNode(p+".disk.storage", "disk", d.Storage, node, nodeOK)
	}
}

var sha256RE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func (k *checker) image(p string, vm *VM, node *Node, nodeOK bool) {
	img := vm.Image
	ip := p + ".image"
	if img.CloudImage != "" && img.ISO != "" {
		k.errf(ip, "sets both cloud_image and iso: pick one (cloud_image installs unattended)")
	}
	if img.CloudImage != "" {
		if m := cloudImageRE.FindStringSubmatch(img.CloudImage); m == nil {
			k.errf(ip+".cloud_image", "%s", cloudImageProblem(img.CloudImage))
		} else {
			k.storageOnNode(ip+".cloud_image", "image", m[1], node, nodeOK)
		}
	}
	if img.URL != "" || img.SHA256 != "" {
		switch {
		case img.CloudImage == "":
			k.errf(ip+".url", "url and sha256 describe the cloud image download: set cloud_image too")
		case !strings.HasPrefix(img.URL, "https://") && !strings.HasPrefix(img.URL, "http://"):
			k.errf(ip+".url", "got %q, want an http(s) URL of the image, e.g. %s", img.URL, DefaultImageURL)
		case !sha256RE.MatchString(img.SHA256):
			k.errf(ip+".sha256", "got %q, want the image's SHA-256 (64 hex digits, from the release's SHA256SUMS)", img.SHA256)
		}
	}
	if img.ISO != "" {
		if m := isoRE.FindStringSubmatch(img.ISO); m == nil {
			k.errf(ip+".iso", "got %q, want a volume id like local:iso/ubuntu-24.04.3-live-server-amd64.iso", img.ISO)
		} else {
			k.storageOnNode(ip+".iso", "ISO", m[1], node, nodeOK)
		}
		k.warnf(ip+".iso", "%q boots the Subiquity installer, which cannot install unattended (it stops at \"Continue with autoinstall?\"); use cloud_image: %s with a cloud-init drive", img.ISO, DefaultCloudImage)
	}
	if img.VendorData != "" {
		if m := snippetRE.FindStringSubmatch(img.VendorData); m == nil {
			k.errf(ip+".vendor_data", "got %q, want a snippet volume id like local:snippets/aimachine-vendor.yaml", img.VendorData)
		} else {
			k.storageOnNode(ip+".vendor_data", "snippet", m[1], node, nodeOK)
		}
	} else if img.CloudImage != "" && vm.AgentEnabled() {
		k.warnf(ip, "agent is on but the noble cloud image has no qemu-guest-agent: add vendor_data with a snippet that installs it (see catalog/testdata/aimachine-vendor.yaml), or the agent never answers")
	}
}

// cloudImageProblem says why a cloud_image volume id is one Proxmox would refuse, and what to
// do instead.
func cloudImageProblem(v string) string {
	const accepts = "Proxmox's import content accepts only .ova .ovf .qcow2 .raw .vmdk (pve-storage parse_volname, $IMPORT_EXT_RE_1)"
	m := anyVolumeRE.FindStringSubmatch(v)
	if m == nil {
		return fmt.Sprintf("got %q, want a volume id STORAGE:import/NAME.qcow2 (or .raw, .vmdk), e.g. %s", v, DefaultCloudImage)
	}
	storage, dir, name := m[1], m[2], m[3]
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		base, ext = name[:i], strings.ToLower(name[i+1:])
	}
	fix := fmt.Sprintf("%s:import/%s.qcow2", storage, base)
	switch {
	case dir != "import":
		what := "NAME.qcow2 (or .raw, .vmdk)"
		if ext == "img" {
			what = "NAME.qcow2 (an Ubuntu .img cloud image is a qcow2 disk)"
		}
		return fmt.Sprintf("got %q: import-from takes a volume of content 'import' (qemu-server refuses type '%s': \"needs to be 'images' or 'import'\"); "+
			"store the image under import/ as %s, e.g. %s", v, dir, what, fix)
	case ext == "img":
		return fmt.Sprintf("got %q: an Ubuntu .img cloud image is a qcow2 disk, and %s; store it as %s.qcow2 under import/ "+
			"(on a dir storage such as local: mv /var/lib/vz/import/%s /var/lib/vz/import/%s.qcow2) and set cloud_image: %s",
			v, accepts, base, name, base, fix)
	case ext == "ova" || ext == "ovf":
		return fmt.Sprintf("got %q: an .%s is an appliance, not a disk; give the disk image itself: STORAGE:import/NAME.qcow2 (or .raw, .vmdk)", v, ext)
	case ext != "qcow2" && ext != "raw" && ext != "vmdk":
		return fmt.Sprintf("got %q: %s; store the image as NAME.qcow2 (or .raw, .vmdk) under import/, e.g. %s", v, accepts, fix)
	}
	return fmt.Sprintf("got %q: the file name may hold only letters, digits and . + = _ - (pve-storage $SAFE_CHAR_CLASS_RE), e.g. %s", v, DefaultCloudImage)
}

func (k *checker) vmNetwork(p string, vm *VM) {
	np := p + ".network"
	n := vm.Network
	strategy := k.c.Network.Strategy
	if n.IP == "" {
		switch {
		case strategy == StrategyExplicit:
			k.errf(np+".ip", "is required: network.strategy is %q", StrategyExplicit)
		case strategy == StrategyID && k.subnetOK && vm.ID > 0:
			k.errf(p+".id", "id %d has no address in %s under network.strategy %q (id 140 -> .140): pick a smaller id, a larger subnet, or strategy %q",
				vm.ID, k.subnet, StrategyID, StrategyExplicit)
		}
		return
	}
	ip, ok := k.ipv4(np+".ip", n.IP)
	if !ok {
		return
	}
	inSubnet := true
	if k.subnetOK {
		inSubnet = usableHost(k.subnet, ip)
		switch {
		case !inSubnet:
			k.errf(np+".ip", "%s is outside network.subnet %s (or is its network or broadcast address)", ip, k.subnet)
		case strategy == StrategyID:
			if want, ok := addressForID(k.subnet, vm.ID); ok && want != ip {
				k.errf(np+".ip", "got %s, but network.strategy %q gives VM %d the address %s: drop the ip or set strategy %q", ip, StrategyID, vm.ID, want, StrategyExplicit)
			}
		}
	}
	if n.CIDR < 1 || n.CIDR > 32 {
		k.errf(np+".cidr", "got %d, want a prefix length in 1–32", n.CIDR)
		return
	}
	vmNet := netip.PrefixFrom(ip, n.CIDR).Masked()
	// A gateway inherited from network.gateway is only worth checking when the address is
	// in network.subnet: otherwise the ip is what is wrong, and that is already reported.
	if n.Gateway != "" && (inSubnet || k.has(np+".gateway")) {
		if gw, ok := k.ipv4(np+".gateway", n.Gateway); ok {
			switch {
			case gw == ip:
				k.errf(np+".gateway", "%s is the VM's own address", gw)
			case !vmNet.Contains(gw):
				k.errf(np+".gateway", "%s is not in the VM's network %s", gw, vmNet)
			}
		}
	}
	if !bridgeRE.MatchString(n.Bridge) {
		k.errf(np+".bridge", "got %q, want a Linux bridge name like vmbr0 (pattern %s)", n.Bridge, bridgeRE)
	}
}

// requireEnabled insists a gpu/vllm/ollama section of the file says enabled: true or
// false: a section without it would silently be off.
func (k *checker) requireEnabled(path string) {
	if slices.Contains(k.c.missingEnabled, path) {
		k.errf(path+".enabled", "is required: write enabled: true (or false to keep the section but switch it off)")
	}
}

func (k *checker) gpu(gp string, vm *VM) {
	g := vm.GPU
	k.requireEnabled(gp)
	if g.PCIAddress != "" && !pciAddressRE.MatchString(g.PCIAddress) {
		k.errf(gp+".pci_address", "got %q, want a host PCI address like 0000:01:00 (all functions) or 0000:01:00.0: lower-case hex, pattern %s", g.PCIAddress, pciAddressRE)
	}
	if g.Mapping != "" && !mappingRE.MatchString(g.Mapping) {
		k.errf(gp+".mapping", "got %q, want a cluster PCI mapping id (pattern %s)", g.Mapping, mappingRE)
	}
	if g.Expect.PCIID != "" && !pciIDRE.MatchString(g.Expect.PCIID) {
		k.errf(gp+".expect.pci_id", "got %q, want vendor:device in lower-case hex as lspci -nn prints it, e.g. 10de:2d04", g.Expect.PCIID)
	}
	if g.Expect.MemoryMiB < 0 || g.Expect.MemoryMiB > MaxGPUMemoryMiB {
		k.errf(gp+".expect.memory_mib", "got %d, want the memory nvidia-smi reports in MiB (e.g. 16311), or 0 to skip the check", g.Expect.MemoryMiB)
	}
	if !g.Enabled {
		return
	}
	switch {
	case g.PCIAddress != "" && g.Mapping != "":
		k.errf(gp, "sets both pci_address %q and mapping %q: set exactly one (mapping works with API tokens; a raw address needs root@pam)", g.PCIAddress, g.Mapping)
	case g.PCIAddress == "" && g.Mapping == "":
		k.errf(gp, "is enabled but sets neither pci_address (e.g. 0000:01:00) nor mapping (a cluster PCI mapping id): set exactly one")
	}
	if g.PCIeEnabled() && !vm.IsQ35() && machineRE.MatchString(vm.Machine) {
		k.errf(gp+".pcie", "pcie needs a q35 machine, but machine is %q (Proxmox fails the start with \"q35 machine model is not enabled\"): set machine: q35 or pcie: false", vm.Machine)
	}
	if g.Expect.PCIID == "" {
		k.errf(gp+".expect.pci_id", "is required with a GPU: the vendor:device the guest must see, e.g. 10de:2d04 (lspci names can predate the card)")
	}
}

func (k *checker) cloudInit(cp string, vm *VM) {
	ci := vm.CloudInit
	switch {
	case ci.User == "":
		k.errf(cp+".user", "is required: the user cloud-init creates, e.g. ubuntu")
	case !userRE.MatchString(ci.User):
		k.errf(cp+".user", "got %q, want a Linux user name (pattern %s)", ci.User, userRE)
	}
	if len(ci.SSHKeys) == 0 {
		k.errf(cp+".ssh_keys", "no SSH keys: add at least one (key: \"ssh-ed25519 AAAA…\" or file: ~/.ssh/id_ed25519.pub), or nobody can log in")
	}
	for j := range ci.SSHKeys {
		kp := fmt.Sprintf("%s.ssh_keys[%d]", cp, j)
		key := &ci.SSHKeys[j]
		if text, err := key.Resolve(); err == nil && strings.Contains(text, SampleKey) {
			k.warnf(kp, "the sample catalog's placeholder key (aimachine-sample-replace-me): its private half was deleted, so nobody can log in with it; replace it with your own public key (file: ~/.ssh/id_ed25519.pub, or key: the content of that file)")
		}
		if _, err := key.Resolve(); err != nil {
			switch {
			case key.Key != "" && key.File == "":
				kp += ".key"
			case key.File != "" && key.Key == "":
				kp += ".file"
			}
			k.errf(kp, "%v", err)
		}
	}
}

// SampleKey is the body of the throwaway public key in the sample catalog
// (infrastructure-catalog.yml); its private half was deleted.
const SampleKey = "AAAAC3NzaC1lZDI1NTE5AAAAIFctCKLah/NxRYN9v6QIBmW4emEmhaLbGZwcPDgF4SnQ"

func (k *checker) services(sp string, vm *VM) {
	v, o := vm.Services.VLLM, vm.Services.Ollama
	if v != nil {
		vp := sp + ".vllm"
		k.requireEnabled(vp)
		if v.Enabled {
			if !vm.GPUEnabled() {
				k.errf(vp+".enabled", "vLLM needs a GPU, but the VM has no gpu enabled: add a gpu section or set enabled: false")
			}
			if v.Model == "" {
				k.errf(vp+".model", "is required with vLLM enabled: a Hugging Face model id, e.g. Qwen/Qwen2.5-3B-Instruct")
			}
			if v.Version == "" {
				k.errf(vp+".version", "is required with vLLM enabled: pin the pip version (e.g. 0.28.0) so re-runs install the same thing")
			}
		}
		if v.Model != "" && strings.ContainsAny(v.Model, " \t\n") {
			k.errf(vp+".model", "got %q, want a model id or path without spaces", v.Model)
		}
		if v.Version != "" && !versionRE.MatchString(v.Version) {
			k.errf(vp+".version", "got %q, want a release version like 0.28.0", v.Version)
		}
		k.port(vp+".port", v.Port)
		// Written so that NaN (.nan in YAML) fails too: every comparison with NaN is false.
		if !(v.GPUMemoryUtilization > 0 && v.GPUMemoryUtilization <= 1) {
			k.errf(vp+".gpu_memory_utilization", "got %g, want a fraction of the VRAM in (0, 1], e.g. %.2f", v.GPUMemoryUtilization, DefaultGPUMemoryUtilization)
		} else if v.Enabled && o != nil && o.Enabled && v.GPUMemoryUtilization > 0.75 {
			k.warnf(vp+".gpu_memory_utilization", "%.2f leaves Ollama little VRAM on the same card: one of them will fail to load a model (the default %.2f leaves ~6.5 GB of 16 GB)", v.GPUMemoryUtilization, DefaultGPUMemoryUtilization)
		}
		if v.MaxModelLen < 0 || v.MaxModelLen > MaxModelLen {
			k.errf(vp+".max_model_len", "got %d, want a context length in tokens, at most %d (0 = the model's own)", v.MaxModelLen, MaxModelLen)
		}
		if v.APIKeyEnv != "" && !envRE.MatchString(v.APIKeyEnv) {
			k.errf(vp+".api_key_env", "got %q, want an environment variable name (pattern %s)", v.APIKeyEnv, envRE)
		}
		if v.HFTokenEnv != "" && !envRE.MatchString(v.HFTokenEnv) {
			k.errf(vp+".hf_token_env", "got %q, want an environment variable name (pattern %s)", v.HFTokenEnv, envRE)
		}
		if !absPathRE.MatchString(v.ModelsDir) {
			k.errf(vp+".models_dir", "got %q, want an absolute path like %s", v.ModelsDir, DefaultVLLMModelsDir)
		}
		if v.Revision != "" && !revisionRE.MatchString(v.Revision) {
			k.errf(vp+".revision", "got %q, want a Hugging Face revision: a commit hash, branch or tag (letters, digits, . _ - /)", v.Revision)
		}
		k.binds(vp+".bind", vm, v.Bind)
	}
	if o != nil {
		op := sp + ".ollama"
		k.requireEnabled(op)
		if o.Enabled && !vm.GPUEnabled() {
			k.errf(op+".enabled", "Ollama is installed for the GPU, but the VM has no gpu enabled: add a gpu section or set enabled: false")
		}
		if o.Version != "" && !versionRE.MatchString(o.Version) {
			k.errf(op+".version", "got %q, want a release version like 0.33.2", o.Version)
		}
		k.port(op+".port", o.Port)
		if !absPathRE.MatchString(o.ModelsDir) {
			k.errf(op+".models_dir", "got %q, want an absolute path like %s", o.ModelsDir, DefaultOllamaModelsDir)
		}
		seen := map[string]bool{}
		for i, m := range o.Models {
			mp := fmt.Sprintf("%s.models[%d]", op, i)
			if !ollamaModelRE.MatchString(m) {
				k.errf(mp, "got %q, want an Ollama model name like qwen2.5:0.5b or llama3.2", m)
			}
			if seen[ollamaTagged(m)] {
				k.errf(mp, "%q is listed twice", m)
			}
			seen[ollamaTagged(m)] = true
		}
		k.binds(op+".bind", vm, o.Bind)
		if v != nil && v.Enabled && o.Enabled && v.Port == o.Port {
			k.errf(op+".port", "port %d is also services.vllm.port: the two services need different ports", o.Port)
		}
	}
}

func (k *checker) port(path string, port int) {
	if port < 1 || port > 65535 {
		k.errf(path, "got %d, want a TCP port in 1–65535", port)
	}
}

// binds checks listen addresses: the VM's own address, loopback, or 0.0.0.0 — anything
// else fails at start with "cannot assign requested address".
func (k *checker) binds(path string, vm *VM, binds []string) {
	for i, b := range binds {
		bp := fmt.Sprintf("%s[%d]", path, i)
		a, ok := k.ipv4(bp, b)
		if !ok {
			continue
		}
		if !a.IsLoopback() && !a.IsUnspecified() && a.String() != vm.Network.IP {
			k.errf(bp, "%s is not an address of the VM (%s): want the VM's ip, 127.0.0.1 or 0.0.0.0", a, vm.Network.IP)
		}
	}
}

// acrossVMs checks what no single VM can: unique ids, names and addresses.
func (k *checker) acrossVMs() {
	ids, names, ips := map[int]int{}, map[string]int{}, map[string]int{}
	gpus := map[string]int{}
	for i := range k.c.VMs {
		vm := &k.c.VMs[i]
		p := fmt.Sprintf("vms[%d]", i)
		if j, dup := ids[vm.ID]; dup && vm.ID != 0 {
			k.errf(p+".id", "id %d is already used by vms[%d] (%s): VM ids are unique", vm.ID, j, k.c.VMs[j].Name)
		} else {
			ids[vm.ID] = i
		}
		if j, dup := names[vm.Name]; dup && vm.Name != "" {
			k.errf(p+".name", "name %q is already used by vms[%d] (id %d): VM names are unique", vm.Name, j, k.c.VMs[j].ID)
		} else {
			names[vm.Name] = i
		}
		// Under the "id" strategy a duplicated id gives a duplicated address: report the id only.
		if j, dup := ips[vm.Network.IP]; dup && vm.Network.IP != "" && k.c.VMs[j].ID != vm.ID {
			k.errf(p+".network.ip", "address %s is already used by vms[%d] (%s)", vm.Network.IP, j, k.c.VMs[j].Name)
		} else {
			ips[vm.Network.IP] = i
		}
		// node: auto VMs share a mapping on purpose: placement gives each its own device.
		if vm.GPUEnabled() && vm.OnBootEnabled() && vm.Node != NodeAuto {
			dev := vm.Node + "/" + vm.GPU.Device()
			if j, dup := gpus[dev]; dup && vm.GPU.Device() != "" {
				k.warnf(p+".gpu", "%s on node %q is also passed to vms[%d] (%s) and both start on boot: only one can run at a time", vm.GPU.Device(), vm.Node, j, k.c.VMs[j].Name)
			} else {
				gpus[dev] = i
			}
		}
	}
}

// ollamaTagged adds Ollama's implicit :latest tag.
func ollamaTagged(m string) string {
	if strings.Contains(m, ":") {
		return m
	}
	return m + ":latest"
}
