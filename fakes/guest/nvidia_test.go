package guest

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/aimachine/aimachine/fakes/pve"
)

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDriverInstallWalk follows guest.md §11 steps 1-6 on a fresh guest.
func TestDriverInstallWalk(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	hostKey := vm.g.HostKeys()[0].Marshal()

	if _, err := vm.f.InjectFault(Fault{Kind: FaultDpkgLock, Count: 1}); err != nil {
		t.Fatal(err)
	}
	vm.must(c, "cloud-init status --wait")
	vm.must(c, "sudo apt-get update")
	r := vm.sh(c, "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ubuntu-drivers-common")
	if r.code != 100 || !strings.Contains(r.stderr, "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1187 (unattended-upgr)") {
		t.Fatalf("apt with the lock held: code %d stderr %q", r.code, r.stderr)
	}
	vm.must(c, "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ubuntu-drivers-common")

	if got := vm.must(c, "lspci -nn | grep -i nvidia"); got != golden(t, "lspci-nn-nvidia.txt") {
		t.Errorf("lspci -nn:\n%s\nwant:\n%s", got, golden(t, "lspci-nn-nvidia.txt"))
	}
	list := vm.must(c, "ubuntu-drivers list --gpgpu")
	for _, want := range []string{
		"nvidia-driver-595-open, (kernel modules provided by linux-modules-nvidia-595-open-generic)\n",
		"nvidia-driver-580-server-open, (kernel modules provided by linux-modules-nvidia-580-server-open-generic)\n",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("ubuntu-drivers list --gpgpu lacks %q:\n%s", want, list)
		}
	}
	if r := vm.sh(c, "nvidia-smi"); r.code != 127 {
		t.Fatalf("nvidia-smi before utils: code %d", r.code)
	}
	if r := vm.sh(c, "ubuntu-drivers install --gpgpu nvidia:595-open"); r.code != 1 || !strings.Contains(r.stderr, "must be run as root") {
		t.Errorf("non-root install: %d %q", r.code, r.stderr)
	}
	r = vm.sh(c, "sudo ubuntu-drivers install --gpgpu nvidia:595-open")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "nvidia-headless-no-dkms-595-open\nlinux-modules-nvidia-595-open-generic\n") {
		t.Fatalf("install --gpgpu: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	dq := vm.must(c, `dpkg-query -W --showformat='${Package}\t${Status}\t${Version}\n' 'nvidia-*' 'linux-modules-nvidia-*'`)
	for _, want := range []string{"nvidia-headless-no-dkms-595-open\tinstall ok installed\t595.84-0ubuntu0.24.04.1", "linux-modules-nvidia-595-open-6.8.0-88-generic\tinstall ok installed"} {
		if !strings.Contains(dq, want) {
			t.Errorf("dpkg-query lacks %q:\n%s", want, dq)
		}
	}
	if r := vm.sh(c, "nvidia-smi"); r.code != 127 {
		t.Fatalf("--gpgpu must not bring nvidia-smi: code %d", r.code)
	}
	vm.must(c, "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y nvidia-utils-595")
	r = vm.sh(c, "nvidia-smi")
	if r.code != 9 || !strings.HasPrefix(r.stdout, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.") {
		t.Fatalf("nvidia-smi before modprobe: %d %q", r.code, r.stdout)
	}
	vm.must(c, "sudo modprobe nvidia && sudo modprobe nvidia_uvm")
	table := vm.must(c, "nvidia-smi")
	if !strings.Contains(table, "NVIDIA GeForce RTX 5060 Ti") || !strings.Contains(table, "16311MiB") || !strings.Contains(table, "Driver Version: 595.84") {
		t.Errorf("nvidia-smi table:\n%s", table)
	}
	if got := vm.must(c, "modinfo -F license nvidia"); got != "Dual MIT/GPL\n" {
		t.Errorf("license %q", got)
	}
	if got := vm.must(c, "head -1 /proc/driver/nvidia/version"); !strings.HasPrefix(got, "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  595.84  Release Build") {
		t.Errorf("/proc/driver/nvidia/version %q", got)
	}
	if d := vm.must(c, "sudo dmesg"); !strings.Contains(d, "NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  595.84") || strings.Contains(d, "RmInitAdapter failed") {
		t.Errorf("dmesg:\n%s", d)
	}

	// reboot: modules come back by themselves, host key unchanged
	if err := runErr(c, "sudo reboot"); err == nil {
		t.Fatal("sudo reboot returned an exit status; the connection should have dropped")
	}
	if err := vm.g.WaitCloudInit(vm.ctx()); err != nil {
		t.Fatal(err)
	}
	c2 := vm.client()
	if !bytes.Equal(vm.g.HostKeys()[0].Marshal(), hostKey) {
		t.Error("host key changed across reboot")
	}
	if r := vm.sh(c2, "nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits"); r.code != 0 || r.stdout != "NVIDIA GeForce RTX 5060 Ti, 16311\n" {
		t.Errorf("after reboot: %d %q", r.code, r.stdout)
	}
}

func TestNvidiaSmiGolden580(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y nvidia-headless-no-dkms-580-open linux-modules-nvidia-580-open-generic nvidia-utils-580")
	if got := vm.sh(c, "nvidia-smi").stdout; got != golden(t, "nvidia-smi-failed.txt") {
		t.Errorf("before modprobe:\n%q", got)
	}
	vm.must(c, "sudo modprobe nvidia")
	out := vm.must(c, "nvidia-smi")
	_, table, _ := strings.Cut(out, "\n") // first line is the date
	if table != golden(t, "nvidia-smi-580.txt") {
		t.Errorf("nvidia-smi table differs from guest.md §3.1:\n%s\nwant:\n%s", table, golden(t, "nvidia-smi-580.txt"))
	}
	if got := vm.must(c, "nvidia-smi --query-gpu=name,memory.total,driver_version,pci.bus_id --format=csv"); got != golden(t, "nvidia-smi-query-580.txt") {
		t.Errorf("query csv: %q", got)
	}
	if got := vm.must(c, "nvidia-smi --query-gpu=name,memory.total,driver_version,pci.bus_id --format=csv,noheader,nounits"); got != golden(t, "nvidia-smi-query-noheader-nounits-580.txt") {
		t.Errorf("query csv noheader nounits: %q", got)
	}
}

// TestProprietaryOnBlackwell: the recommended (closed) driver loads but refuses the GPU.
func TestProprietaryOnBlackwell(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y ubuntu-drivers-common")
	dev := vm.must(c, "ubuntu-drivers devices 2>/dev/null")
	if !strings.Contains(dev, "modalias : pci:v000010DEd00002D04sv00001043sd00008A11bc03sc00i00\n") || !strings.Contains(dev, "driver   : nvidia-driver-595 - distro non-free recommended\n") {
		t.Errorf("devices:\n%s", dev)
	}
	r := vm.sh(c, "sudo ubuntu-drivers install")
	if r.code != 0 {
		t.Fatalf("install: %d %s", r.code, r.stderr)
	}
	vm.must(c, "sudo modprobe nvidia")
	r = vm.sh(c, "nvidia-smi")
	if r.code != 6 || r.stdout != "No devices were found\n" {
		t.Errorf("nvidia-smi with the closed module: %d %q", r.code, r.stdout)
	}
	d := vm.must(c, "sudo dmesg")
	if !strings.Contains(d, "NVRM: The NVIDIA GPU 0000:01:00.0 (PCI ID: 10de:2d04)\n               NVRM: installed in this system requires use of the NVIDIA open kernel modules.") {
		t.Errorf("dmesg lacks the open-module error:\n%s", d)
	}
	// The refusal is logged again on every attempt to use the GPU.
	vm.sh(c, "nvidia-smi")
	if n := strings.Count(vm.must(c, "sudo dmesg"), "rm_init_adapter failed, device minor number 0"); n != 3 {
		t.Errorf("rm_init_adapter failures after load + 2 nvidia-smi runs: %d, want 3", n)
	}
	if got := vm.must(c, "modinfo -F license nvidia"); got != "NVIDIA\n" {
		t.Errorf("license %q", got)
	}
}

func TestUbuntuDriversNoGPU(t *testing.T) {
	vm := newVM(t, 0, func(b *pve.BootInfo) { b.GPUs = nil }).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y ubuntu-drivers-common")
	for _, cmd := range []string{"ubuntu-drivers devices", "ubuntu-drivers list --gpgpu"} {
		r := vm.sh(c, cmd)
		if r.code != 0 || r.stdout != "" || r.stderr != "ERROR:root:aplay command not found\n" {
			t.Errorf("%s: %d %q %q", cmd, r.code, r.stdout, r.stderr)
		}
	}
	r := vm.sh(c, "sudo ubuntu-drivers install --gpgpu nvidia:595-open")
	if r.code != 0 || !strings.Contains(r.stdout, "No drivers found for installation.") {
		t.Errorf("install without GPU: %d %q", r.code, r.stdout)
	}
	r = vm.sh(c, "sudo ubuntu-drivers --gpgpu list")
	if !strings.HasPrefix(r.stdout, "This is gpgpu mode\n") {
		t.Errorf("group-level --gpgpu: %q", r.stdout)
	}
}

// TestBranchSwitchNeedsReboot: a newer branch replaces the loaded one; NVML mismatch until reboot.
func TestBranchSwitchNeedsReboot(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y nvidia-headless-no-dkms-580-open linux-modules-nvidia-580-open-generic nvidia-utils-580 && sudo modprobe nvidia")
	vm.must(c, "nvidia-smi -L")
	out := vm.must(c, "sudo apt-get install -y nvidia-headless-no-dkms-595-open linux-modules-nvidia-595-open-generic nvidia-utils-595")
	if !strings.Contains(out, "The following packages will be REMOVED:") || !strings.Contains(out, "nvidia-utils-580") {
		t.Errorf("580 not replaced:\n%s", out)
	}
	r := vm.sh(c, "nvidia-smi")
	if r.code != 18 || r.stdout != "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 595.84\n" {
		t.Errorf("mismatch: %d %q", r.code, r.stdout)
	}
	if err := runErr(c, "sudo reboot"); err == nil {
		t.Fatal("reboot kept the connection")
	}
	vm.ready()
	if got := vm.must(vm.client(), "nvidia-smi --query-gpu=driver_version --format=csv,noheader"); got != "595.84\n" {
		t.Errorf("after reboot: %q", got)
	}
}
