package catalog

import (
	"fmt"
	"strconv"
	"strings"
)

// VM returns the VM called name (or whose id is name, e.g. "140"). The error lists the
// VMs the catalog has.
func (c *Catalog) VM(name string) (*VM, error) {
	for i := range c.VMs {
		if c.VMs[i].Name == name {
			return &c.VMs[i], nil
		}
	}
	if id, err := strconv.Atoi(name); err == nil {
		for i := range c.VMs {
			if c.VMs[i].ID == id {
				return &c.VMs[i], nil
			}
		}
	}
	known := make([]string, len(c.VMs))
	for i, vm := range c.VMs {
		known[i] = fmt.Sprintf("%d %s", vm.ID, vm.Name)
	}
	list := "none"
	if len(known) > 0 {
		list = strings.Join(known, ", ")
	}
	return nil, fmt.Errorf("no VM %q in catalog %s (known VMs: %s)", name, displayName(c.Path), list)
}

// Node returns the node called name.
func (c *Catalog) Node(name string) (*Node, bool) {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i], true
		}
	}
	return nil, false
}

// JumpHostFor is the SSH bastion that reaches vm: its own jump_host, else the catalog's,
// else nil (dial the guest directly).
func (c *Catalog) JumpHostFor(vm *VM) *JumpHost {
	if vm.JumpHost != nil {
		return vm.JumpHost
	}
	return c.JumpHost
}

// IP is the VM's IPv4 address (after defaults: derived from the id under the "id" strategy).
func (vm *VM) IP() string { return vm.Network.IP }

// IPCIDR is the address with its prefix length, as cloud-init's ipconfig0 wants it:
// "192.168.0.140/24".
func (vm *VM) IPCIDR() string {
	if vm.Network.IP == "" {
		return ""
	}
	return fmt.Sprintf("%s/%d", vm.Network.IP, vm.Network.CIDR)
}

// AgentEnabled reports whether the QEMU guest agent is enabled (default true).
func (vm *VM) AgentEnabled() bool { return vm.Agent == nil || *vm.Agent }

// OnBootEnabled reports whether the VM starts with the node (default true).
func (vm *VM) OnBootEnabled() bool { return vm.OnBoot == nil || *vm.OnBoot }

// GPUEnabled reports whether a GPU is passed through.
func (vm *VM) GPUEnabled() bool { return vm.GPU != nil && vm.GPU.Enabled }

// VLLMEnabled reports whether the guest phase installs vLLM.
func (vm *VM) VLLMEnabled() bool { return vm.Services.VLLM != nil && vm.Services.VLLM.Enabled }

// OllamaEnabled reports whether the guest phase installs Ollama.
func (vm *VM) OllamaEnabled() bool { return vm.Services.Ollama != nil && vm.Services.Ollama.Enabled }

// IsQ35 reports whether the VM's machine type is a q35 one (needed for pcie=1).
func (vm *VM) IsQ35() bool {
	return vm.Machine == "" || vm.Machine == "q35" || strings.HasPrefix(vm.Machine, "pc-q35-")
}

// PCIeEnabled reports whether the device is attached as PCIe (default true; needs q35).
func (g *GPU) PCIeEnabled() bool { return g.PCIe == nil || *g.PCIe }

// ROMBarEnabled reports whether the device's ROM is mapped into the guest (default true).
func (g *GPU) ROMBarEnabled() bool { return g.ROMBar == nil || *g.ROMBar }

// Device is what hostpci0 points at: the raw address, or "mapping=NAME".
func (g *GPU) Device() string {
	if g.Mapping != "" {
		return "mapping=" + g.Mapping
	}
	return g.PCIAddress
}
