package catalog

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// schemaVerdict records what the JSON Schema says about an invalid file.
type schemaVerdict int

const (
	// schemaRejects: the rule is expressible in a schema, and schema.json expresses it.
	schemaRejects schemaVerdict = iota
	// schemaAccepts: the rule crosses fields, VMs or files (duplicates, capacity, key files,
	// the id strategy, q35 with pcie under defaults), which only Validate can check.
	schemaAccepts
	// schemaNA: the file does not decode to a value the schema could judge (syntax error,
	// duplicate key).
	schemaNA
)

// invalidCases is every testdata/invalid-*.yaml with the error Validate (or Parse) must
// report: the field path, where it is in the file, a piece of the message, and how many
// errors the file gives in all.
var invalidCases = []struct {
	file   string
	path   string
	pos    string // LINE:COL, or LINE for YAML syntax errors (yaml.v3 gives no column)
	msg    string
	count  int
	schema schemaVerdict
}{
	{"invalid-syntax.yaml", "", "16", "YAML syntax error: mapping values are not allowed", 1, schemaNA},
	{"invalid-unknown-field.yaml", "vms[0].gpu.pci_adress", "22:7", `unknown field "pci_adress" (did you mean "pci_address"?)`, 1, schemaRejects},
	{"invalid-duplicate-key.yaml", "vms[0].cores", "16:5", `duplicate key "cores" (first set at line 15)`, 1, schemaNA},
	{"invalid-type.yaml", "vms[0].cores", "15:12", `got the string "lots", want an integer`, 1, schemaRejects},
	{"invalid-version.yaml", "version", "2:10", "got 2, want 1", 1, schemaRejects},
	{"invalid-duplicate-id.yaml", "vms[1].id", "31:9", "id 140 is already used by vms[0] (vm-llm-aimachine)", 1, schemaAccepts},
	{"invalid-duplicate-name.yaml", "vms[1].name", "32:11", `name "vm-llm-aimachine" is already used by vms[0] (id 140)`, 1, schemaAccepts},
	{"invalid-duplicate-ip.yaml", "vms[1].network.ip", "36:19", "address 192.168.0.140 is already used by vms[0]", 1, schemaAccepts},
	{"invalid-id-range.yaml", "vms[0].id", "12:9", "got 99, want a Proxmox VM id in 100–999999999", 1, schemaRejects},
	{"invalid-ip-strategy.yaml", "vms[0].network.ip", "15:19", `got 192.168.0.50, but network.strategy "id" gives VM 140 the address 192.168.0.140`, 1, schemaAccepts},
	{"invalid-ip-outside-subnet.yaml", "vms[0].network.ip", "16:19", "10.0.0.140 is outside network.subnet 192.168.0.0/24", 1, schemaAccepts},
	{"invalid-pci-address.yaml", "vms[0].gpu.pci_address", "22:20", `got "0000:0A:00", want a host PCI address`, 1, schemaRejects},
	{"invalid-auto-no-mapping.yaml", "vms[0].node", "14:11", "auto places the VM on a node where its GPU's cluster mapping has a free device: it needs gpu.enabled with gpu.mapping", 1, schemaRejects},
	{"invalid-gpu-both.yaml", "vms[0].gpu", "20:5", `sets both pci_address "0000:01:00" and mapping "gpu0"`, 1, schemaRejects},
	{"invalid-gpu-neither.yaml", "vms[0].gpu", "20:5", "sets neither pci_address", 1, schemaRejects},
	{"invalid-gpu-no-enabled.yaml", "vms[0].gpu.enabled", "20:5", "is required: write enabled: true", 3, schemaRejects},
	{"invalid-pcie-i440fx.yaml", "vms[0].gpu.pcie", "21:5", `pcie needs a q35 machine, but machine is "pc"`, 1, schemaAccepts},
	{"invalid-machine.yaml", "vms[0].machine", "20:14", `got "i440fx", want q35, pc`, 1, schemaRejects},
	{"invalid-bios.yaml", "vms[0].bios", "20:11", `got "uefi", want ovmf or seabios`, 1, schemaRejects},
	{"invalid-cores-zero.yaml", "vms[0].cores", "15:12", "got 0, want at least 1 core", 1, schemaRejects},
	{"invalid-memory-negative.yaml", "vms[0].memory_mb", "16:16", "got -1024, want the RAM in MB", 1, schemaRejects},
	{"invalid-disk-zero.yaml", "vms[0].disk.size_gb", "17:21", "got 0, want the boot disk size in GB", 1, schemaRejects},
	{"invalid-disk-too-small.yaml", "vms[0].disk.size_gb", "17:21", "got 2, want at least 4", 1, schemaAccepts},
	{"invalid-capacity-memory.yaml", "vms[0].memory_mb", "16:16", `got 262144, more than node "pve" declares (131072 MB)`, 1, schemaAccepts},
	{"invalid-capacity-cores.yaml", "vms[0].cores", "15:12", `got 96, more than node "pve" declares (64 cores)`, 1, schemaAccepts},
	{"invalid-ssh-none.yaml", "vms[0].cloud_init.ssh_keys", "26:7", "no SSH keys", 1, schemaRejects},
	{"invalid-ssh-file-missing.yaml", "vms[0].cloud_init.ssh_keys[0].file", "27:17", "read public key file: open " + filepath.Join("testdata", "no-such-key.pub"), 1, schemaAccepts},
	{"invalid-ssh-key-garbage.yaml", "vms[0].cloud_init.ssh_keys[0].key", "27:16", "does not parse as an authorized_keys line", 1, schemaAccepts},
	{"invalid-services-no-gpu.yaml", "vms[0].services.vllm.enabled", "29:23", "vLLM needs a GPU", 2, schemaRejects},
	{"invalid-unknown-node.yaml", "vms[0].node", "14:11", `unknown node "pve2" (known nodes: pve)`, 1, schemaAccepts},
	{"invalid-unknown-storage.yaml", "vms[0].disk.storage", "17:35", `disk storage "local-zfs" is not on node "pve" (its storages: local, local-lvm)`, 1, schemaAccepts},
	{"invalid-name.yaml", "vms[0].name", "13:11", `got "VM_LLM", want a DNS label`, 1, schemaRejects},
	{"invalid-image-sha256.yaml", "vms[0].image.sha256", "21:15", `got "5c3ddb00f60bc455", want the image's SHA-256`, 1, schemaRejects},
	{"invalid-pci-id.yaml", "vms[0].gpu.expect.pci_id", "23:59", `got "10DE:2D04", want vendor:device in lower-case hex`, 1, schemaRejects},
	{"invalid-gpu-memory-utilization.yaml", "vms[0].services.vllm.gpu_memory_utilization", "29:105", "got 1.5, want a fraction of the VRAM in (0, 1]", 1, schemaRejects},
	{"invalid-port.yaml", "vms[0].services.ollama.port", "30:37", "got 70000, want a TCP port in 1–65535", 1, schemaRejects},
	{"invalid-ollama-model.yaml", "vms[0].services.ollama.models[0]", "30:40", `got "qwen 2.5", want an Ollama model name`, 1, schemaRejects},
	{"invalid-hf-token-env.yaml", "vms[0].services.vllm.hf_token_env", "29:95", `got "hf-token", want an environment variable name`, 1, schemaRejects},
	{"invalid-vllm-no-version.yaml", "vms[0].services.vllm.version", "29:7", "is required with vLLM enabled: pin the pip version", 1, schemaRejects},
	{"invalid-image-img.yaml", "vms[0].image.cloud_image", "18:20", `got "local:import/x.img": an Ubuntu .img cloud image is a qcow2 disk, and Proxmox's import content accepts only .ova .ovf .qcow2 .raw .vmdk (pve-storage parse_volname, $IMPORT_EXT_RE_1); store it as x.qcow2 under import/`, 1, schemaRejects},
	{"invalid-merge-bomb.yaml", "", "3:1", "the catalog expands to more than 100000 YAML values through its aliases and merge keys", 1, schemaNA},
	{"invalid-same-port.yaml", "vms[0].services.ollama.port", "30:37", "port 8000 is also services.vllm.port", 1, schemaAccepts},
}

// loadAndValidate is what `aimachine catalog validate` does: decode errors, else value errors.
func loadAndValidate(path string) (*Catalog, error) {
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	return c, c.Validate()
}

func TestInvalidCatalogsReportTheirErrorAtTheField(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.file, func(t *testing.T) {
			file := filepath.Join("testdata", tc.file)
			_, err := loadAndValidate(file)
			if err == nil {
				t.Fatal("valid, want an error")
			}
			var verrs ValidationErrors
			if !errors.As(err, &verrs) {
				t.Fatalf("error %T %q is not ValidationErrors", err, err)
			}
			if len(verrs) != tc.count {
				t.Errorf("%d errors, want %d:\n%v", len(verrs), tc.count, err)
			}
			prefix := file + ":" + tc.pos + ": "
			if tc.path != "" {
				prefix += tc.path + ": "
			}
			var found bool
			for _, e := range verrs {
				line := e.Error()
				if strings.HasPrefix(line, prefix) && strings.Contains(line, tc.msg) {
					found = true
				}
				if strings.Contains(line, "\n") {
					t.Errorf("error spans lines: %q", line)
				}
			}
			if !found {
				t.Errorf("no error %q…%q among:\n%v", prefix, tc.msg, err)
			}
			// The whole error prints one line per problem.
			if got := strings.Count(err.Error(), "\n") + 1; got != len(verrs) {
				t.Errorf("Error() has %d lines for %d errors", got, len(verrs))
			}
		})
	}
}

func TestEveryInvalidFileIsInTheTable(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, tc := range invalidCases {
		listed = append(listed, tc.file)
	}
	for _, f := range files {
		if !slices.Contains(listed, filepath.Base(f)) {
			t.Errorf("%s has no row in invalidCases", f)
		}
	}
	if len(files) != len(invalidCases) {
		t.Errorf("%d invalid files, %d table rows", len(files), len(invalidCases))
	}
	// Distinct error kinds: no two rows expect the same message.
	seen := map[string]string{}
	for _, tc := range invalidCases {
		if other, dup := seen[tc.msg]; dup {
			t.Errorf("%s and %s expect the same message %q", tc.file, other, tc.msg)
		}
		seen[tc.msg] = tc.file
	}
}

// validFiles are the catalogs that must pass, with the warnings each must give
// (substrings, in order).
var validFiles = map[string][]string{
	"../infrastructure-catalog.yml": { // the sample's replace-me key, once per VM
		"../infrastructure-catalog.yml:59:11: vms[0].cloud_init.ssh_keys[0]: warning: the sample catalog's placeholder key (aimachine-sample-replace-me)",
		"../infrastructure-catalog.yml:95:11: vms[1].cloud_init.ssh_keys[0]: warning: the sample catalog's placeholder key",
		"../infrastructure-catalog.yml:111:11: vms[2].cloud_init.ssh_keys[0]: warning: the sample catalog's placeholder key",
	},
	"testdata/valid-minimal.yaml": {"testdata/valid-minimal.yaml:10:5: vms[0].image: warning: agent is on but the noble cloud image has no qemu-guest-agent"},
	"testdata/valid-mapping.yaml": nil,
	"testdata/valid-fleet.yaml":   nil, // node: auto VMs share a mapping without the shared-GPU warning
	"testdata/valid-anchors.yaml": nil,
	"testdata/valid-iso.yaml": {
		"testdata/valid-iso.yaml:18:12: vms[0].image.iso: warning: \"local:iso/ubuntu-24.04.3-live-server-amd64.iso\" boots the Subiquity installer, which cannot install unattended",
		"testdata/valid-iso.yaml:19:10: vms[0].cpu: warning: \"kvm64\" hides AVX/AVX2",
	},
}

func TestValidCatalogsPassWithTheirWarnings(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "valid-*.yaml"))
	for _, f := range files {
		if _, ok := validFiles[filepath.ToSlash(f)]; !ok {
			t.Errorf("%s is not listed in validFiles", f)
		}
	}
	for file, wantWarnings := range validFiles {
		t.Run(filepath.Base(file), func(t *testing.T) {
			c, err := loadAndValidate(file)
			if err != nil {
				t.Fatalf("want valid, got:\n%v", err)
			}
			warns := c.Warnings()
			if len(warns) != len(wantWarnings) {
				t.Fatalf("%d warnings, want %d:\n%s", len(warns), len(wantWarnings), strings.Join(warns, "\n"))
			}
			for i, w := range wantWarnings {
				if !strings.HasPrefix(warns[i], w) {
					t.Errorf("warning %d = %q, want prefix %q", i, warns[i], w)
				}
			}
		})
	}
}

func TestValidateCollectsEveryError(t *testing.T) {
	c, err := Parse([]byte(`
version: 3
network: {subnet: 192.168.0.0/24, gateway: 192.168.0.1}
nodes: [{name: pve, storages: [local-lvm]}]
vms:
  - id: 7
    name: Bad_Name
    node: nowhere
    cores: 0
    memory_mb: 0
    disk: {size_gb: 0, storage: local-lvm}
    cloud_init: {user: ubuntu, ssh_keys: []}
`), "many.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	var verrs ValidationErrors
	if !errors.As(err, &verrs) {
		t.Fatalf("got %v, want ValidationErrors", err)
	}
	var paths []string
	for _, e := range verrs {
		paths = append(paths, e.Path)
	}
	want := []string{"version", "vms[0].id", "vms[0].name", "vms[0].node", "vms[0].cores", "vms[0].memory_mb", "vms[0].disk.size_gb", "vms[0].cloud_init.ssh_keys"}
	for _, w := range want {
		if !slices.Contains(paths, w) {
			t.Errorf("no error at %s; errors:\n%v", w, err)
		}
	}
	// errors.As reaches a single FieldError too.
	var fe *FieldError
	if !errors.As(err, &fe) || fe.File != "many.yaml" || fe.Pos.Line == 0 {
		t.Errorf("errors.As(*FieldError) = %+v", fe)
	}
	// And they come in file order.
	for i := 1; i < len(verrs); i++ {
		if verrs[i].Pos.Line < verrs[i-1].Pos.Line {
			t.Errorf("errors out of file order:\n%v", err)
		}
	}
}

func TestValidateRules(t *testing.T) {
	// Each case edits a valid catalog (the sample's VM 140 alone) and expects one error.
	cases := []struct {
		name string
		edit func(c *Catalog)
		path string
		msg  string
	}{
		{"id above the range", func(c *Catalog) { c.VMs[0].ID = 1_000_000_000 }, "vms[0].id", "want a Proxmox VM id in 100–999999999"},
		{"id without an address in the subnet", func(c *Catalog) { c.VMs[0].ID = 300; setIP(c, "") }, "vms[0].id", `id 300 has no address in 192.168.0.0/24 under network.strategy "id"`},
		{"explicit strategy without ip", func(c *Catalog) { c.Network.Strategy = StrategyExplicit; setIP(c, "") }, "vms[0].network.ip", `is required: network.strategy is "explicit"`},
		{"unknown strategy", func(c *Catalog) { c.Network.Strategy = "dhcp" }, "network.strategy", `got "dhcp", want "id"`},
		{"subnet with host bits", func(c *Catalog) { c.Network.Subnet = "192.168.0.7/24" }, "network.subnet", "want the network address: 192.168.0.0/24"},
		{"gateway outside the subnet", func(c *Catalog) { c.Network.Gateway = "10.0.0.1"; c.VMs[0].Network.Gateway = "192.168.0.1" }, "network.gateway", "10.0.0.1 is not a host address of network.subnet 192.168.0.0/24"},
		{"ip is the broadcast address", func(c *Catalog) { c.Network.Strategy = StrategyExplicit; setIP(c, "192.168.0.255") }, "vms[0].network.ip", "192.168.0.255 is outside network.subnet"},
		{"mapping with a bad name", func(c *Catalog) { c.VMs[0].GPU.PCIAddress = ""; c.VMs[0].GPU.Mapping = "0gpu" }, "vms[0].gpu.mapping", `got "0gpu", want a cluster PCI mapping id`},
		{"gpu without expect.pci_id", func(c *Catalog) { c.VMs[0].GPU.Expect.PCIID = "" }, "vms[0].gpu.expect.pci_id", "is required with a GPU"},
		{"ollama without a GPU", func(c *Catalog) { c.VMs[0].GPU.Enabled = false; c.VMs[0].Services.VLLM.Enabled = false }, "vms[0].services.ollama.enabled", "Ollama is installed for the GPU"},
		{"vllm without a model", func(c *Catalog) { c.VMs[0].Services.VLLM.Model = "" }, "vms[0].services.vllm.model", "is required with vLLM enabled"},
		{"gpu memory utilization zero", func(c *Catalog) { c.VMs[0].Services.VLLM.GPUMemoryUtilization = -0.1 }, "vms[0].services.vllm.gpu_memory_utilization", "got -0.1, want a fraction of the VRAM in (0, 1]"},
		{"gpu memory utilization NaN", func(c *Catalog) { c.VMs[0].Services.VLLM.GPUMemoryUtilization = math.NaN() }, "vms[0].services.vllm.gpu_memory_utilization", "got NaN, want a fraction of the VRAM in (0, 1]"},
		{"gpu memory utilization infinite", func(c *Catalog) { c.VMs[0].Services.VLLM.GPUMemoryUtilization = math.Inf(1) }, "vms[0].services.vllm.gpu_memory_utilization", "got +Inf, want a fraction"},
		{"memory beyond Proxmox's limit", func(c *Catalog) { c.Nodes[0].MemoryMB = 0; c.VMs[0].MemoryMB = math.MaxInt64 }, "vms[0].memory_mb", "got 9223372036854775807, want at most 4194304 (4 TiB"},
		{"cores beyond any host", func(c *Catalog) { c.Nodes[0].Cores = 0; c.VMs[0].Cores = 1 << 40 }, "vms[0].cores", "want at most 8192 cores"},
		{"disk beyond any storage", func(c *Catalog) { c.VMs[0].Disk.SizeGB = math.MaxInt64 }, "vms[0].disk.size_gb", "want at most 1048576 GB (1 PiB)"},
		{"context length beyond any model", func(c *Catalog) { c.VMs[0].Services.VLLM.MaxModelLen = 1 << 40 }, "vms[0].services.vllm.max_model_len", "at most 16777216"},
		{"node memory beyond the limit", func(c *Catalog) { c.Nodes[0].MemoryMB = math.MaxInt32 * 4 }, "nodes[0].memory_mb", "at most 4194304"},
		{"bind to a foreign address", func(c *Catalog) { c.VMs[0].Services.VLLM.Bind = []string{"192.168.0.9"} }, "vms[0].services.vllm.bind[0]", "192.168.0.9 is not an address of the VM (192.168.0.140)"},
		{"models_dir relative", func(c *Catalog) { c.VMs[0].Services.Ollama.ModelsDir = "models" }, "vms[0].services.ollama.models_dir", `got "models", want an absolute path`},
		{"api key env with a dash", func(c *Catalog) { c.VMs[0].Services.VLLM.APIKeyEnv = "MY-KEY" }, "vms[0].services.vllm.api_key_env", `got "MY-KEY", want an environment variable name`},
		{"both cloud image and iso", func(c *Catalog) { c.VMs[0].Image.ISO = "local:iso/x.iso" }, "vms[0].image", "sets both cloud_image and iso"},
		{"cloud image on a storage the node lacks", func(c *Catalog) {
			c.VMs[0].Image.CloudImage = "nas:import/noble-server-cloudimg-amd64.qcow2"
		}, "vms[0].image.cloud_image", `image storage "nas" is not on node "pve"`},
		{"cloud image in iso content", func(c *Catalog) { c.VMs[0].Image.CloudImage = "local:iso/noble.img" }, "vms[0].image.cloud_image", `qemu-server refuses type 'iso'`},
		{"cloud image as an appliance", func(c *Catalog) { c.VMs[0].Image.CloudImage = "local:import/vm.ova" }, "vms[0].image.cloud_image", `an .ova is an appliance, not a disk`},
		{"cloud image with another extension", func(c *Catalog) { c.VMs[0].Image.CloudImage = "local:import/vm.vhdx" }, "vms[0].image.cloud_image", `store the image as NAME.qcow2 (or .raw, .vmdk) under import/, e.g. local:import/vm.qcow2`},
		{"cloud image name with a space", func(c *Catalog) { c.VMs[0].Image.CloudImage = "local:import/my vm.qcow2" }, "vms[0].image.cloud_image", `the file name may hold only letters`},
		{"cloud image that is no volume id", func(c *Catalog) { c.VMs[0].Image.CloudImage = "/var/lib/vz/noble.img" }, "vms[0].image.cloud_image", `got "/var/lib/vz/noble.img", want a volume id`},
		{"key and file both", func(c *Catalog) { c.VMs[0].CloudInit.SSHKeys[0].File = "x.pub" }, "vms[0].cloud_init.ssh_keys[0]", "set key or file, not both"},
		{"user name", func(c *Catalog) { c.VMs[0].CloudInit.User = "Ubuntu" }, "vms[0].cloud_init.user", `got "Ubuntu", want a Linux user name`},
		{"tag with a space", func(c *Catalog) { c.VMs[0].Tags = []string{"big gpu"} }, "vms[0].tags[0]", `got "big gpu", want a Proxmox tag`},
		{"jump host without a port", func(c *Catalog) { c.JumpHost = &JumpHost{Address: "pve", User: "root"} }, "jump_host.address", `got "pve", want host:port`},
		{"node listed twice", func(c *Catalog) { c.Nodes = append(c.Nodes, c.Nodes[0]) }, "nodes[1].name", `node "pve" is already declared at nodes[0]`},
		{"storage listed twice", func(c *Catalog) { c.Nodes[0].Storages = append(c.Nodes[0].Storages, "local") }, "nodes[0].storages[2]", `storage "local" is listed twice`},
		{"no VMs", func(c *Catalog) { c.VMs = nil }, "vms", "no VMs"},
		{"cidr out of range", func(c *Catalog) { c.VMs[0].Network.CIDR = 33 }, "vms[0].network.cidr", "got 33, want a prefix length in 1–32"},
		{"subnet too small", func(c *Catalog) { c.Network.Subnet = "192.168.0.0/31" }, "network.subnet", "want a prefix of /30 or shorter"},
		{"subnet not IPv4", func(c *Catalog) { c.Network.Subnet = "fd00::/64" }, "network.subnet", `got "fd00::/64", want an IPv4 prefix`},
		{"nameserver not an address", func(c *Catalog) { c.Network.Nameservers = []string{"dns.example"} }, "network.nameservers[0]", `got "dns.example", want an IPv4 address`},
		{"bridge with a space", func(c *Catalog) { c.VMs[0].Network.Bridge = "vmbr 0" }, "vms[0].network.bridge", `got "vmbr 0", want a Linux bridge name`},
		{"gateway is the VM itself", func(c *Catalog) { c.VMs[0].Network.Gateway = "192.168.0.140" }, "vms[0].network.gateway", "192.168.0.140 is the VM's own address"},
		{"node cores negative", func(c *Catalog) { c.Nodes[0].Cores = -1 }, "nodes[0].cores", "got -1, want the node's core count"},
		{"node without storages", func(c *Catalog) { c.Nodes = append(c.Nodes, Node{Name: "pve2"}) }, "nodes[1].storages", "no storages"},
		{"jump host without a user", func(c *Catalog) { c.VMs[0].JumpHost = &JumpHost{Address: "pve:22"} }, "vms[0].jump_host.user", "is required: the SSH user"},
		{"jump host port out of range", func(c *Catalog) { c.JumpHost = &JumpHost{Address: "pve:0", User: "root"} }, "jump_host.address", `got "pve:0", want a port in 1–65535`},
		{"vendor_data not a snippet", func(c *Catalog) { c.VMs[0].Image.VendorData = "local:iso/vendor.yaml" }, "vms[0].image.vendor_data", `got "local:iso/vendor.yaml", want a snippet volume id`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := sampleVM140(t)
			tc.edit(c)
			err := c.Validate()
			var verrs ValidationErrors
			if !errors.As(err, &verrs) {
				t.Fatalf("got %v, want ValidationErrors", err)
			}
			if len(verrs) != 1 || verrs[0].Path != tc.path || !strings.Contains(verrs[0].Msg, tc.msg) {
				t.Errorf("got:\n%v\nwant one error at %s containing %q", err, tc.path, tc.msg)
			}
		})
	}
}

// setIP changes VM 0's address and the services' listen addresses with it.
func setIP(c *Catalog, ip string) {
	vm := &c.VMs[0]
	vm.Network.IP = ip
	vm.Services.VLLM.Bind, vm.Services.Ollama.Bind = nil, nil
}

// sampleVM140 is the sample catalog cut down to VM 140, parsed and valid.
func sampleVM140(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load("../infrastructure-catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	vm, err := c.VM("vm-llm-aimachine")
	if err != nil {
		t.Fatal(err)
	}
	c.VMs = []VM{*vm}
	if err := c.Validate(); err != nil {
		t.Fatalf("sample VM 140 alone is invalid: %v", err)
	}
	return c
}

func TestWarnings(t *testing.T) {
	c := sampleVM140(t)
	c.VMs[0].Services.VLLM.GPUMemoryUtilization = 0.9
	c.VMs = append(c.VMs, c.VMs[0])
	c.VMs[1].ID, c.VMs[1].Name, c.VMs[1].Network.IP = 141, "vm-llm-b", "192.168.0.141"
	c.VMs[1].Services.VLLM.Bind = nil
	c.VMs[1].Services.Ollama.Bind = nil
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{
		"vms[0].services.vllm.gpu_memory_utilization: warning: 0.90 leaves Ollama little VRAM",
		`vms[1].gpu: warning: 0000:01:00 on node "pve" is also passed to vms[0] (vm-llm-aimachine) and both start on boot`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
}

func TestFieldErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    FieldError
		want string
	}{
		{FieldError{File: "c.yml", Pos: Position{3, 7}, Path: "vms[0].id", Msg: "bad"}, "c.yml:3:7: vms[0].id: bad"},
		{FieldError{File: "c.yml", Pos: Position{Line: 3}, Msg: "YAML syntax error: x"}, "c.yml:3: YAML syntax error: x"},
		{FieldError{File: "c.yml", Path: "vms", Msg: "no VMs"}, "c.yml: vms: no VMs"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	if got := fmt.Sprint(ValidationErrors{{File: "a", Msg: "x"}, {File: "a", Msg: "y"}}); got != "a: x\na: y" {
		t.Errorf("ValidationErrors prints %q", got)
	}
}
