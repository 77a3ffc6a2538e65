package guest

import (
	"strings"
	"testing"

	"github.com/aimachine/aimachine/fakes/nvgpu"
	"github.com/aimachine/aimachine/fakes/pve"
)

// deviceRow is what a real Ubuntu 24.04 guest shows for one passed-through NVIDIA card. The values
// are written out here (not read from fakes/nvgpu) so that the table test checks the device table
// and every simulated program against the sources: pci.ids (pciutils/pciids, noble-era snapshot
// 2024-03-31 eae06dcb), nvidia-smi captures, NVIDIA's compute-capability list and driver support
// notes, as cited in fakes/nvgpu.
type deviceRow struct {
	id    string
	lspci string // `lspci -nn -d 10de:` in the guest (q35, pcie=1)
	smi   string // --query-gpu=name,memory.total,compute_cap,power.limit,pci.device_id (nounits)
	// gpgpu is `ubuntu-drivers list --gpgpu`; install is the driver string for `install --gpgpu`
	gpgpu   []string
	install string
	// model is the `model` line of `ubuntu-drivers devices` ("" = none: noble's hwdb predates the id)
	model string
	// nvcc13 is nvcc 13.0's answer to -arch=native ("" = compiles)
	nvcc13 string
}

func lrm(fl ...string) []string {
	var out []string
	for _, f := range fl {
		out = append(out, "nvidia-driver-"+f+", (kernel modules provided by linux-modules-nvidia-"+f+"-generic)")
	}
	return out
}

var allFlavours = lrm("595-server-open", "595-open", "595-server", "595", "580-server-open", "580-open", "580-server", "580")

var deviceRows = []deviceRow{
	{id: "2d04", lspci: "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation Device [10de:2d04] (rev a1)\n01:00.1 Audio device [0403]: NVIDIA Corporation Device [10de:22eb] (rev a1)\n",
		smi: "NVIDIA GeForce RTX 5060 Ti, 16311, 12.0, 180.00, 0x2D0410DE", gpgpu: allFlavours, install: "595-open"},
	{id: "2d05", lspci: "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation Device [10de:2d05] (rev a1)\n01:00.1 Audio device [0403]: NVIDIA Corporation Device [10de:22eb] (rev a1)\n",
		smi: "NVIDIA GeForce RTX 5060, 8151, 12.0, 145.00, 0x2D0510DE", gpgpu: allFlavours, install: "595-open"},
	{id: "2b85", lspci: "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation Device [10de:2b85] (rev a1)\n01:00.1 Audio device [0403]: NVIDIA Corporation Device [10de:22e8] (rev a1)\n",
		smi: "NVIDIA GeForce RTX 5090, 32607, 12.0, 575.00, 0x2B8510DE", gpgpu: allFlavours, install: "595-server-open"},
	{id: "2684", lspci: "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD102 [GeForce RTX 4090] [10de:2684] (rev a1)\n01:00.1 Audio device [0403]: NVIDIA Corporation AD102 High Definition Audio Controller [10de:22ba] (rev a1)\n",
		smi: "NVIDIA GeForce RTX 4090, 24564, 8.9, 450.00, 0x268410DE", gpgpu: allFlavours, install: "595-open", model: "AD102 [GeForce RTX 4090]"},
	{id: "2803", lspci: "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD106 [GeForce RTX 4060 Ti] [10de:2803] (rev a1)\n01:00.1 Audio device [0403]: NVIDIA Corporation Device [10de:22bd] (rev a1)\n",
		smi: "NVIDIA GeForce RTX 4060 Ti, 8188, 8.9, 160.00, 0x280310DE", gpgpu: allFlavours, install: "580-open", model: "AD106 [GeForce RTX 4060 Ti]"},
	{id: "2204", lspci: "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation GA102 [GeForce RTX 3090] [10de:2204] (rev a1)\n01:00.1 Audio device [0403]: NVIDIA Corporation GA102 High Definition Audio Controller [10de:1aef] (rev a1)\n",
		smi: "NVIDIA GeForce RTX 3090, 24576, 8.6, 350.00, 0x220410DE", gpgpu: allFlavours, install: "595", model: "GA102 [GeForce RTX 3090]"},
	{id: "27b8", lspci: "01:00.0 3D controller [0302]: NVIDIA Corporation AD104GL [L4] [10de:27b8] (rev a1)\n",
		smi: "NVIDIA L4, 23034, 8.9, 72.00, 0x27B810DE", gpgpu: allFlavours, install: "595-server-open", model: "AD104GL [L4]"},
	{id: "20b5", lspci: "01:00.0 3D controller [0302]: NVIDIA Corporation GA100 [A100 PCIe 80GB] [10de:20b5] (rev a1)\n",
		smi: "NVIDIA A100 80GB PCIe, 81920, 8.0, 300.00, 0x20B510DE", gpgpu: allFlavours, install: "580-server", model: "GA100 [A100 PCIe 80GB]"},
	{id: "2330", lspci: "01:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)\n",
		smi: "NVIDIA H100 80GB HBM3, 81559, 9.0, 700.00, 0x233010DE", gpgpu: allFlavours, install: "595-server-open", model: "GH100 [H100 SXM5 80GB]"},
	{id: "1eb8", lspci: "01:00.0 3D controller [0302]: NVIDIA Corporation TU104GL [Tesla T4] [10de:1eb8] (rev a1)\n",
		smi: "Tesla T4, 15360, 7.5, 70.00, 0x1EB810DE", gpgpu: allFlavours, install: "580-server-open", model: "TU104GL [Tesla T4]"},
	// Pascal: no GSP, so no -open flavour; the 580 branch is its last
	{id: "1b06", lspci: "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation GP102 [GeForce GTX 1080 Ti] [10de:1b06] (rev a1)\n01:00.1 Audio device [0403]: NVIDIA Corporation GP102 HDMI Audio Controller [10de:10ef] (rev a1)\n",
		smi: "NVIDIA GeForce GTX 1080 Ti, 11264, 6.1, 250.00, 0x1B0610DE", gpgpu: lrm("580-server", "580"), install: "580", model: "GP102 [GeForce GTX 1080 Ti]",
		nvcc13: "nvcc fatal   : Unsupported gpu architecture 'compute_61'\n"},
}

func withCard(t *testing.T, id string) func(*pve.BootInfo) {
	return func(b *pve.BootInfo) {
		devs, err := pve.NVIDIAGPU("0000:01:00", 14, id, "", "")
		if err != nil {
			t.Fatal(err)
		}
		b.GPUs = devs
	}
}

// TestDeviceTable boots a guest with each card of the table and checks what lspci, ubuntu-drivers,
// nvidia-smi and a CUDA program show.
func TestDeviceTable(t *testing.T) {
	if len(deviceRows) != len(nvgpu.All()) {
		t.Fatalf("%d rows for %d devices in fakes/nvgpu", len(deviceRows), len(nvgpu.All()))
	}
	for _, r := range deviceRows {
		t.Run(r.id, func(t *testing.T) {
			card, ok := nvgpu.Lookup(r.id)
			if !ok {
				t.Fatalf("%s not in the table", r.id)
			}
			vm := newVM(t, 0, withCard(t, r.id)).ready()
			c := vm.client()
			if got := vm.must(c, "lspci -nn -d 10de:"); got != r.lspci {
				t.Errorf("lspci -nn:\n got  %q\n want %q", got, r.lspci)
			}
			vm.must(c, "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ubuntu-drivers-common")
			if got := vm.must(c, "ubuntu-drivers list --gpgpu 2>/dev/null"); got != strings.Join(r.gpgpu, "\n")+"\n" {
				t.Errorf("ubuntu-drivers list --gpgpu:\n%s", got)
			}
			dev := vm.must(c, "ubuntu-drivers devices 2>/dev/null")
			if hasModel := strings.Contains(dev, "\nmodel    : "); hasModel != (r.model != "") || r.model != "" && !strings.Contains(dev, "\nmodel    : "+r.model+"\n") {
				t.Errorf("ubuntu-drivers devices (model %q):\n%s", r.model, dev)
			}
			branch, _, _ := strings.Cut(r.install, "-")
			utils := "nvidia-utils-" + branch
			if strings.Contains(r.install, "server") {
				utils += "-server"
			}
			vm.must(c, "sudo ubuntu-drivers install --gpgpu nvidia:"+r.install+" && sudo apt-get install -y "+utils+" && sudo modprobe nvidia && sudo modprobe nvidia_uvm")
			if got := vm.must(c, "nvidia-smi --query-gpu=name,memory.total,compute_cap,power.limit,pci.device_id --format=csv,noheader,nounits"); got != r.smi+"\n" {
				t.Errorf("nvidia-smi query:\n got  %q\n want %q", got, r.smi)
			}
			if table := vm.must(c, "nvidia-smi"); !strings.Contains(table, card.Name) || !strings.Contains(table, strings.Split(r.smi, ", ")[1]+"MiB") {
				t.Errorf("nvidia-smi table:\n%s", table)
			}
			// a deviceQuery-like CUDA program built for the card (-arch=native)
			vm.must(c, "sudo apt-get install -y build-essential && cd /tmp && wget -q https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/cuda-keyring_1.1-1_all.deb && sudo dpkg -i cuda-keyring_1.1-1_all.deb && sudo apt-get update && sudo apt-get -y install cuda-toolkit-12-8 cuda-toolkit-13-0")
			vm.must(c, `cat > /tmp/q.cu <<'EOF'
#include <cstdio>
int main() { printf("Device 0: %s\n", "gpu"); return 0; }
EOF`)
			vm.must(c, "/usr/local/cuda-12.8/bin/nvcc -arch=native -o /tmp/q /tmp/q.cu")
			if got := vm.must(c, "/tmp/q"); got != "Device 0: "+card.Name+"\n" {
				t.Errorf("cuda program: %q", got)
			}
			r13 := vm.sh(c, "/usr/local/cuda-13.0/bin/nvcc -arch=native -o /tmp/q13 /tmp/q.cu")
			if r.nvcc13 == "" && r13.code != 0 || r.nvcc13 != "" && (r13.code != 1 || r13.stderr != r.nvcc13) {
				t.Errorf("nvcc 13.0 -arch=native: %d %q", r13.code, r13.stderr)
			}
		})
	}
}

// TestPascalOpenModule: forcing the open module onto a GPU without GSP fails the way the real
// open nvidia.ko does ("not supported by open nvidia.ko because it does not include the required
// GPU System Processor (GSP)"), and ubuntu-drivers has no -open build to offer for it.
func TestPascalOpenModule(t *testing.T) {
	vm := newVM(t, 0, withCard(t, "1b06")).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ubuntu-drivers-common")
	if got := vm.must(c, "sudo ubuntu-drivers install --gpgpu nvidia:580-open 2>/dev/null"); !strings.Contains(got, "No drivers found for installation.") {
		t.Errorf("install 580-open: %q", got)
	}
	vm.must(c, "sudo apt-get install -y nvidia-headless-no-dkms-580-open linux-modules-nvidia-580-open-generic nvidia-utils-580")
	r := vm.sh(c, "sudo modprobe nvidia")
	if r.code == 0 || !strings.Contains(r.stderr+r.stdout, "could not insert 'nvidia': No such device") {
		t.Errorf("modprobe: %d %q %q", r.code, r.stdout, r.stderr)
	}
	d := vm.must(c, "sudo dmesg")
	for _, want := range []string{"NVRM: The NVIDIA GPU 0000:01:00.0 (PCI ID: 10de:1b06)", "NVRM: nvidia.ko because it does not include the required GPU", "NVRM: System Processor (GSP)."} {
		if !strings.Contains(d, want) {
			t.Errorf("dmesg lacks %q:\n%s", want, d)
		}
	}
	if r := vm.sh(c, "nvidia-smi"); r.code != 9 {
		t.Errorf("nvidia-smi: %d %q", r.code, r.stdout)
	}
}

// TestTorchBuildsPerArchitecture: a torch wheel runs only where its CUDA version has kernels:
// cu124 wheels fail on Blackwell (guest.md §1: `no kernel image is available`), CUDA 13 wheels on
// Pascal (CUDA 13.0 removed Maxwell/Pascal/Volta).
func TestTorchBuildsPerArchitecture(t *testing.T) {
	for _, c := range []struct {
		cu, id string
		ok     bool
	}{
		{"cu124", "2d04", false}, {"cu124", "2684", true}, {"cu124", "1b06", true},
		{"cu128", "2d04", true}, {"cu128", "1b06", true}, {"cu130", "1b06", false}, {"cu130", "1eb8", true},
	} {
		d, _ := nvgpu.Lookup(c.id)
		if got := torchSupports(c.cu, d.ComputeCap); got != c.ok {
			t.Errorf("torch %s on %s (%s): %v, want %v", c.cu, d.Name, d.ComputeCap, got, c.ok)
		}
	}
}
