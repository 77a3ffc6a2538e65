package pve

import (
	"fmt"

	"github.com/aimachine/aimachine/fakes/nvgpu"
)

// NVIDIAGPU returns the PCI functions of the NVIDIA GPU with PCI device id deviceID (a row of the
// fakes/nvgpu table: "2d04", "2684", "1eb8" ...) in slot bus:dev ("0000:01:00"): the display
// function .0 and, for boards that have one, the audio function .1. subVendor/subDevice are the
// board's subsystem ids ("" = NVIDIA's reference board, 10de:<device>). Names are those of the
// current pci.ids (the host's), Model and MemoryMiB what nvidia-smi reports in the guest.
func NVIDIAGPU(slot string, iommuGroup int, deviceID, subVendor, subDevice string) ([]PCIDevice, error) {
	d, ok := nvgpu.Lookup(deviceID)
	if !ok {
		return nil, fmt.Errorf("NVIDIA device id %q is not in the fakes/nvgpu table", deviceID)
	}
	if subVendor == "" {
		subVendor, subDevice = "0x10de", "0x"+d.DeviceID
	}
	out := []PCIDevice{{
		ID: slot + ".0", Class: "0x" + d.Class, Vendor: "0x10de", Device: "0x" + d.DeviceID,
		VendorName: "NVIDIA Corporation", DeviceName: d.PCIName,
		SubsystemVendor: subVendor, SubsystemDevice: subDevice, IOMMUGroup: iommuGroup,
		MemoryMiB: d.MemoryMiB, Model: d.Name,
	}}
	if d.AudioID != "" {
		out = append(out, PCIDevice{
			ID: slot + ".1", Class: "0x040300", Vendor: "0x10de", Device: "0x" + d.AudioID,
			VendorName: "NVIDIA Corporation", DeviceName: d.AudioPCIName,
			SubsystemVendor: subVendor, SubsystemDevice: subDevice, IOMMUGroup: iommuGroup,
		})
	}
	return out, nil
}
