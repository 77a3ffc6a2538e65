package tasks

import "regexp"

// kernelLogHints map the NVIDIA driver's kernel and modprobe messages to their cause, in the
// order they are checked (shared/reference/guest.md §4.2 and §2.5 hold the real texts).
var kernelLogHints = []struct {
	re   *regexp.Regexp
	hint string
}{
	{regexp.MustCompile(`was loaded and obtained ownership|probe routine was not called`),
		"nouveau (or another framebuffer driver) owns the GPU, so the NVIDIA driver cannot bind it: blacklist it in the VM " +
			"(printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | sudo tee /etc/modprobe.d/blacklist-nouveau.conf; sudo update-initramfs -u), reboot the VM and re-run"},
	{regexp.MustCompile(`requires use of the NVIDIA open kernel modules`),
		"this GPU works only with the open kernel module: install the -open flavour (nvidia-driver-NNN-open / linux-modules-nvidia-NNN-open-*), remove the proprietary one, reboot and re-run"},
	{regexp.MustCompile(`Key was rejected by service`),
		"Secure Boot refused an unsigned module: install Ubuntu's signed linux-modules-nvidia-* instead of a DKMS build, or turn Secure Boot off in the VM's EFI"},
	{regexp.MustCompile(`(Driver/library|API) (version )?mismatch`),
		"the loaded kernel module and the userspace libraries are different versions (an older module still loaded, or NVIDIA's CUDA repo mixed with Ubuntu's): reboot the VM; if it persists, remove the packages of the other source"},
	{regexp.MustCompile(`BAR1 is 0M|PCI I/O region assigned to your NVIDIA device is invalid`),
		"the VM firmware did not map the GPU's memory (BARs): use machine q35 with bios ovmf and pcie on; on the host, a Resizable BAR larger than the VM's MMIO window needs ReBAR off in the host BIOS"},
	{regexp.MustCompile(`fallen off the bus`),
		"the GPU fell off the PCIe bus (a reset or power problem on the host, not in the VM): stop the VM, power-cycle the host if the card does not come back, and check its power cables"},
	{regexp.MustCompile(`Module nvidia not found in directory`),
		"the NVIDIA modules are built for another kernel than the running one: install linux-modules-nvidia-NNN for $(uname -r) or boot the newest kernel, then re-run"},
	{regexp.MustCompile(`RmInitAdapter failed|probe of \S+ failed with error|No NVIDIA devices probed|None of the NVIDIA devices were initialized`),
		"the driver loaded but could not initialise the GPU: check that the whole card (all functions) is passed through and that the driver flavour fits it (Blackwell needs -open); read `sudo dmesg | grep NVRM`"},
}

// kernelLogHint names the cause in a driver's kernel log or modprobe output, or "".
func kernelLogHint(log string) string {
	for _, h := range kernelLogHints {
		if h.re.MatchString(log) {
			return h.hint
		}
	}
	return ""
}
