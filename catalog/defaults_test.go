package catalog

import (
	"net/netip"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestApplyDefaultsFillsTheMinimalCatalog(t *testing.T) {
	c, err := Load("testdata/valid-minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vm := &c.VMs[0]
	for what, got := range map[string][2]any{
		"network.strategy":  {c.Network.Strategy, "id"},
		"network.bridge":    {c.Network.Bridge, "vmbr0"},
		"machine":           {vm.Machine, "q35"},
		"bios":              {vm.BIOS, "ovmf"},
		"cpu":               {vm.CPU, "host"},
		"agent":             {vm.AgentEnabled(), true},
		"onboot":            {vm.OnBootEnabled(), true},
		"image.cloud_image": {vm.Image.CloudImage, "local:import/noble-server-cloudimg-amd64.qcow2"},
		"network.ip":        {vm.IP(), "192.168.0.120"},
		"network.cidr":      {vm.Network.CIDR, 24},
		"network.gateway":   {vm.Network.Gateway, "192.168.0.1"},
		"network.bridge vm": {vm.Network.Bridge, "vmbr0"},
		"ip/cidr":           {vm.IPCIDR(), "192.168.0.120/24"},
		"gpu":               {vm.GPUEnabled(), false},
		"vllm":              {vm.VLLMEnabled(), false},
	} {
		if got[0] != got[1] {
			t.Errorf("%s = %v, want %v", what, got[0], got[1])
		}
	}
}

func TestApplyDefaultsForServicesAndGPU(t *testing.T) {
	c := &Catalog{
		Network: NetworkDefaults{Subnet: "192.168.0.0/24", Gateway: "192.168.0.1"},
		VMs: []VM{{ID: 140, GPU: &GPU{Enabled: true}, Services: Services{
			VLLM:   &VLLM{Enabled: true},
			Ollama: &Ollama{Enabled: true},
		}}},
	}
	c.ApplyDefaults()
	vm := c.VMs[0]
	if !vm.GPU.PCIeEnabled() || !vm.GPU.ROMBarEnabled() || vm.GPU.PCIe == nil || vm.GPU.ROMBar == nil {
		t.Errorf("gpu pcie/rombar not defaulted to true: %+v", vm.GPU)
	}
	v, o := vm.Services.VLLM, vm.Services.Ollama
	if v.Port != 8000 || v.GPUMemoryUtilization != 0.60 || !reflect.DeepEqual(v.Bind, []string{"192.168.0.140", "127.0.0.1"}) {
		t.Errorf("vllm defaults: %+v", v)
	}
	if o.Port != 11434 || o.ModelsDir != "/opt/ollama/models" || !reflect.DeepEqual(o.Bind, []string{"192.168.0.140"}) {
		t.Errorf("ollama defaults: %+v", o)
	}
}

func TestApplyDefaultsKeepsWhatIsSetAndIsIdempotent(t *testing.T) {
	c, err := Load("testdata/valid-mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vm := &c.VMs[0]
	if vm.Machine != "pc-q35-9.2+pve1" || vm.BIOS != "seabios" || vm.GPU.ROMBarEnabled() || vm.Network.CIDR != 16 ||
		vm.Network.Bridge != "vmbr1" || vm.Services.VLLM.Port != 8080 || vm.Services.VLLM.GPUMemoryUtilization != 0.9 ||
		!reflect.DeepEqual(vm.Services.VLLM.Bind, []string{"0.0.0.0"}) || vm.Image.CloudImage != "local:import/noble-custom.qcow2" {
		t.Errorf("a set value was overridden: %+v", vm)
	}
	before := cloneVMs(c.VMs)
	c.ApplyDefaults()
	if !reflect.DeepEqual(before, cloneVMs(c.VMs)) {
		t.Error("ApplyDefaults is not idempotent")
	}
	// An ISO keeps the cloud image default away.
	iso, err := Load("testdata/valid-iso.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if iso.VMs[0].Image.CloudImage != "" {
		t.Errorf("cloud_image defaulted next to an iso: %q", iso.VMs[0].Image.CloudImage)
	}
}

// cloneVMs is a deep, comparable snapshot (YAML follows the pointers).
func cloneVMs(vms []VM) string {
	out, err := yaml.Marshal(vms)
	if err != nil {
		panic(err)
	}
	return string(out)
}

func TestAddressForID(t *testing.T) {
	for _, tc := range []struct {
		subnet string
		id     int
		want   string // "" = none
	}{
		{"192.168.0.0/24", 140, "192.168.0.140"},
		{"192.168.0.0/24", 101, "192.168.0.101"},
		{"192.168.0.0/24", 254, "192.168.0.254"},
		{"192.168.0.0/24", 255, ""}, // broadcast
		{"192.168.0.0/24", 1000, ""},
		{"10.20.0.0/16", 1000, "10.20.3.232"},
		{"10.20.0.0/16", 65535, ""},
		{"192.168.0.0/31", 1, ""},
	} {
		got, ok := addressForID(netip.MustParsePrefix(tc.subnet), tc.id)
		if (tc.want == "") == ok || (ok && got.String() != tc.want) {
			t.Errorf("addressForID(%s, %d) = %v, %v; want %q", tc.subnet, tc.id, got, ok, tc.want)
		}
	}
}
