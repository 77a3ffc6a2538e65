package guest

import (
	"strings"
	"testing"
)

// TestReferenceFormats pins small formats from shared/reference/guest.md that other tests do not.
func TestReferenceFormats(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y ubuntu-drivers-common")

	// §5: the revision follows the [vendor:device] pair.
	if got := vm.must(c, "lspci -nn | grep 'ISA bridge'"); got != "00:1f.0 ISA bridge [0601]: Intel Corporation 82801IB (ICH9) LPC Interface Controller [8086:2918] (rev 02)\n" {
		t.Errorf("lspci -nn ISA bridge: %q", got)
	}
	// §2.1: --recommended prints only the first line, "PKG LRMPKG".
	if got := vm.must(c, "ubuntu-drivers list --gpgpu --recommended 2>/dev/null"); got != "nvidia-driver-595-server-open linux-modules-nvidia-595-server-open-generic\n" {
		t.Errorf("list --gpgpu --recommended: %q", got)
	}
	// §0, §2.4: the 580 branch is 580.173.02 everywhere (packages, module, nvidia-smi, /proc).
	vm.must(c, "sudo ubuntu-drivers install --gpgpu nvidia:580-open && sudo apt-get install -y nvidia-utils-580 && sudo modprobe nvidia")
	if got := vm.must(c, "dpkg-query -W -f='${Version}' nvidia-headless-no-dkms-580-open"); got != "580.173.02-0ubuntu0.24.04.1" {
		t.Errorf("package version %q", got)
	}
	if got := vm.must(c, "nvidia-smi --query-gpu=driver_version --format=csv,noheader; modinfo -F version nvidia"); got != "580.173.02\n580.173.02\n" {
		t.Errorf("driver version %q", got)
	}
	if got := vm.must(c, "head -1 /proc/driver/nvidia/version"); !strings.Contains(got, "  580.173.02  ") {
		t.Errorf("/proc/driver/nvidia/version %q", got)
	}
	if got := vm.must(c, "nvidia-smi | sed -n 3p"); !strings.Contains(got, "Driver Version: 580.173.02") || !strings.Contains(got, "CUDA Version: 13.0") {
		t.Errorf("nvidia-smi header %q", got)
	}
}
