package pve

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// vrow is one row of the validation table: a request real PVE refuses, the answer it gives, and
// where in Proxmox's source that answer comes from.
type vrow struct {
	name, src      string
	method, path   string
	json, form     string
	auth           string
	status         int
	errs           map[string]string // 400 "Parameter verification failed." errors
	msg            string            // otherwise the die text (reason = first line)
	check          func(t *testing.T, m map[string]any)
	reasonOverride string
}

const netModels = "e1000, e1000-82540em, e1000-82544gc, e1000-82545em, e1000e, i82551, i82557b, i82559er, ne2k_isa, ne2k_pci, pcnet, rtl8139, virtio, vmxnet3"

// validationTable: every JSONSchema failure kind, the named formats of the endpoints the fake serves,
// property-string errors and storage content rules, each with PVE's exact text.
func validationTable() []vrow {
	const js = "pve-common src/PVE/JSONSchema.pm "
	return []vrow{
		// --- JSONSchema.pm check_prop / check_object / check_type
		{name: "required parameter missing", src: js + "check_prop", method: "POST", path: "/nodes/pve/qemu", json: `{}`,
			status: 400, errs: map[string]string{"vmid": "property is missing and it is not optional"}},
		{name: "unknown parameter", src: js + "check_object (additionalProperties 0)", method: "GET", path: "/version?foo=1",
			status: 400, errs: map[string]string{"foo": "property is not defined in schema and the schema does not allow additional properties"}},
		{name: "integer type", src: js + "check_type is_integer", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":"abc"}`,
			status: 400, errs: map[string]string{"vmid": "type check ('integer') failed - got 'abc'"}},
		{name: "boolean 'true' string", src: js + "check_type (boolean accepts only 0/1 or a JSON boolean)", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"onboot":"true"}`, status: 400, errs: map[string]string{"onboot": "type check ('boolean') failed - got 'true'"}},
		{name: "boolean empty form value", src: js + "check_type", method: "POST", path: "/nodes/pve/qemu", form: "vmid=140&onboot=",
			status: 400, errs: map[string]string{"onboot": "type check ('boolean') failed - got ''"}},
		{name: "string got JSON boolean", src: js + "check_type (a JSON boolean is a JSON::PP::Boolean reference)", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"agent":true}`, status: 400, errs: map[string]string{"agent": "type check ('string') failed - got JSON::PP::Boolean"}},
		{name: "string got array", src: js + "check_type (ref ARRAY)", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"name":["a","b"]}`, status: 400, errs: map[string]string{"name": "type check ('string') failed - got ARRAY"}},
		{name: "number type", src: js + "check_type is_number", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":140,"cpulimit":"x"}`,
			status: 400, errs: map[string]string{"cpulimit": "type check ('number') failed - got 'x'"}},
		{name: "maximum", src: js + "check_prop maximum (qemu-server cpulimit max 128)", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"cpulimit":200}`, status: 400, errs: map[string]string{"cpulimit": "value must have a maximum value of 128"}},
		{name: "minimum", src: js + "check_prop minimum (qemu-server cores min 1)", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"cores":0}`, status: 400, errs: map[string]string{"cores": "value must have a minimum value of 1"}},
		{name: "maxLength", src: js + "check_prop maxLength (description 8192)", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"description":"` + strings.Repeat("x", 8193) + `"}`, status: 400,
			errs: map[string]string{"description": "value may only be 8192 characters long"}},
		{name: "pattern", src: js + "check_prop pattern (qemu-server QemuServer.pm $serialdesc '(/dev/.+|socket)')", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"serial0":"tty"}`, status: 400, errs: map[string]string{"serial0": "value does not match the regex pattern"}},
		{name: "pattern of resize size", src: js + "check_prop pattern (qemu-server API2/Qemu.pm resize_vm size)", method: "PUT", path: "/nodes/pve/qemu/140/resize",
			json: `{"disk":"scsi0","size":"10GB"}`, status: 400, errs: map[string]string{"size": "value does not match the regex pattern"}},
		{name: "enum", src: js + "check_prop enum (qemu-server bios)", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":140,"bios":"uefi"}`,
			status: 400, errs: map[string]string{"bios": "value 'uefi' does not have a value in the enumeration 'seabios, ovmf'"}},
		{name: "requires", src: js + "check_object requires (pve-access-control API2/AccessControl.pm create_ticket path/privs)", method: "POST",
			path: "/access/ticket", auth: "none", json: `{"username":"root@pam","password":"x","path":"/"}`,
			status: 400, errs: map[string]string{"privs": "missing property required by 'path'"}},
		{name: "every error at once", src: js + "check_object collects all errors", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":"x","cores":"y","bios":"z"}`, status: 400, errs: map[string]string{
				"vmid": "type check ('integer') failed - got 'x'", "cores": "type check ('integer') failed - got 'y'",
				"bios": "value 'z' does not have a value in the enumeration 'seabios, ovmf'"}},
		{name: "conflicting URI parameter", src: "pve-manager PVE/HTTPServer.pm rest_handler", method: "POST", path: "/nodes/pve/qemu/140/status/start",
			json: `{"vmid":141}`, status: 400, errs: map[string]string{"vmid": "duplicate parameter (already defined in URI) with conflicting values!"}},
		{name: "array for a -list format is joined", src: "pve-common src/PVE/RESTHandler.pm $normalize_legacy_param_formats", method: "PUT",
			path: "/nodes/pve/qemu/140/config", form: "delete=foo&delete=1bad", status: 400,
			errs: map[string]string{"delete": "invalid format - invalid configuration ID '1bad'\n"}},

		// --- named formats of the endpoints the fake serves
		{name: "pve-vmid", src: js + "pve_verify_vmid", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":1000000000}`,
			status: 400, errs: map[string]string{"vmid": "invalid format - value does not look like a valid VM ID\n"}},
		{name: "pve-node", src: js + "pve_verify_node_name", method: "GET", path: "/cluster/mapping/pci?check-node=pve_1",
			status: 400, errs: map[string]string{"check-node": "invalid format - value does not look like a valid node name\n"}},
		{name: "pve-storage-id too short", src: js + "parse_storage_id/parse_id", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":140,"storage":"a"}`,
			status: 400, errs: map[string]string{"storage": "invalid format - storage ID 'a' cannot be shorter than 2 characters\n"}},
		{name: "pve-storage-id characters", src: js + "parse_id", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":140,"storage":"1local"}`,
			status: 400, errs: map[string]string{"storage": "invalid format - storage ID '1local' contains illegal characters\n"}},
		{name: "pve-configid-list", src: js + "pve_verify_configid (+ check_format -list, split_list)", method: "PUT", path: "/nodes/pve/qemu/140/config",
			json: `{"delete":"net0,1x"}`, status: 400, errs: map[string]string{"delete": "invalid format - invalid configuration ID '1x'\n"}},
		{name: "pve-tag-list", src: js + "pve_verify_tag", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":140,"tags":"llm;gpu!"}`,
			status: 400, errs: map[string]string{"tags": "invalid format - invalid characters in tag\n"}},
		{name: "dns-name", src: js + "pve_verify_dns_name", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":140,"name":"-vm"}`,
			status: 400, errs: map[string]string{"name": "invalid format - value does not look like a valid DNS name\n"}},
		{name: "urlencoded", src: js + "pve_verify_urlencoded", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":140,"sshkeys":"ssh-ed25519 AAAA"}`,
			status: 400, errs: map[string]string{"sshkeys": "invalid format - invalid urlencoded string: ssh-ed25519 AAAA\n"}},
		{name: "pve-poolid", src: "pve-access-control src/PVE/AccessControl.pm verify_poolname", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"pool":"a/b/c/d"}`, status: 400, errs: map[string]string{"pool": "invalid format - pool name 'a/b/c/d' nested too deeply (max levels = 3)\n"}},
		{name: "pve-startup-order", src: js + "pve_verify_startup_order", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":140,"startup":"first"}`,
			status: 400, errs: map[string]string{"startup": "invalid format - unable to parse startup options\n"}},
		{name: "pve-qm-bootdisk", src: "qemu-server src/PVE/QemuServer/Drive.pm verify_bootdisk", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"bootdisk":"scsi31"}`, status: 400, errs: map[string]string{"bootdisk": "invalid format - invalid boot disk 'scsi31'\n"}},
		{name: "pve-qm-boot order device", src: "qemu-server src/PVE/QemuServer.pm verify_bootdev", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"boot":"order=scsi0;efidisk0"}`, status: 400,
			errs: map[string]string{"boot": "invalid format - format error\nboot.order: invalid format - invalid boot device 'efidisk0'\n\n"}},
		{name: "pve-volume-id in cicustom", src: "pve-storage src/PVE/Storage/Plugin.pm parse_volume_id; qemu-server QemuServer.pm $cicustom_fmt", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"cicustom":"vendor=vendor.yaml"}`, status: 400,
			errs: map[string]string{"cicustom": "invalid format - format error\ncicustom.vendor: invalid format - unable to parse volume ID 'vendor.yaml'\n\n"}},
		{name: "indexed key out of range", src: "qemu-server src/PVE/QemuServer/PCI.pm $MAX_HOSTPCI_DEVICES = 16", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"hostpci16":"mapping=gpu0"}`, status: 400,
			errs: map[string]string{"hostpci16": "property is not defined in schema and the schema does not allow additional properties"}},

		// --- property strings (parse_property_string, check_object on the sub-keys)
		{name: "hostpci upper-case id", src: js + "check_prop pattern; qemu-server PCI.pm $PCIRE", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"hostpci0":"0000:0A:00"}`, status: 400,
			errs: map[string]string{"hostpci0": "invalid format - format error\nhostpci0.host: value does not match the regex pattern\n"}},
		{name: "unknown sub-key", src: js + "parse_property_string", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"hostpci0":"mapping=gpu0,foo=1"}`, status: 400,
			errs: map[string]string{"hostpci0": "invalid format - invalid key in comma-separated list property: foo\n"}},
		{name: "duplicate sub-key", src: js + "parse_property_string", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"net0":"virtio,bridge=vmbr0,bridge=vmbr1"}`, status: 400,
			errs: map[string]string{"net0": "invalid format - duplicate key in comma-separated list property: bridge\n"}},
		{name: "second value without key", src: js + "parse_property_string (default key)", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"net0":"virtio,e1000"}`, status: 400,
			errs: map[string]string{"net0": "invalid format - duplicate key in comma-separated list property: model\n"}},
		{name: "empty sub-key value", src: js + "parse_property_string", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"agent":"enabled="}`, status: 400,
			errs: map[string]string{"agent": "invalid format - missing key in comma-separated list property\n"}},
		{name: "no default key", src: js + "parse_property_string; qemu-server Network.pm $ipconfig_fmt", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"ipconfig0":"dhcp"}`, status: 400,
			errs: map[string]string{"ipconfig0": "invalid format - value without key, but schema does not define a default key\n"}},
		{name: "sub-key enum (default key)", src: js + "check_prop enum; qemu-server Network.pm $net_fmt model", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"net0":"virtio-net,bridge=vmbr0"}`, status: 400,
			errs: map[string]string{"net0": "invalid format - format error\nnet0.model: value 'virtio-net' does not have a value in the enumeration '" + netModels + "'\n"}},
		{name: "sub-key boolean", src: js + "parse_boolean, check_type", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"agent":"enabled=maybe"}`, status: 400,
			errs: map[string]string{"agent": "invalid format - format error\nagent.enabled: type check ('boolean') failed - got 'maybe'\n"}},
		{name: "sub-key minimum", src: js + "check_prop minimum; qemu-server Network.pm mtu", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"net0":"virtio,bridge=vmbr0,mtu=0"}`, status: 400,
			errs: map[string]string{"net0": "invalid format - format error\nnet0.mtu: value must have a minimum value of 1\n"}},
		{name: "memory property string", src: js + "check_prop minimum; qemu-server Memory.pm current min 16", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"memory":"8"}`, status: 400,
			errs: map[string]string{"memory": "invalid format - format error\nmemory.current: value must have a minimum value of 16\n"}},
		{name: "alias and target", src: js + "parse_property_string (alias); qemu-server agent freeze-fs-on-backup", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"agent":"1,freeze-fs=1,freeze-fs-on-backup=0"}`, status: 400,
			errs: map[string]string{"agent": "invalid format - key 'freeze-fs' is already defined (via alias)\n"}},
		{name: "key alias twice", src: js + "parse_property_string (keyAlias)", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"net0":"virtio=BC:24:11:00:00:01,e1000=BC:24:11:00:00:02"}`, status: 400,
			errs: map[string]string{"net0": "invalid format - key alias 'model' is already defined\n"}},
		{name: "mac-addr with the group bit", src: js + "pve_verify_mac_addr", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"net0":"virtio=01:24:11:00:00:01,bridge=vmbr0"}`, status: 400,
			errs: map[string]string{"net0": "invalid format - format error\nnet0.macaddr: invalid format - value does not look like a valid unicast MAC address\n\n"}},
		{name: "pve-bridge-id", src: js + "parse_bridge_id", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"net0":"virtio,bridge=vmbr0!"}`, status: 400,
			errs: map[string]string{"net0": "invalid format - format error\nnet0.bridge: invalid format - invalid bridge ID 'vmbr0!'\n\n"}},
		{name: "pve-ipv4-config", src: js + "pve_verify_ipv4_config", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"ipconfig0":"ip=192.168.0.140"}`, status: 400,
			errs: map[string]string{"ipconfig0": "invalid format - format error\nipconfig0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n"}},
		{name: "ipconfig gw requires ip", src: js + "check_object requires; qemu-server Network.pm $ipconfig_fmt gw", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"ipconfig0":"gw=192.168.0.1"}`, status: 400,
			errs: map[string]string{"ipconfig0": "invalid format - format error\nipconfig0.ip: missing property required by 'ipconfig0.gw'\n"}},
		{name: "drive volume", src: "qemu-server QemuServer.pm verify_volume_id_or_qm_path; pve-storage parse_volume_id", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"scsi0":"disk.raw"}`, status: 400,
			errs: map[string]string{"scsi0": "invalid format - format error\nscsi0.file: invalid format - unable to parse volume ID 'disk.raw'\n\n"}},
		{name: "drive disk-size", src: js + "pve_verify_disk_size", method: "POST", path: "/nodes/pve/qemu",
			json: `{"vmid":140,"scsi0":"local-lvm:vm-140-disk-0,size=10GB"}`, status: 400,
			errs: map[string]string{"scsi0": "invalid format - format error\nscsi0.size: invalid format - value does not look like a valid disk size: 10GB\n\n"}},

		// --- storage content rules (pve-storage parse_volname; qemu-server $check_storage_access / $check_drive_param)
		{name: "import of an .img", src: "pve-storage src/PVE/Storage/Plugin.pm parse_volname ($IMPORT_EXT_RE_1 = ova|ovf|qcow2|raw|vmdk)", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"scsi0":"local-lvm:0,import-from=local:import/noble-server-cloudimg-amd64.img"}`,
			status: 500, msg: "unable to parse directory volume name 'import/noble-server-cloudimg-amd64.img'"},
		{name: "import from an iso volume", src: "qemu-server src/PVE/API2/Qemu.pm $check_storage_access (import-from vtype)", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"scsi0":"local-lvm:0,import-from=` + DefaultISO + `"}`, status: 400,
			errs: map[string]string{"scsi0": DefaultISO + " has wrong type 'iso' - needs to be 'images' or 'import'"}},
		{name: "import-from needs STORAGE:0", src: "qemu-server src/PVE/API2/Qemu.pm $check_drive_param", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"scsi0":"local-lvm:8,import-from=` + DefaultCloudImage + `"}`, status: 400,
			errs: map[string]string{"scsi0": "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"}},
		{name: "efidisk import needs efitype", src: "qemu-server src/PVE/API2/Qemu.pm $check_drive_param", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"efidisk0":"local-lvm:0,import-from=` + DefaultCloudImage + `"}`, status: 400,
			errs: map[string]string{"efidisk0": "need to specify 'efitype' when using 'import-from'"}},
		{name: "template as a disk", src: "qemu-server src/PVE/API2/Qemu.pm $check_storage_access (vtype images or iso)", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"scsi1":"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}`, status: 400,
			errs: map[string]string{"scsi1": "content type needs to be 'images' or 'iso'"}},
		{name: "unknown directory file", src: "pve-storage src/PVE/Storage/Plugin.pm parse_volname", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"scsi1":"local:iso/readme.txt"}`, status: 500,
			msg: "unable to parse directory volume name 'iso/readme.txt'"},
		{name: "lvm-thin volume name", src: "pve-storage src/PVE/Storage/LvmThinPlugin.pm parse_volname", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"scsi1":"local-lvm:disk-1"}`, status: 500, msg: "unable to parse lvm volume name 'disk-1'"},
		{name: "storage without images", src: "qemu-server src/PVE/API2/Qemu.pm $check_storage_access", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"scsi0":"local:32"}`, status: 400,
			errs: map[string]string{"storage": "storage 'local' does not support vm images"}},
		{name: "storage missing", src: "pve-storage src/PVE/Storage.pm storage_config", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"scsi0":"nvme:32"}`, status: 500, msg: "storage 'nvme' does not exist"},
		{name: "iso without media=cdrom", src: "qemu-server src/PVE/API2/Qemu.pm $check_drive_param", method: "POST",
			path: "/nodes/pve/qemu", json: `{"vmid":140,"ide2":"` + DefaultISO + `"}`, status: 400,
			errs: map[string]string{"ide2": "explicit 'media=cdrom' is required for iso images"}},

		// --- route table
		{name: "path not in the API", src: "pve-manager PVE/HTTPServer.pm rest_handler (HTTP_NOT_IMPLEMENTED)", method: "GET", path: "/nodes/pve/qemu/140/foo",
			status: 501, msg: "Method 'GET /nodes/pve/qemu/140/foo' not implemented"},
		{name: "method not in the API", src: "pve-common src/PVE/RESTHandler.pm find_handler (no method info)", method: "POST", path: "/nodes/pve/qemu/140/config/x",
			json: `{}`, status: 501, msg: "Method 'POST /nodes/pve/qemu/140/config/x' not implemented"},
		{name: "schema operation not modelled is verified first", src: js + "validate (before the handler)", method: "GET",
			path: "/nodes/pve/lxc?foo=1", status: 400,
			errs: map[string]string{"foo": "property is not defined in schema and the schema does not allow additional properties"}},
		{name: "schema operation not modelled", src: "fakes/pve PARITY.md (a fake-only answer; PVE has a handler for every schema operation)",
			method: "GET", path: "/nodes/pve/lxc", status: NotModelledStatus,
			msg: NotModelledPrefix + " 'GET /nodes/pve/lxc' is in the PVE 9.1.3 API schema (GET /nodes/{node}/lxc, vmlist) but this fake does not model it"},
	}
}

func (v vrow) row() row {
	msg := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	r := row{name: v.name + " [" + v.src + "]", method: v.method, path: v.path, json: v.json, form: v.form, auth: v.auth, status: v.status, check: v.check}
	if v.errs != nil {
		b, _ := json.Marshal(v.errs)
		r.reason = "Parameter verification failed."
		r.body = str(`{"data":null,"errors":` + string(b) + `,"message":"Parameter verification failed.\n"}`)
	} else if v.msg != "" {
		r.reason = strings.SplitN(v.msg, "\n", 2)[0]
		r.body = str(`{"data":null,"message":` + msg(v.msg+"\n") + `}`)
	}
	return r
}

func TestValidationTable(t *testing.T) {
	rows := validationTable()
	if len(rows) < 40 {
		t.Fatalf("%d rows, the table must cover at least 40", len(rows))
	}
	var rs []row
	for _, v := range rows {
		if v.src == "" {
			t.Fatalf("row %q cites no source", v.name)
		}
		rs = append(rs, v.row())
	}
	e := newEnv(t)
	runTable(t, e, rs)
	// nothing refused may leave a VM behind
	if len(e.s.Snapshot().VMs) != 0 {
		t.Fatalf("a refused create left state: %+v", e.s.Snapshot().VMs)
	}
}

// TestStoredAsPVEPrints: what create stores is what qemu-server prints back (print_drive,
// print_net: default key first, then the other keys sorted; netN gets a MAC; new disks a volume
// and size=).
func TestStoredAsPVEPrints(t *testing.T) {
	e := newEnv(t)
	rs := []row{
		{name: "create", method: "POST", path: "/nodes/pve/qemu", status: 200, taskType: "qmcreate", exit: "OK",
			json: `{"vmid":150,"net0":"bridge=vmbr0,firewall=1,model=virtio","scsi0":"local-lvm:1,iothread=on,discard=on","agent":"enabled=yes","tags":"LLM gpu;aimachine,llm",` +
				`"scsi1":"local-lvm:0,import-from=` + DefaultCloudImage + `,ssd=1"}`},
		{name: "config", method: "GET", path: "/nodes/pve/qemu/150/config", status: 200, check: func(t *testing.T, m map[string]any) {
			c := dataOf(t, m).(map[string]any)
			if !regexp.MustCompile(`^virtio=[0-9A-F]{2}(:[0-9A-F]{2}){5},bridge=vmbr0,firewall=1$`).MatchString(c["net0"].(string)) {
				t.Errorf("net0 %q, want virtio=MAC,bridge=vmbr0,firewall=1 (qemu-server Network.pm print_net)", c["net0"])
			}
			// qemu-server print_drive: file, then sorted keys; booleans as 1/0 (parse_boolean); size by format_size
			if c["scsi0"] != "local-lvm:vm-150-disk-0,discard=on,iothread=1,size=1G" {
				t.Errorf("scsi0 %q", c["scsi0"])
			}
			if c["scsi1"] != "local-lvm:vm-150-disk-1,size=3584M,ssd=1" {
				t.Errorf("scsi1 %q", c["scsi1"])
			}
			// pve-guest-common GuestHelpers.pm get_unique_tags (default tag-style)
			if c["tags"] != "aimachine;gpu;llm" {
				t.Errorf("tags %q", c["tags"])
			}
		}},
	}
	runTable(t, e, rs)
}

// TestStorageListsWhatPVERecognises: a dir storage lists only file names its plugin parses
// (pve-storage Plugin.pm list_volumes/parse_volname): an .img under import/ is not an import volume.
func TestStorageListsWhatPVERecognises(t *testing.T) {
	top := DefaultTopology()
	top.Storages[0].Volumes = append(top.Storages[0].Volumes,
		VolumeSpec{VolID: "local:import/noble-server-cloudimg-amd64.img", Format: "qcow2", Size: 1 << 20},
		VolumeSpec{VolID: "local:import/disk.raw", Format: "raw", Size: 1 << 20})
	e := newEnv(t, WithTopology(top))
	runTable(t, e, []row{{name: "import content", method: "GET", path: "/nodes/pve/storage/local/content?content=import", status: 200,
		check: func(t *testing.T, m map[string]any) {
			var ids []string
			for _, v := range dataOf(t, m).([]any) {
				ids = append(ids, v.(map[string]any)["volid"].(string))
			}
			if strings.Join(ids, " ") != "local:import/disk.raw "+DefaultCloudImage {
				t.Errorf("listed %v", ids)
			}
		}}})
}
