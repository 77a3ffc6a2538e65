package jsonschema

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aimachine/aimachine/fakes/pve/apischema"
)

func opParam(t *testing.T, method, path, name string) *Schema {
	t.Helper()
	a := apischema.MustLoad()
	op, _, _ := a.Find(method, apischema.Split(path))
	if op == nil {
		t.Fatalf("%s %s not in the schema", method, path)
	}
	s := op.Parameters.Properties[name]
	if s == nil {
		t.Fatalf("%s: no parameter %s", path, name)
	}
	return s
}

// TestPropertyStringRoundTrip: parse_property_string then print_property_string (pve-common
// JSONSchema.pm) gives PVE's canonical text: default key first (combined with its keyAlias partner),
// then the other keys sorted, booleans 0/1, aliases resolved.
func TestPropertyStringRoundTrip(t *testing.T) {
	net := opParam(t, "POST", "/nodes/pve/qemu", "net[n]").FormatSchema
	scsi := opParam(t, "POST", "/nodes/pve/qemu", "scsi[n]").FormatSchema
	agent := opParam(t, "POST", "/nodes/pve/qemu", "agent").FormatSchema
	for _, c := range []struct {
		name   string
		format map[string]*Schema
		in     string
		want   map[string]string
		print  string
	}{
		{"net model=mac", net, "bridge=vmbr0,virtio=BC:24:11:2E:4F:01,firewall=1",
			map[string]string{"model": "virtio", "macaddr": "BC:24:11:2E:4F:01", "bridge": "vmbr0", "firewall": "1"},
			"virtio=BC:24:11:2E:4F:01,bridge=vmbr0,firewall=1"},
		{"net default key", net, "virtio,bridge=vmbr0", map[string]string{"model": "virtio", "bridge": "vmbr0"}, "virtio,bridge=vmbr0"},
		{"drive booleans and size", scsi, "local-lvm:vm-140-disk-0,iothread=on,discard=on,size=536870912000",
			map[string]string{"file": "local-lvm:vm-140-disk-0", "iothread": "1", "discard": "on", "size": "536870912000"},
			"local-lvm:vm-140-disk-0,discard=on,iothread=1,size=500G"},
		{"drive alias", scsi, "file=local-lvm:vm-1-disk-0,bps_rd_length=5",
			map[string]string{"file": "local-lvm:vm-1-disk-0", "bps_rd_max_length": "5"}, "local-lvm:vm-1-disk-0,bps_rd_max_length=5"},
		{"agent alias", agent, "1,freeze-fs-on-backup=0", map[string]string{"enabled": "1", "freeze-fs": "0"}, "1,freeze-fs=0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParsePropertyString(c.format, c.in, "x")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("parsed %v, want %v", got, c.want)
			}
			out, err := PrintPropertyString(got, c.format)
			if err != nil || out != c.print {
				t.Fatalf("printed %q (%v), want %q", out, err, c.print)
			}
		})
	}
}

// TestFormats: named formats with the die texts of their verifiers (file/function in formats.go).
func TestFormats(t *testing.T) {
	for _, c := range []struct{ format, value, err string }{
		{"pve-vmid", "140", ""},
		{"pve-vmid", "099", "value does not look like a valid VM ID\n"},
		{"pve-node", "pve-1", ""},
		{"pve-node", "-pve", "value does not look like a valid node name\n"},
		{"pve-storage-id", "local-lvm", ""},
		{"pve-storage-id", "x", "storage ID 'x' cannot be shorter than 2 characters\n"},
		{"pve-configid-list", "net0,scsi1;ide2 unused0", ""},
		{"pve-configid-list", "net0,-x", "invalid configuration ID '-x'\n"},
		{"pve-volume-id", "local:import/x.qcow2", ""},
		{"pve-volume-id", "x.qcow2", "unable to parse volume ID 'x.qcow2'\n"},
		{"pve-volume-id-or-qm-path", "cdrom", ""},
		{"pve-volume-id-or-qm-path", "/dev/sdb", ""},
		{"pve-tag-list", "llm;gpu", ""},
		{"ipv6", "fe80::1", ""},
		{"ipv6", "fe80::1%eth0", "value does not look like a valid IPv6 address\n"},
		{"CIDRv4", "10.0.0.0/7", "value does not look like a valid IPv4 CIDR network\n"},
		{"pve-ipv6-config", "auto", ""},
		{"disk-size", "3.5G", ""},
		{"pve-hotplug-features", "network,disk,usb", ""},
		{"pve-hotplug-features", "network,gpu", "unable to parse hotplug option\n"},
		{"pve-userid", "root@pam", ""},
		{"pve-userid", "ro", "user name 'ro' is too short\n"},
		{"pve-startup-order", "order=1,up=30", ""},
	} {
		msg, ok := checkFormat(&Schema{Format: c.format}, c.value, "p")
		if ok != (c.err == "") || msg != c.err {
			t.Errorf("%s %q: got (%q, %v), want %q", c.format, c.value, msg, ok, c.err)
		}
	}
}

// TestCheckOrder: check_prop runs format, pattern, maxLength, minLength, maximum, minimum, enum in
// that order and stops at the first failure; a JSON boolean for a boolean skips the scalar checks.
func TestCheckOrder(t *testing.T) {
	max := 3
	s := &Schema{Type: "string", Format: "pve-configid", MaxLength: &max}
	errs := Errors{}
	CheckProp("1abcdef", s, "k", errs)
	if errs["k"] != "invalid format - invalid configuration ID '1abcdef'\n" {
		t.Errorf("format must come first: %q", errs["k"])
	}
	errs = Errors{}
	CheckProp(true, &Schema{Type: "boolean", Enum: []string{"x"}}, "b", errs)
	if len(errs) != 0 {
		t.Errorf("JSON boolean: %v", errs)
	}
	errs = Errors{}
	CheckProp(json.Number("1.5"), &Schema{Type: "integer"}, "i", errs)
	if errs["i"] != "type check ('integer') failed - got '1.5'" {
		t.Errorf("integer: %q", errs["i"])
	}
	errs.add("i", "second")
	if errs["i"] != `type check ('integer') failed - got '1.5'\nsecond` {
		t.Errorf("add_error joins with a literal \\n: %q", errs["i"])
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]string{"536870912000": "500G", "3758096384": "3584M", "4194304": "4M", "1025": "1025", "1099511627776": "1T"} {
		n, ok := ParseSize(in)
		if !ok || FormatSize(n) != want {
			t.Errorf("%s: %s", in, FormatSize(n))
		}
	}
	if _, ok := ParseSize("10GB"); ok {
		t.Error("10GB must not parse")
	}
}

func TestPerlRegexp(t *testing.T) {
	re := perlRegexp(`(?^:\d+(?:-\d+)?(?:;\d+(?:-\d+)?)*)`)
	if re == nil || !re.MatchString("10;20-30") || re.MatchString("10;x") {
		t.Error("qr// pattern")
	}
	re = perlRegexp(`[A-Za-z0-9\-_\s]{,16}`)
	if re == nil || !re.MatchString("Samsung SSD") || re.MatchString("a-very-long-product-name") {
		t.Error("{,n} pattern")
	}
}

// TestQemuHashFormats: property-string formats the API viewer leaves as a name, copied from
// qemu-server ($hostpci_fmt, $ipconfig_fmt, $cicustom_fmt, $boot_fmt, $watchdog_fmt, $smbios1_fmt).
func TestQemuHashFormats(t *testing.T) {
	for _, c := range []struct{ format, value, err string }{
		{"pve-qm-hostpci", "mapping=gpu0,pcie=1,x-vga=on", ""},
		{"pve-qm-hostpci", "0000:01:00,vendor-id=0x10DE", ""},
		{"pve-qm-hostpci", "0000:01:00,vendor-id=10de", "format error\np.vendor-id: value does not match the regex pattern\n"},
		{"pve-qm-ipconfig", "ip=192.168.0.140/24,gw=192.168.0.1,ip6=auto", ""},
		{"pve-qm-cicustom", "vendor=local:snippets/v.yaml", ""},
		{"pve-qm-boot", "order=scsi0;ide2;net0", ""},
		{"pve-qm-boot", "cdn", ""},
		{"pve-qm-watchdog", "i6300esb,action=reset", ""},
		{"pve-qm-watchdog", "model=foo", "format error\np.model: value 'foo' does not have a value in the enumeration 'i6300esb, ib700'\n"},
		{"pve-qm-smbios1", "uuid=6c3a8f2e-2f4b-4f43-9b4e-0c8f6d1e2a3b", ""},
		{"pve-qm-smbios1", "uuid=nope", "format error\np.uuid: value does not match the regex pattern\n"},
		{"pve-qm-ide", "local:iso/x.iso,media=cdrom", ""},
	} {
		msg, ok := checkFormat(&Schema{Format: c.format}, c.value, "p")
		if ok != (c.err == "") || msg != c.err {
			t.Errorf("%s %q: got (%q, %v), want %q", c.format, c.value, msg, ok, c.err)
		}
	}
}
