package tasks

import (
	"strings"
	"testing"
)

// TestKernelLogHintsNameTheCause: one row per driver failure kind, with the kernel's or
// modprobe's own text (shared/reference/guest.md §4.2, §2.5), and the hint must name it.
func TestKernelLogHintsNameTheCause(t *testing.T) {
	for _, tc := range []struct {
		name, log, want string
	}{
		{"nouveau owns the GPU (driver conflict)", "NVRM: The NVIDIA probe routine was not called for 1 device(s).\nNVRM: This can occur when a driver such as:\nNVRM: nouveau, rivafb, nvidiafb or rivatv\nNVRM: was loaded and obtained ownership of the NVIDIA device(s).", "nouveau (or another framebuffer driver) owns the GPU"},
		{"proprietary module on Blackwell", "NVRM: The NVIDIA GPU 0000:01:00.0 (PCI ID: 10de:2d04)\n               NVRM: installed in this system requires use of the NVIDIA open kernel modules.\nNVRM: GPU 0000:01:00.0: RmInitAdapter failed! (0x22:0x56:884)", "only with the open kernel module"},
		{"secure boot", "modprobe: ERROR: could not insert 'nvidia': Key was rejected by service", "Secure Boot refused an unsigned module"},
		{"version mismatch", "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.173", "different versions"},
		{"BARs not mapped", "NVRM: BAR1 is 0M @ 0x0 (PCI:0000:01:00.0)", "did not map the GPU's memory"},
		{"fell off the bus", "NVRM: Xid (PCI:0000:01:00): 79, pid=1234, name=python3, GPU has fallen off the bus.", "fell off the PCIe bus"},
		{"modules for another kernel", "modprobe: FATAL: Module nvidia not found in directory /lib/modules/6.8.0-31-generic", "built for another kernel"},
		{"probe failed", "nvidia: probe of 0000:01:00.0 failed with error -1\nNVRM: The NVIDIA probe routine failed for 1 device(s).", "could not initialise the GPU"},
		{"nothing known", "random text", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kernelLogHint(tc.log)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("hint %q, want %q", got, tc.want)
			}
		})
	}
}
