package jsonschema

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// verifier is a registered format's code: nil when the value is fine, else the die text ("…\n").
type verifier func(v string) error

func die(format string, a ...any) error { return fmt.Errorf(format+"\n", a...) }

// Named property-string formats that the API viewer leaves as a name; their sub-schemas are copied
// from the Perl source (file given per entry) into HashFormats by formats_qemu.go.
var HashFormats = map[string]map[string]*Schema{}

// verifiers are the code formats the fake checks, with their source.
var verifiers = map[string]verifier{
	// pve-common src/PVE/JSONSchema.pm
	"string":         func(string) error { return nil },
	"urlencoded":     reDie(`^[-%a-zA-Z0-9_.!~*'()]*$`, "invalid urlencoded string: %s"),
	"pve-configid":   reDie(`^(?i:[a-z][a-z0-9_-]+)$`, "invalid configuration ID '%s'"),
	"pve-storage-id": func(v string) error { return parseID(v, "storage") },
	"pve-bridge-id":  reDie(`^[-_.\w\d]+$`, "invalid bridge ID '%s'"),
	"pve-vmid":       reDieConst(`^[1-9][0-9]{2,8}$`, "value does not look like a valid VM ID"),
	// pve-ha-manager src/PVE/HA/Tools.pm pve_verify_ha_resource_or_vm_id
	"pve-ha-resource-or-vm-id": reDieConst(`^([a-z]+:\S+|\d+)$`, "value does not look like a valid ha resource id"),
	"pve-node":                 reDieConst(`^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`, "value does not look like a valid node name"),
	"mac-addr":                 reDieConst(`^(?i:[a-f0-9][02468ace](?::[a-f0-9]{2}){5})$`, "value does not look like a valid unicast MAC address"),
	"ipv4": func(v string) error {
		if !isIPv4(v) {
			return die("value does not look like a valid IPv4 address")
		}
		return nil
	},
	"ipv6": func(v string) error {
		if !isIPv6(v) {
			return die("value does not look like a valid IPv6 address")
		}
		return nil
	},
	"ip": func(v string) error {
		if !isIPv4(v) && !isIPv6(v) {
			return die("value does not look like a valid IP address")
		}
		return nil
	},
	"CIDRv4": func(v string) error {
		if !isCIDR(v, false) {
			return die("value does not look like a valid IPv4 CIDR network")
		}
		return nil
	},
	"CIDRv6": func(v string) error {
		if !isCIDR(v, true) {
			return die("value does not look like a valid IPv6 CIDR network")
		}
		return nil
	},
	"CIDR": func(v string) error {
		if !isCIDR(v, false) && !isCIDR(v, true) {
			return die("value does not look like a valid CIDR network")
		}
		return nil
	},
	"pve-ipv4-config": func(v string) error {
		if v == "dhcp" || v == "manual" || isCIDR(v, false) {
			return nil
		}
		return die("value does not look like a valid ipv4 network configuration")
	},
	"pve-ipv6-config": func(v string) error {
		if v == "auto" || v == "dhcp" || v == "manual" || isCIDR(v, true) {
			return nil
		}
		return die("value does not look like a valid ipv6 network configuration")
	},
	"dns-name": reDieConst(`^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`,
		"value does not look like a valid DNS name"),
	"address": func(v string) error {
		if isIPv4(v) || isIPv6(v) || reDNS.MatchString(v) {
			return nil
		}
		return die("value does not look like a valid address: %s", v)
	},
	"disk-size": func(v string) error {
		if _, ok := ParseSize(v); !ok {
			return die("value does not look like a valid disk size: %s", v)
		}
		return nil
	},
	"pve-startup-order": func(v string) error {
		if v == "" || v == "0" {
			return die("unable to parse startup options")
		}
		for _, p := range strings.Split(v, ",") {
			if reBlnk.MatchString(p) {
				continue
			}
			if !reStartup.MatchString(p) {
				return die("unable to parse startup options")
			}
		}
		return nil
	},
	"pve-tag": reDieConst(`^(?i:[a-z0-9_][a-z0-9_\-\+\.]*)$`, "invalid characters in tag"),
	// pve-storage src/PVE/Storage/Plugin.pm
	"pve-volume-id": verifyVolumeID,
	"pve-storage-content": func(v string) error {
		switch v {
		case "import", "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none":
			return nil
		}
		return die("invalid content type '%s'", v)
	},
	"pve-storage-format": reDie(`^(raw|qcow2|vmdk|subvol)$`, "invalid format '%s'"),
	// qemu-server src/PVE/QemuServer.pm
	"pve-volume-id-or-qm-path": func(v string) error {
		if v == "none" || v == "cdrom" {
			return nil
		}
		return volumeIDOrAbsolutePath(v)
	},
	"pve-volume-id-or-absolute-path": volumeIDOrAbsolutePath,
	"pve-hotplug-features": func(v string) error {
		if v == "0" || v == "1" {
			return nil
		}
		if v == "" {
			return die("unable to parse hotplug option")
		}
		for _, f := range SplitList(v) {
			if !reHotplug.MatchString(f) {
				return die("unable to parse hotplug option")
			}
		}
		return nil
	},
	"pve-qm-bootdev": func(v string) error {
		special := strings.HasPrefix(v, "efidisk") || strings.HasPrefix(v, "tpmstate")
		if IsValidDriveName(v) && !special {
			return nil
		}
		if QemuIndexed(v) && (strings.HasPrefix(v, "net") || strings.HasPrefix(v, "usb") || strings.HasPrefix(v, "hostpci")) {
			return nil
		}
		return die("invalid boot device '%s'", v)
	},
	// qemu-server src/PVE/QemuServer/Drive.pm
	"pve-qm-bootdisk": func(v string) error {
		if IsValidDriveName(v) {
			return nil
		}
		return die("invalid boot disk '%s'", v)
	},
	// pve-access-control src/PVE/AccessControl.pm, src/PVE/Auth/Plugin.pm
	"pve-poolid": func(v string) error {
		if len(strings.Split(v, "/")) > 3 {
			return die("pool name '%s' nested too deeply (max levels = 3)", v)
		}
		if !rePool.MatchString(v) {
			return die("pool name '%s' contains invalid characters", v)
		}
		return nil
	},
	"pve-realm": reDieConst(`^[A-Za-z][A-Za-z0-9\.\-_]+$`, "value does not look like a valid realm"),
	"pve-userid": func(v string) error {
		n := len([]rune(v))
		if n < 3 {
			return die("user name '%s' is too short", v)
		}
		if n > 64 {
			return die("user name '%s' is too long (%d > 64)", v, n)
		}
		if !reUserID.MatchString(v) {
			return die("value '%s' does not look like a valid user name", v)
		}
		return nil
	},
	"pve-tokenid": func(v string) error {
		if !reTokenID.MatchString(v) {
			return die("value '%s' does not look like a valid token ID", v)
		}
		return nil
	},
}

var (
	reDNS      = regexp.MustCompile(`^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`)
	reStartup  = regexp.MustCompile(`^((order=)?\d+|up=\d+|down=\d+)$`)
	reVolumeID = regexp.MustCompile(`^(?i:[a-z][a-z0-9\-\_\.]*[a-z0-9]):(.+)$`)
	reHotplug  = regexp.MustCompile(`^(network|disk|cpu|memory|usb|cloudinit)$`)
	rePool     = regexp.MustCompile(`^[A-Za-z0-9\.\-_]+(?:/[A-Za-z0-9\.\-_]+){0,2}$`)
	reUserID   = regexp.MustCompile(`^([^\s:/]+)@([A-Za-z][A-Za-z0-9\.\-_]+)$`)
	reTokenID  = regexp.MustCompile(`^(([^\s:/]+)@([A-Za-z][A-Za-z0-9\.\-_]+))!([A-Za-z][A-Za-z0-9\.\-_]+)$`)
	reIPv4     = regexp.MustCompile(`^(?:(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])\.){3}(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])$`)
	reCIDRTail = regexp.MustCompile(`^(.*)/(\d+)$`)
)

func reDie(re, msg string) verifier {
	r := regexp.MustCompile(re)
	return func(v string) error {
		if !r.MatchString(v) {
			return die(msg, v)
		}
		return nil
	}
}

func reDieConst(re, msg string) verifier {
	r := regexp.MustCompile(re)
	return func(v string) error {
		if !r.MatchString(v) {
			return errors.New(msg + "\n")
		}
		return nil
	}
}

// parseID is JSONSchema::parse_id.
func parseID(v, typ string) error {
	if len(v) < 2 {
		return die("%s ID '%s' cannot be shorter than 2 characters", typ, v)
	}
	if !regexp.MustCompile(`^(?i:[a-z][a-z0-9\-\_\.]*[a-z0-9])$`).MatchString(v) {
		return die("%s ID '%s' contains illegal characters", typ, v)
	}
	return nil
}

func volumeIDOrAbsolutePath(v string) error {
	if strings.HasPrefix(v, "/") {
		return nil
	}
	return verifyVolumeID(v)
}

// verifyVolumeID is pve-storage Plugin.pm parse_volume_id.
func verifyVolumeID(v string) error {
	if !reVolumeID.MatchString(v) {
		return die("unable to parse volume ID '%s'", v)
	}
	return nil
}

func isIPv4(v string) bool { return reIPv4.MatchString(v) }

// isIPv6 stands for ParseUtils' $IPV6RE (RFC 4291 text forms; no zone, no brackets).
func isIPv6(v string) bool {
	if !strings.Contains(v, ":") || strings.Contains(v, "%") {
		return false
	}
	a, err := netip.ParseAddr(v)
	return err == nil && a.Is6()
}

// isCIDR is pve_verify_cidrv4/6: prefix length 8..32 / 8..128.
func isCIDR(v string, six bool) bool {
	m := reCIDRTail.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	n, err := strconv.Atoi(m[2])
	if err != nil || n <= 7 {
		return false
	}
	if six {
		return isIPv6(m[1]) && n <= 128
	}
	return isIPv4(m[1]) && n <= 32
}

// SplitList is PVE::ParseUtils::split_list: NUL-separated, else on commas, semicolons and blanks.
func SplitList(v string) []string {
	if strings.Contains(v, "\x00") {
		return strings.Split(v, "\x00")
	}
	return strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f'
	})
}

var reFormatName = regexp.MustCompile(`^(.*?)(?:-(list|opt))?$`)

// Known tells whether the fake verifies a named format (PARITY.md counts operations whose formats it
// does not verify).
func Known(format string) bool {
	if format == "" || format == "regex" {
		return true
	}
	name := reFormatName.FindStringSubmatch(format)[1]
	if _, ok := verifiers[name]; ok {
		return true
	}
	_, ok := HashFormats[name]
	return ok
}

// checkFormat is check_format: a property-string sub-schema, or a named format with an optional
// "-list" (split_list, every item) or "-opt" (only when true) suffix. ok is false with the die text.
// A registered format the fake has no verifier for is accepted (see Known).
func checkFormat(s *Schema, v, path string) (string, bool) {
	if s.FormatSchema != nil {
		if _, err := ParsePropertyString(s.FormatSchema, v, path); err != nil {
			return err.Error(), false
		}
		return "", true
	}
	if s.Format == "regex" {
		return "", true
	}
	m := reFormatName.FindStringSubmatch(s.Format)
	name, kind := m[1], m[2]
	if hf, ok := HashFormats[name]; ok {
		if kind != "" {
			return fmt.Sprintf("'-%s' format must have code ref, not hash\n", kind), false
		}
		if _, err := ParsePropertyString(hf, v, path); err != nil {
			return err.Error(), false
		}
		return "", true
	}
	fn, ok := verifiers[name]
	if !ok {
		return "", true
	}
	switch kind {
	case "list":
		for _, item := range SplitList(v) {
			if err := fn(item); err != nil {
				return err.Error(), false
			}
		}
	case "opt":
		if v != "" && v != "0" {
			if err := fn(v); err != nil {
				return err.Error(), false
			}
		}
	default:
		if err := fn(v); err != nil {
			return err.Error(), false
		}
	}
	return "", true
}
