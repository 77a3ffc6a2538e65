package catalog

import (
	"strings"
	"testing"
)

// TestSampleDescribesVM140AsTheSeedsSay pins the sample's VM 140 (scenario 9, AC-8).
func TestSampleDescribesVM140AsTheSeedsSay(t *testing.T) {
	c, err := LoadValid("../infrastructure-catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	// The only warnings: each VM still carries the sample's replace-me key.
	for _, w := range c.Warnings() {
		if !strings.Contains(w, "cloud_init.ssh_keys[0]: warning: the sample catalog's placeholder key") {
			t.Errorf("the sample has a warning besides the placeholder key: %s", w)
		}
	}
	if n := len(c.Warnings()); n != len(c.VMs) {
		t.Errorf("%d placeholder-key warnings for %d VMs", n, len(c.VMs))
	}
	vm, err := c.VM("vm-llm-aimachine")
	if err != nil {
		t.Fatal(err)
	}
	g := vm.GPU
	for what, got := range map[string][2]any{
		"id":                {vm.ID, 140},
		"node":              {vm.Node, "pve"},
		"cores":             {vm.Cores, 32},
		"memory_mb":         {vm.MemoryMB, 51200},
		"disk":              {vm.Disk, Disk{SizeGB: 500, Storage: "local-lvm"}},
		"cloud image":       {vm.Image.CloudImage, "local:import/noble-server-cloudimg-amd64.qcow2"},
		"vendor_data":       {vm.Image.VendorData, "local:snippets/aimachine-vendor.yaml"},
		"machine":           {vm.Machine, "q35"},
		"bios":              {vm.BIOS, "ovmf"},
		"cpu":               {vm.CPU, "host"},
		"gpu":               {vm.GPUEnabled(), true},
		"pci_address":       {g.PCIAddress, "0000:01:00"},
		"pcie":              {g.PCIeEnabled(), true},
		"model":             {g.Expect.Model, "NVIDIA GeForce RTX 5060 Ti"},
		"pci_id":            {g.Expect.PCIID, "10de:2d04"},
		"memory_mib":        {g.Expect.MemoryMiB, 16311},
		"user":              {vm.CloudInit.User, "ubuntu"},
		"agent":             {vm.AgentEnabled(), true},
		"onboot":            {vm.OnBootEnabled(), true},
		"ip":                {vm.IP(), "192.168.0.140"},
		"vllm":              {vm.VLLMEnabled(), true},
		"vllm port":         {vm.Services.VLLM.Port, 8000},
		"vllm gpu mem util": {vm.Services.VLLM.GPUMemoryUtilization, 0.60},
		"ollama":            {vm.OllamaEnabled(), true},
		"ollama port":       {vm.Services.Ollama.Port, 11434},
	} {
		if got[0] != got[1] {
			t.Errorf("%s = %v, want %v", what, got[0], got[1])
		}
	}
	if keys, err := vm.PublicKeys(); err != nil || len(keys) == 0 {
		t.Errorf("PublicKeys = %v, %v", keys, err)
	}
	if len(vm.Tags) == 0 {
		t.Error("no tags")
	}
	// And at least two plain VMs: no GPU, no services.
	for _, name := range []string{"101", "103"} {
		p, err := c.VM(name)
		if err != nil {
			t.Fatal(err)
		}
		if p.GPUEnabled() || p.VLLMEnabled() || p.OllamaEnabled() {
			t.Errorf("VM %s is not plain", name)
		}
	}
	if n, ok := c.Node("pve"); !ok || n.Cores != 64 || n.MemoryMB != 131072 || strings.Join(n.Storages, ",") != "local,local-lvm" {
		t.Errorf("node pve = %+v", n)
	}
}

func TestVMLookup(t *testing.T) {
	c, err := Load("../infrastructure-catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	if vm, err := c.VM("140"); err != nil || vm.Name != "vm-llm-aimachine" {
		t.Errorf("VM(\"140\") = %v, %v", vm, err)
	}
	// The pointer is into the catalog: changes stick.
	vm, _ := c.VM("vm-dns")
	vm.Cores = 3
	if c.VMs[1].Cores != 3 {
		t.Error("VM returned a copy")
	}
	_, err = c.VM("vm-nope")
	want := `no VM "vm-nope" in catalog ../infrastructure-catalog.yml (known VMs: 140 vm-llm-aimachine, 101 vm-dns, 103 vm-monitoring)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	if _, err := (&Catalog{}).VM("x"); err == nil || !strings.Contains(err.Error(), "known VMs: none") {
		t.Errorf("empty catalog: %v", err)
	}
}

func TestJumpHostFor(t *testing.T) {
	c, err := Load("testdata/valid-mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if j := c.JumpHostFor(&c.VMs[0]); j == nil || j.Address != "[fd00::1]:2222" || j.User != "jump" {
		t.Errorf("VM override: %+v", j)
	}
	c.VMs[0].JumpHost = nil
	if j := c.JumpHostFor(&c.VMs[0]); j == nil || j.Address != "pve.example.net:22" {
		t.Errorf("catalog jump host: %+v", j)
	}
	c.JumpHost = nil
	if j := c.JumpHostFor(&c.VMs[0]); j != nil {
		t.Errorf("no jump host: %+v", j)
	}
}

func TestGPUDevice(t *testing.T) {
	if d := (&GPU{PCIAddress: "0000:01:00"}).Device(); d != "0000:01:00" {
		t.Errorf("raw: %q", d)
	}
	if d := (&GPU{Mapping: "gpu0"}).Device(); d != "mapping=gpu0" {
		t.Errorf("mapping: %q", d)
	}
	for m, q35 := range map[string]bool{"q35": true, "pc-q35-9.2+pve1": true, "pc": false, "pc-i440fx-8.1": false} {
		if got := (&VM{Machine: m}).IsQ35(); got != q35 {
			t.Errorf("IsQ35(%q) = %v", m, got)
		}
	}
}
