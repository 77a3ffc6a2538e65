package pve

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// vmKeyTypes types the qemu config keys the fake knows (PVE's schema types; output is coerced from them).
var vmKeyTypes = map[string]ptype{
	"cores": tInt, "sockets": tInt, "cpuunits": tInt, "vcpus": tInt, "balloon": tInt, "shares": tInt, "migrate_speed": tInt,
	"onboot": tBool, "template": tBool, "autostart": tBool, "protection": tBool, "numa": tBool, "tablet": tBool,
	"kvm": tBool, "acpi": tBool, "ciupgrade": tBool, "reboot": tBool, "localtime": tBool, "freeze": tBool,
	"cpulimit": tNumber, "migrate_downtime": tNumber,
	"name": tString, "machine": tString, "bios": tString, "cpu": tString, "boot": tString, "bootdisk": tString, "tags": tString,
	"lock": tString, "sshkeys": tString, "ciuser": tString, "cipassword": tString, "citype": tString, "cicustom": tString,
	"nameserver": tString, "searchdomain": tString, "agent": tString, "memory": tString, "scsihw": tString, "ostype": tString,
	"vga": tString, "description": tString, "efidisk0": tString, "tpmstate0": tString, "smbios1": tString, "vmgenid": tString,
	"meta": tString, "startup": tString, "hookscript": tString, "hotplug": tString, "affinity": tString, "args": tString,
	"audio0": tString, "rng0": tString, "keyboard": tString, "watchdog": tString, "spice_enhancements": tString,
	"vmstatestorage": tString, "arch": tString, "startdate": tString, "ivshmem": tString, "amd-sev": tString,
}

var vmKeyPatterns = []*regexp.Regexp{
	regexp.MustCompile(`^(scsi([0-9]|[12][0-9]|30)|ide[0-3]|sata[0-5]|virtio([0-9]|1[0-5]))$`),
	regexp.MustCompile(`^(net|ipconfig|hostpci|serial|usb|parallel|numa|unused|virtiofs)\d+$`),
}

var reDiskKey = regexp.MustCompile(`^(scsi\d+|ide\d|sata\d|virtio\d+|efidisk0|tpmstate0)$`)

func vmKeyType(k string) (ptype, bool) {
	if t, ok := vmKeyTypes[k]; ok {
		return t, true
	}
	for _, re := range vmKeyPatterns {
		if re.MatchString(k) {
			return tString, true
		}
	}
	return tString, false
}

// renderConfig is the VM's .conf file as PVE writes it (sorted keys; description as comment lines).
func renderConfig(conf map[string]string) string {
	var b strings.Builder
	if d := conf["description"]; d != "" {
		for _, l := range strings.Split(d, "\n") {
			b.WriteString("#" + url.PathEscape(l) + "\n")
		}
	}
	for _, k := range sortedKeys(conf) {
		if k == "description" {
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", k, conf[k])
	}
	return b.String()
}

func configDigest(conf map[string]string) string {
	sum := sha1.Sum([]byte(renderConfig(conf)))
	return hex.EncodeToString(sum[:])
}

// coerceConfig types the stored values as PVE's parse_vm_config does on output.
func coerceConfig(conf map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range conf {
		t, _ := vmKeyType(k)
		switch t {
		case tInt:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[k] = n
				continue
			}
			out[k] = v
		case tBool:
			b, _ := propBool(v)
			out[k] = b2i(b)
		default:
			out[k] = v
		}
	}
	if _, ok := out["cipassword"]; ok {
		out["cipassword"] = "**********"
	}
	out["digest"] = configDigest(conf)
	return out
}

func confInt(conf map[string]string, k string, def int) int {
	if n, err := strconv.Atoi(conf[k]); err == nil {
		return n
	}
	return def
}

// memoryMiB reads "memory" ("51200" or "current=51200"; default 512).
func memoryMiB(conf map[string]string) int {
	v := conf["memory"]
	if v == "" {
		return 512
	}
	kv, _ := parsePropString(v, "current")
	if n, err := strconv.Atoi(kv["current"]); err == nil {
		return n
	}
	return 512
}

func vcpus(conf map[string]string) int {
	if n := confInt(conf, "vcpus", 0); n > 0 {
		return n
	}
	return confInt(conf, "sockets", 1) * confInt(conf, "cores", 1)
}

func vmName(v *vmState) string {
	if n := v.conf["name"]; n != "" {
		return n
	}
	return fmt.Sprintf("VM %d", v.vmid)
}

// agentEnabled parses "agent" ("1", "enabled=1,fstrim_cloned_disks=1", "0").
func agentEnabled(conf map[string]string) bool {
	v, ok := conf["agent"]
	if !ok {
		return false
	}
	kv, _ := parsePropString(v, "enabled")
	b, _ := propBool(kv["enabled"])
	return b
}

// parseSize reads PVE disk sizes ("500G", "3584M", "4M", "1T", "512K", bytes).
func parseSize(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	mult := uint64(1)
	switch s[len(s)-1] {
	case 'K':
		mult = 1 << 10
	case 'M':
		mult = 1 << 20
	case 'G':
		mult = 1 << 30
	case 'T':
		mult = 1 << 40
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, false
	}
	return uint64(f * float64(mult)), true
}

// formatSize is PVE's format_size: the largest unit that divides the size.
func formatSize(b uint64) string {
	switch {
	case b != 0 && b%(1<<40) == 0:
		return fmt.Sprintf("%dT", b>>40)
	case b != 0 && b%(1<<30) == 0:
		return fmt.Sprintf("%dG", b>>30)
	case b != 0 && b%(1<<20) == 0:
		return fmt.Sprintf("%dM", b>>20)
	case b != 0 && b%(1<<10) == 0:
		return fmt.Sprintf("%dK", b>>10)
	}
	return strconv.FormatUint(b, 10)
}

// drive is a parsed disk value.
type drive struct {
	file  string
	opts  map[string]string
	order []string
}

func parseDrive(v string) drive {
	kv, order := parsePropString(v, "file")
	d := drive{file: kv["file"], opts: kv}
	for _, k := range order {
		if k != "file" {
			d.order = append(d.order, k)
		}
	}
	delete(d.opts, "file")
	return d
}

// String prints the drive with options sorted, as PVE's print_drive does.
func (d drive) String() string {
	parts := []string{d.file}
	keys := make([]string, 0, len(d.opts))
	for k := range d.opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+d.opts[k])
	}
	return strings.Join(parts, ",")
}

var reNewDisk = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9\-_.]*):(\d+(?:\.\d+)?)$`)
var reCloudInit = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9\-_.]*):cloudinit$`)

func (d drive) isCDROM() bool { return d.opts["media"] == "cdrom" || d.file == "cdrom" }

func bootDiskSize(conf map[string]string) uint64 {
	keys := bootOrder(conf)
	for _, k := range keys {
		if reDiskKey.MatchString(k) {
			d := parseDrive(conf[k])
			if d.isCDROM() {
				continue
			}
			if n, ok := parseSize(d.opts["size"]); ok {
				return n
			}
		}
	}
	return 0
}

func bootOrder(conf map[string]string) []string {
	kv, _ := parsePropString(conf["boot"], "legacy")
	if o := kv["order"]; o != "" {
		return strings.Split(o, ";")
	}
	return defaultBootDevices(conf)
}

// defaultBootDevices: first hard disk, first real cdrom, then every NIC.
func defaultBootDevices(conf map[string]string) []string {
	var disks, cds, nets []string
	for _, k := range sortedKeys(conf) {
		switch {
		case reDiskKey.MatchString(k) && k != "efidisk0" && k != "tpmstate0":
			d := parseDrive(conf[k])
			if reCloudInit.MatchString(d.file) || strings.Contains(d.file, "cloudinit") {
				continue
			}
			if d.isCDROM() {
				cds = append(cds, k)
			} else {
				disks = append(disks, k)
			}
		case strings.HasPrefix(k, "net"):
			nets = append(nets, k)
		}
	}
	var out []string
	if len(disks) > 0 {
		out = append(out, disks[0])
	}
	if len(cds) > 0 {
		out = append(out, cds[0])
	}
	return append(out, nets...)
}

// validateSSHKeys is PVE::Tools::validate_ssh_public_keys after URL-unescaping (500 on failure).
func validateSSHKeys(enc string) error {
	dec, err := url.PathUnescape(enc)
	if err != nil {
		return errDie("SSH public key validation error")
	}
	for _, line := range strings.Split(dec, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return errDie("SSH public key validation error")
		}
	}
	return nil
}

// decodeSSHKeys returns the key lines as cloud-init writes them.
func decodeSSHKeys(enc string) []string {
	dec, err := url.PathUnescape(enc)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(dec, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
