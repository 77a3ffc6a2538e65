package nvgpu

import (
	"fmt"
	"strings"
)

// NobleBranches are the driver branches noble's archive carries (guest.md §0: 570 is transitional
// to 580, 590 to 595) and the flavours of each, in `ubuntu-drivers list --gpgpu` order.
var NobleBranches = []int{595, 580}

// NobleFlavours are the package flavours per branch.
var NobleFlavours = []string{"-server-open", "-open", "-server", ""}

// GPGPUPackages are the nvidia-driver-* packages `ubuntu-drivers list --gpgpu` offers for d on noble.
func (d Device) GPGPUPackages() []string {
	var out []string
	for _, b := range NobleBranches {
		for _, fl := range NobleFlavours {
			if d.Supports(b, strings.HasSuffix(fl, "open")) {
				out = append(out, fmt.Sprintf("nvidia-driver-%d%s", b, fl))
			}
		}
	}
	return out
}

// Markdown renders the table (DEVICES.md, checked by a test).
func Markdown() string {
	var b strings.Builder
	b.WriteString("# NVIDIA devices the simulators know\n\n")
	b.WriteString("Generated from fakes/nvgpu/nvgpu.go (`go test ./fakes/nvgpu -run TestDevicesMarkdown -update`); sources in its doc comment and per row.\n\n")
	b.WriteString("| id | `lspci -nn` in a noble guest | nvidia-smi name | arch | CC | MiB | GB/s | W | `ubuntu-drivers list --gpgpu` (noble) | sources |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, d := range devices {
		cls := "VGA compatible controller [0300]"
		if d.Class == "030200" {
			cls = "3D controller [0302]"
		}
		lspci := fmt.Sprintf("%s: %s [10de:%s]", cls, NobleLspciName(d.NoblePCIName), d.DeviceID)
		fmt.Fprintf(&b, "| 10de:%s | %s | %s | %s | %s | %d | %d | %d | %s | %s |\n", d.DeviceID, lspci, d.Name, d.Arch, d.ComputeCap,
			d.MemoryMiB, d.BandwidthGBs, d.PowerW, strings.Join(d.GPGPUPackages(), ", "), strings.ReplaceAll(d.Sources, "|", "\\|"))
	}
	b.WriteString("\nBlackwell rows: the proprietary module refuses the GPU (`requires use of the NVIDIA open kernel modules`), although ubuntu-drivers lists the closed builds. Pascal: no GSP, so no `-open` build and nothing after 580.\n")
	return b.String()
}
