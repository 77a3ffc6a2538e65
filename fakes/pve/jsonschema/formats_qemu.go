package jsonschema

import (
	"regexp"
	"strconv"

	"github.com/aimachine/aimachine/fakes/pve/apischema"
)

func ptr[T any](v T) *T { return &v }

func str(optional bool) *Schema { return &Schema{Type: "string", Optional: apischema.Bool(optional)} }

// pciRE is qemu-server src/PVE/QemuServer/PCI.pm $PCIRE (lower-case hex only).
const pciRE = `(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?`

func init() {
	hexID := func() *Schema { s := str(true); s.Pattern = `^0x[0-9a-fA-F]{4}$`; return s }
	boolean := func() *Schema { return &Schema{Type: "boolean", Optional: true} }
	withFormat := func(s *Schema, f string) *Schema { s.Format = f; return s }

	// qemu-server src/PVE/QemuServer/PCI.pm $hostpci_fmt
	host := str(true)
	host.DefaultKey, host.Pattern = true, "(?:"+pciRE+")(;(?:"+pciRE+"))*"
	romfile := str(true)
	romfile.Pattern = `[^,;]+`
	mdev := str(true)
	mdev.Pattern = `[^/\.:]+`
	driver := str(true)
	driver.Enum = []string{"vfio", "keep"}
	HashFormats["pve-qm-hostpci"] = map[string]*Schema{
		"host": host, "mapping": withFormat(str(true), "pve-configid"), "rombar": boolean(), "romfile": romfile,
		"pcie": boolean(), "x-vga": boolean(), "legacy-igd": boolean(), "mdev": mdev,
		"vendor-id": hexID(), "device-id": hexID(), "sub-vendor-id": hexID(), "sub-device-id": hexID(), "driver": driver,
	}

	// qemu-server src/PVE/QemuServer/Network.pm $ipconfig_fmt
	gw, gw6 := withFormat(str(true), "ipv4"), withFormat(str(true), "ipv6")
	gw.Requires, gw6.Requires = "ip", "ip6"
	HashFormats["pve-qm-ipconfig"] = map[string]*Schema{
		"ip": withFormat(str(true), "pve-ipv4-config"), "gw": gw,
		"ip6": withFormat(str(true), "pve-ipv6-config"), "gw6": gw6,
	}

	// qemu-server src/PVE/QemuServer.pm $cicustom_fmt
	HashFormats["pve-qm-cicustom"] = map[string]*Schema{
		"meta": withFormat(str(true), "pve-volume-id"), "network": withFormat(str(true), "pve-volume-id"),
		"user": withFormat(str(true), "pve-volume-id"), "vendor": withFormat(str(true), "pve-volume-id"),
	}

	// qemu-server src/PVE/QemuServer.pm $boot_fmt
	legacy := str(true)
	legacy.DefaultKey, legacy.Pattern = true, `[acdn]{1,4}`
	HashFormats["pve-qm-boot"] = map[string]*Schema{"legacy": legacy, "order": withFormat(str(true), "pve-qm-bootdev-list")}

	// qemu-server src/PVE/QemuServer.pm $watchdog_fmt
	wdModel, wdAction := str(true), str(true)
	wdModel.DefaultKey, wdModel.Enum = true, []string{"i6300esb", "ib700"}
	wdAction.Enum = []string{"reset", "shutdown", "poweroff", "pause", "debug", "none"}
	HashFormats["pve-qm-watchdog"] = map[string]*Schema{"model": wdModel, "action": wdAction}

	// qemu-server src/PVE/QemuServer.pm $smbios1_fmt
	b64 := func() *Schema { s := str(true); s.Pattern = `[A-Za-z0-9+\/]+={0,2}`; return s }
	uuid := str(true)
	uuid.Pattern = `[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}`
	HashFormats["pve-qm-smbios1"] = map[string]*Schema{
		"uuid": uuid, "version": b64(), "serial": b64(), "manufacturer": b64(), "product": b64(), "sku": b64(), "family": b64(),
		"base64": boolean(),
	}

	// qemu-server src/PVE/QemuServer/Drive.pm $ide_fmt (registered as pve-qm-ide, used by "cdrom"):
	// the API viewer expands the same format for ide[n].
	if a, err := apischema.Load(); err == nil {
		for _, op := range a.Operations {
			if op.Method == "POST" && op.Path == "/nodes/{node}/qemu" && op.Parameters != nil {
				if ide := op.Parameters.Properties["ide[n]"]; ide != nil {
					HashFormats["pve-qm-ide"] = ide.FormatSchema
				}
			}
		}
	}
}

// qemuMax is how many of each indexed qemu config key exist (qemu-server: QemuServer.pm $MAX_NETS,
// $MAX_SERIAL_PORTS, $MAX_PARALLEL_PORTS; Drive.pm $MAX_IDE_DISKS, $MAX_SCSI_DISKS,
// $MAX_VIRTIO_DISKS, $MAX_SATA_DISKS, $MAX_UNUSED_DISKS; PCI.pm $MAX_HOSTPCI_DEVICES; USB.pm
// $MAX_USB_DEVICES; Memory.pm $MAX_NUMA; Virtiofs.pm $MAX_VIRTIOFS). ipconfigN follows netN.
var qemuMax = map[string]int{
	"net": 32, "ipconfig": 32, "serial": 4, "parallel": 3, "ide": 4, "scsi": 31, "virtio": 16, "sata": 6,
	"unused": 256, "hostpci": 16, "usb": 14, "numa": 8, "virtiofs": 10,
}

var reIndexed = regexp.MustCompile(`^([a-z]+)(\d+)$`)

// QemuIndexed tells whether k is one of qemu-server's indexed config keys (net0..net31, scsi0..scsi30 …).
func QemuIndexed(k string) bool {
	m := reIndexed.FindStringSubmatch(k)
	if m == nil || (len(m[2]) > 1 && m[2][0] == '0') {
		return false
	}
	n, _ := strconv.Atoi(m[2])
	max, ok := qemuMax[m[1]]
	return ok && n < max
}

// IsValidDriveName is qemu-server Drive.pm is_valid_drivename (unusedN excluded).
func IsValidDriveName(k string) bool {
	if k == "efidisk0" || k == "tpmstate0" {
		return true
	}
	m := reIndexed.FindStringSubmatch(k)
	if m == nil {
		return false
	}
	switch m[1] {
	case "ide", "scsi", "virtio", "sata":
		return QemuIndexed(k)
	}
	return false
}

// Indexed resolves "net3" to the schema the API viewer lists as "net[n]". For qemu methods the index
// is bounded as qemu-server defines it; elsewhere (lxc mpN, cluster linkN …) any index is accepted.
func Indexed(props map[string]*Schema, qemu bool) Lookup {
	return func(k string) *Schema {
		m := reIndexed.FindStringSubmatch(k)
		if m == nil {
			return nil
		}
		s := props[m[1]+"[n]"]
		if s == nil {
			return nil
		}
		if qemu {
			if _, bounded := qemuMax[m[1]]; bounded && !QemuIndexed(k) {
				return nil
			}
		}
		return s
	}
}
