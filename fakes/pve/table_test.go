package pve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

// row is one request of the endpoint table: method, path, body -> status, reason, body.
type row struct {
	name   string
	method string
	path   string // under /api2/json; {upid} = last UPID, {pid} = last agent pid, {digest} = last config digest
	json   string // JSON body
	form   string // form body
	auth   string // "" token, "space" token with a space separator, "none", "bad", "ticket", "ticket-nocsrf"
	status int
	reason string
	// body checks: exact JSON of the whole answer ("" = empty body), or a check of the decoded answer
	body  *string
	check func(t *testing.T, m map[string]any)
	// task: the answer is a UPID of this type whose exitstatus must be this
	taskType, exit string
}

func str(s string) *string { return &s }

var reUPIDTest = regexp.MustCompile(`^UPID:pve:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:([a-z]+):(\d*):root@pam(!aimachine)?:$`)

func dataOf(t *testing.T, m map[string]any) any {
	t.Helper()
	d, ok := m["data"]
	if !ok {
		t.Fatalf("no data key: %v", m)
	}
	return d
}

func wantKeys(t *testing.T, obj map[string]any, typed map[string]string) {
	t.Helper()
	for k, typ := range typed {
		v, ok := obj[k]
		if !ok {
			t.Errorf("key %q missing in %v", k, obj)
			continue
		}
		if got := jsonType(v); got != typ {
			t.Errorf("key %q: JSON type %s, want %s (value %v)", k, got, typ, v)
		}
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case float64, json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func endpointTable(key string) []row {
	enc := url.QueryEscape(proxmox.EncodeSSHKeys(key)) // form bodies carry it encoded twice (bpg)
	msg := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	die := func(text string) *string { return str(`{"data":null,"message":` + msg(text+"\n") + `}`) }
	perr := func(errs string) *string {
		return str(`{"data":null,"errors":` + errs + `,"message":"Parameter verification failed.\n"}`)
	}
	return []row{
		{name: "version", method: "GET", path: "/version", status: 200,
			body: str(`{"data":{"version":"8.4.1","release":"8.4","repoid":"2a5fa54a8503f96d"}}`)},
		{name: "no credentials", method: "GET", path: "/version", auth: "none", status: 401, reason: "No ticket", body: str("")},
		{name: "bad token", method: "GET", path: "/version", auth: "bad", status: 401, reason: "Authentication failed!", body: str("")},
		{name: "token with space separator", method: "GET", path: "/version", auth: "space", status: 200},
		{name: "ticket login (form)", method: "POST", path: "/access/ticket", auth: "none",
			form: "username=root%40pam&password=" + url.QueryEscape(DefaultRootPassword), status: 200,
			check: func(t *testing.T, m map[string]any) {
				d := dataOf(t, m).(map[string]any)
				wantKeys(t, d, map[string]string{"username": "string", "ticket": "string", "CSRFPreventionToken": "string", "cap": "object"})
			}},
		{name: "ticket wrong password", method: "POST", path: "/access/ticket", auth: "none", json: `{"username":"root@pam","password":"x"}`,
			status: 401, reason: "authentication failure", body: die("authentication failure")},
		{name: "ticket GET works", method: "GET", path: "/version", auth: "ticket", status: 200},
		{name: "ticket write without CSRF", method: "POST", path: "/nodes/pve/qemu", auth: "ticket-nocsrf", json: `{"vmid":140}`,
			status: 401, reason: "Permission denied - invalid csrf token", body: str("")},
		{name: "nodes", method: "GET", path: "/nodes", status: 200, check: func(t *testing.T, m map[string]any) {
			n := dataOf(t, m).([]any)[0].(map[string]any)
			wantKeys(t, n, map[string]string{"node": "string", "status": "string", "type": "string", "id": "string", "level": "string",
				"ssl_fingerprint": "string", "cpu": "number", "maxcpu": "number", "mem": "number", "maxmem": "number", "uptime": "number"})
		}},
		{name: "node status", method: "GET", path: "/nodes/pve/status", status: 200, check: func(t *testing.T, m map[string]any) {
			d := dataOf(t, m).(map[string]any)
			wantKeys(t, d, map[string]string{"loadavg": "array", "cpuinfo": "object", "memory": "object", "pveversion": "string", "uptime": "number", "wait": "number"})
			wantKeys(t, d["cpuinfo"].(map[string]any), map[string]string{"hvm": "string", "mhz": "string", "user_hz": "number", "cpus": "number"})
			if jsonType(d["loadavg"].([]any)[0]) != "string" {
				t.Error("loadavg must hold strings")
			}
		}},
		{name: "unknown node", method: "GET", path: "/nodes/xyz/status", status: 500,
			reason: "hostname lookup 'xyz' failed - failed to get address info for: xyz: Name or service not known",
			body:   die("hostname lookup 'xyz' failed - failed to get address info for: xyz: Name or service not known")},
		{name: "cluster status (standalone)", method: "GET", path: "/cluster/status", status: 200,
			body: str(`{"data":[{"type":"node","name":"pve","id":"node/pve","ip":"192.168.0.10","level":"","online":1,"local":1,"nodeid":0}]}`)},
		{name: "resources vm (none)", method: "GET", path: "/cluster/resources?type=vm", status: 200, body: str(`{"data":[]}`)},
		{name: "resources bad type", method: "GET", path: "/cluster/resources?type=lxc", status: 400, reason: "Parameter verification failed.",
			body: perr(`{"type":"value 'lxc' does not have a value in the enumeration 'vm, storage, node, sdn'"}`)},
		{name: "nextid", method: "GET", path: "/cluster/nextid", status: 200, body: str(`{"data":"100"}`)},
		{name: "nextid vmid not integer", method: "GET", path: "/cluster/nextid?vmid=abc", status: 400, reason: "Parameter verification failed.",
			body: perr(`{"vmid":"type check ('integer') failed - got 'abc'"}`)},
		{name: "mapping create", method: "POST", path: "/cluster/mapping/pci",
			json: `{"id":"gpu0","map":["node=pve,path=0000:01:00,id=10de:2d04,iommugroup=12"],"description":"RTX 5060 Ti"}`, status: 200, body: str(`{"data":null}`)},
		{name: "mapping create duplicate", method: "POST", path: "/cluster/mapping/pci",
			json: `{"id":"gpu0","map":["node=pve,path=0000:01:00,id=10de:2d04"]}`, status: 500, reason: "pci ID 'gpu0' already defined",
			body: die("pci ID 'gpu0' already defined")},
		{name: "mapping list", method: "GET", path: "/cluster/mapping/pci?check-node=pve", status: 200, check: func(t *testing.T, m map[string]any) {
			l := dataOf(t, m).([]any)
			e := l[0].(map[string]any)
			wantKeys(t, e, map[string]string{"id": "string", "description": "string", "map": "array", "digest": "string", "checks": "array"})
			if len(l) != 1 || len(e["checks"].([]any)) != 0 {
				t.Errorf("mappings %v", l)
			}
		}},
		{name: "mapping get", method: "GET", path: "/cluster/mapping/pci/gpu0", status: 200, check: func(t *testing.T, m map[string]any) {
			d := dataOf(t, m).(map[string]any)
			wantKeys(t, d, map[string]string{"map": "array", "digest": "string"})
			if _, ok := d["id"]; ok {
				t.Error("GET mapping/pci/{id} returns the section without id")
			}
		}},
		{name: "pci list (default class blacklist)", method: "GET", path: "/nodes/pve/hardware/pci", status: 200, check: func(t *testing.T, m map[string]any) {
			devs := dataOf(t, m).([]any)
			if len(devs) != 4 {
				t.Fatalf("want 4 devices without the 06 host bridge, got %d", len(devs))
			}
			gpu := devs[0].(map[string]any)
			wantKeys(t, gpu, map[string]string{"id": "string", "class": "string", "vendor": "string", "device": "string", "iommugroup": "number",
				"vendor_name": "string", "device_name": "string"})
			if gpu["id"] != DefaultGPUID || gpu["device"] != "0x2d04" || gpu["iommugroup"] != 12.0 {
				t.Errorf("gpu %v", gpu)
			}
			if _, has := gpu["mdev"]; has {
				t.Error("vfio GPU must not carry mdev")
			}
		}},
		{name: "pci list (no blacklist)", method: "GET", path: "/nodes/pve/hardware/pci?pci-class-blacklist=", status: 200, check: func(t *testing.T, m map[string]any) {
			if n := len(dataOf(t, m).([]any)); n != 5 {
				t.Fatalf("want 5, got %d", n)
			}
		}},
		{name: "pci device index", method: "GET", path: "/nodes/pve/hardware/pci/0000:01:00.0", status: 200, body: str(`{"data":[{"method":"mdev"}]}`)},
		{name: "pci mdev", method: "GET", path: "/nodes/pve/hardware/pci/0000:01:00.0/mdev", status: 200, body: str(`{"data":[]}`)},
		{name: "storage list", method: "GET", path: "/nodes/pve/storage", status: 200, check: func(t *testing.T, m map[string]any) {
			l := dataOf(t, m).([]any)
			if len(l) != 2 {
				t.Fatalf("want 2 storages, got %d", len(l))
			}
			wantKeys(t, l[0].(map[string]any), map[string]string{"storage": "string", "type": "string", "content": "string", "active": "number",
				"enabled": "number", "shared": "number", "avail": "number", "used": "number", "total": "number", "used_fraction": "number"})
		}},
		{name: "storage status", method: "GET", path: "/nodes/pve/storage/local-lvm/status", status: 200, check: func(t *testing.T, m map[string]any) {
			d := dataOf(t, m).(map[string]any)
			if d["type"] != "lvmthin" || d["content"] != "images,rootdir" {
				t.Errorf("status %v", d)
			}
		}},
		{name: "storage missing", method: "GET", path: "/nodes/pve/storage/nvme/status", status: 500,
			reason: "storage 'nvme' does not exist", body: die("storage 'nvme' does not exist")},
		{name: "storage content iso", method: "GET", path: "/nodes/pve/storage/local/content?content=iso", status: 200, check: func(t *testing.T, m map[string]any) {
			l := dataOf(t, m).([]any)
			if len(l) != 1 || l[0].(map[string]any)["volid"] != DefaultISO {
				t.Fatalf("iso content %v", l)
			}
			wantKeys(t, l[0].(map[string]any), map[string]string{"volid": "string", "format": "string", "size": "number", "ctime": "number", "content": "string"})
		}},
		{name: "volume attributes", method: "GET", path: "/nodes/pve/storage/local/content/" + DefaultISO, status: 200, check: func(t *testing.T, m map[string]any) {
			d := dataOf(t, m).(map[string]any)
			wantKeys(t, d, map[string]string{"path": "string", "size": "number", "used": "number", "format": "string"})
			if _, ok := d["volid"]; ok {
				t.Error("volume attributes carry no volid")
			}
		}},
		{name: "qemu list empty", method: "GET", path: "/nodes/pve/qemu", status: 200, body: str(`{"data":[]}`)},
		{name: "create missing vmid", method: "POST", path: "/nodes/pve/qemu", json: `{"name":"x"}`, status: 400, reason: "Parameter verification failed.",
			body: perr(`{"vmid":"property is missing and it is not optional"}`)},
		// pve-common JSONSchema.pm check_prop runs the format (pve_verify_vmid: /^[1-9][0-9]{2,8}$/)
		// before minimum, so 99 never reaches "value must have a minimum value of 100"
		{name: "create vmid below 100", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":99}`, status: 400, reason: "Parameter verification failed.",
			body: perr(`{"vmid":"invalid format - value does not look like a valid VM ID\n"}`)},
		{name: "create raw hostpci as token", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":140,"hostpci0":"0000:01:00"}`, status: 500,
			reason: "only root can set 'hostpci0' config for non-mapped devices", body: die("only root can set 'hostpci0' config for non-mapped devices")},
		{name: "create (form body, token, mapping)", method: "POST", path: "/nodes/pve/qemu",
			form: "vmid=140&name=vm-llm-aimachine&machine=q35&cores=32&sockets=1&cpu=host&memory=51200&balloon=0&onboot=1&agent=enabled%3D1" +
				"&scsihw=virtio-scsi-single&scsi0=" + url.QueryEscape("local-lvm:0,import-from="+DefaultCloudImage+",iothread=1,discard=on") +
				"&ide2=local-lvm%3Acloudinit&ciuser=ubuntu&sshkeys=" + enc + "&ipconfig0=" + url.QueryEscape("ip=192.168.0.140/24,gw=192.168.0.1") +
				"&net0=" + url.QueryEscape("virtio,bridge=vmbr0") + "&hostpci0=" + url.QueryEscape("mapping=gpu0,pcie=1") +
				"&cicustom=" + url.QueryEscape("vendor="+DefaultVendorSnippet),
			status: 200, taskType: "qmcreate", exit: "OK"},
		{name: "create exists", method: "POST", path: "/nodes/pve/qemu", json: `{"vmid":140}`, status: 500,
			reason: "unable to create VM 140 - VM 140 already exists on node 'pve'", body: die("unable to create VM 140 - VM 140 already exists on node 'pve'")},
		{name: "nextid taken", method: "GET", path: "/cluster/nextid?vmid=140", status: 400, reason: "Parameter verification failed.",
			body: perr(`{"vmid":"VM 140 already exists"}`)},
		{name: "config", method: "GET", path: "/nodes/pve/qemu/140/config", status: 200, check: func(t *testing.T, m map[string]any) {
			d := dataOf(t, m).(map[string]any)
			wantKeys(t, d, map[string]string{"cores": "number", "sockets": "number", "balloon": "number", "onboot": "number", "memory": "string",
				"agent": "string", "digest": "string", "sshkeys": "string", "scsi0": "string", "ide2": "string", "net0": "string", "hostpci0": "string",
				"meta": "string", "smbios1": "string", "vmgenid": "string", "boot": "string"})
			for _, k := range []string{"vmid", "template", "lock"} {
				if _, ok := d[k]; ok {
					t.Errorf("config must not carry %q", k)
				}
			}
			if d["scsi0"] != "local-lvm:vm-140-disk-0,discard=on,iothread=1,size=3584M" || d["ide2"] != "local-lvm:vm-140-cloudinit,media=cdrom" {
				t.Errorf("disks %v %v", d["scsi0"], d["ide2"])
			}
			if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(d["digest"].(string)) {
				t.Errorf("digest %v", d["digest"])
			}
		}},
		{name: "config PUT", method: "PUT", path: "/nodes/pve/qemu/140/config", json: `{"description":"LLM server","digest":"{digest}"}`, status: 200, body: str(`{"data":null}`)},
		{name: "config PUT stale digest", method: "PUT", path: "/nodes/pve/qemu/140/config", json: `{"description":"x","digest":"{digest}"}`, status: 500,
			// update_vm_api's own message (qemu-server src/PVE/API2/Qemu.pm, $load_and_check_config),
			// not PVE::Tools::assert_if_modified's, which only resize/move-disk use.
			reason: "checksum mismatch (file change by other user?)",
			body:   die("checksum mismatch (file change by other user?)")},
		{name: "config POST (async)", method: "POST", path: "/nodes/pve/qemu/140/config", json: `{"tags":"llm"}`, status: 200, taskType: "qmconfig", exit: "OK"},
		// qemu-server API2/Qemu.pm vm_pending + pve-guest-common GuestHelpers::config_with_pending_array
		{name: "pending", method: "GET", path: "/nodes/pve/qemu/140/pending", status: 200, check: func(t *testing.T, m map[string]any) {
			keys := map[string]bool{}
			for _, it := range dataOf(t, m).([]any) {
				o := it.(map[string]any)
				if len(o) != 2 || o["key"] == nil {
					t.Errorf("item %v: want {key, value}", o)
				}
				keys[o["key"].(string)] = true
			}
			if !keys["digest"] || !keys["tags"] || keys["vmid"] {
				t.Errorf("keys %v: load_config has digest, no vmid", keys)
			}
		}},
		// pve-ha-manager API2/HA/Resources.pm read: parse_sid, then $api_copy_config
		{name: "ha resource (none configured)", method: "GET", path: "/cluster/ha/resources/140", status: 500,
			reason: "no such resource 'vm:140'", body: die("no such resource 'vm:140'")},
		// pve-ha-manager HA/Tools.pm pve_verify_ha_resource_or_vm_id (the sid format) rejects it first;
		// pve-common JSONSchema.pm check_format prefixes "invalid format - "
		{name: "ha resource bad sid", method: "GET", path: "/cluster/ha/resources/x", status: 400, reason: "Parameter verification failed.",
			body: perr(`{"sid":"invalid format - value does not look like a valid ha resource id\n"}`)},
		// pve-access-control API2/AccessControl.pm permissions; RPCEnvironment get_effective_permissions
		{name: "permissions", method: "GET", path: "/access/permissions", status: 200, check: func(t *testing.T, m map[string]any) {
			d := dataOf(t, m).(map[string]any)
			root, _ := d["/"].(map[string]any)
			if len(d) != 8 || root["Permissions.Modify"] != 1.0 || root["Sys.Modify"] != 1.0 {
				t.Errorf("permissions %v", d)
			}
		}},
		{name: "config delete raw hostpci as token (none set: ok)", method: "PUT", path: "/nodes/pve/qemu/140/config", json: `{"delete":"hostpci1"}`, status: 200, body: str(`{"data":null}`)},
		{name: "resize", method: "PUT", path: "/nodes/pve/qemu/140/resize", json: `{"disk":"scsi0","size":"500G"}`, status: 200, taskType: "resize", exit: "OK"},
		{name: "resize bad size", method: "PUT", path: "/nodes/pve/qemu/140/resize", json: `{"disk":"scsi0","size":"big"}`, status: 400,
			reason: "Parameter verification failed.", body: perr(`{"size":"value does not match the regex pattern"}`)},
		{name: "resize shrink", method: "PUT", path: "/nodes/pve/qemu/140/resize", json: `{"disk":"scsi0","size":"10G"}`, status: 200,
			taskType: "resize", exit: "shrinking disks is not supported"},
		{name: "resize missing disk", method: "PUT", path: "/nodes/pve/qemu/140/resize", json: `{"disk":"scsi5","size":"+1G"}`, status: 200,
			taskType: "resize", exit: "disk 'scsi5' does not exist"},
		{name: "status stopped", method: "GET", path: "/nodes/pve/qemu/140/status/current", status: 200, check: func(t *testing.T, m map[string]any) {
			d := dataOf(t, m).(map[string]any)
			wantKeys(t, d, map[string]string{"vmid": "number", "status": "string", "qmpstatus": "string", "cpus": "number", "maxmem": "number",
				"maxdisk": "number", "agent": "number", "ha": "object", "tags": "string"})
			if d["maxmem"] != 53687091200.0 || d["maxdisk"] != 536870912000.0 || d["status"] != "stopped" {
				t.Errorf("status %v", d)
			}
			if _, ok := d["pid"]; ok {
				t.Error("stopped VM has no pid")
			}
		}},
		{name: "agent on stopped VM", method: "POST", path: "/nodes/pve/qemu/140/agent/ping", status: 500, reason: "VM 140 is not running",
			body: die("VM 140 is not running")},
		{name: "start", method: "POST", path: "/nodes/pve/qemu/140/status/start", status: 200, taskType: "qmstart", exit: "OK"},
		{name: "start running", method: "POST", path: "/nodes/pve/qemu/140/status/start", status: 200, taskType: "qmstart", exit: "VM 140 already running"},
		{name: "task status", method: "GET", path: "/nodes/pve/tasks/{upid}/status", status: 200, check: func(t *testing.T, m map[string]any) {
			d := dataOf(t, m).(map[string]any)
			wantKeys(t, d, map[string]string{"upid": "string", "pid": "number", "pstart": "number", "starttime": "number", "type": "string",
				"id": "string", "user": "string", "tokenid": "string", "status": "string", "exitstatus": "string"})
			if d["user"] != "root@pam" || d["tokenid"] != "aimachine" || d["status"] != "stopped" || d["exitstatus"] != "VM 140 already running" {
				t.Errorf("task status %v", d)
			}
			if _, ok := d["endtime"]; ok {
				t.Error("task status has no endtime")
			}
		}},
		{name: "task log", method: "GET", path: "/nodes/pve/tasks/{upid}/log?start=0&limit=50", status: 200,
			body: str(`{"data":[{"n":1,"t":"TASK ERROR: VM 140 already running"}],"total":1}`)},
		{name: "task log past end", method: "GET", path: "/nodes/pve/tasks/{upid}/log?start=5", status: 200, body: str(`{"data":[],"total":1}`)},
		{name: "task bad upid", method: "GET", path: "/nodes/pve/tasks/UPID:pve:1:2:3/status", status: 400, reason: "Parameter verification failed.",
			body: perr(`{"upid":"unable to parse worker upid"}`)},
		{name: "task unknown upid", method: "GET", path: "/nodes/pve/tasks/UPID:pve:0000FFFF:00000001:00000001:qmstart:140:root@pam:/status", status: 400,
			reason: "Parameter verification failed.", body: perr(`{"upid":"no such task"}`)},
		{name: "task stop (finished)", method: "DELETE", path: "/nodes/pve/tasks/{upid}", status: 200, body: str(`{"data":null}`)},
		{name: "status running", method: "GET", path: "/nodes/pve/qemu/140/status/current", status: 200, check: func(t *testing.T, m map[string]any) {
			d := dataOf(t, m).(map[string]any)
			wantKeys(t, d, map[string]string{"pid": "number", "uptime": "number", "running-machine": "string", "running-qemu": "string", "qmpstatus": "string"})
			if d["qmpstatus"] != "running" || !strings.HasPrefix(d["running-machine"].(string), "pc-q35-") {
				t.Errorf("status %v", d)
			}
		}},
		{name: "resources vm", method: "GET", path: "/cluster/resources?type=vm", status: 200, check: func(t *testing.T, m map[string]any) {
			r := dataOf(t, m).([]any)[0].(map[string]any)
			wantKeys(t, r, map[string]string{"id": "string", "vmid": "number", "template": "number", "status": "string", "maxmem": "number"})
		}},
		{name: "qemu list", method: "GET", path: "/nodes/pve/qemu", status: 200, check: func(t *testing.T, m map[string]any) {
			r := dataOf(t, m).([]any)[0].(map[string]any)
			wantKeys(t, r, map[string]string{"vmid": "number", "pid": "number", "status": "string"})
			if _, ok := r["template"]; ok {
				t.Error("no template key for a VM")
			}
		}},
		{name: "agent ping", method: "POST", path: "/nodes/pve/qemu/140/agent/ping", status: 200, body: str(`{"data":{"result":{}}}`)},
		{name: "agent osinfo", method: "GET", path: "/nodes/pve/qemu/140/agent/get-osinfo", status: 200, check: func(t *testing.T, m map[string]any) {
			wantKeys(t, dataOf(t, m).(map[string]any)["result"].(map[string]any), map[string]string{"id": "string", "version-id": "string", "kernel-release": "string"})
		}},
		{name: "agent host name", method: "GET", path: "/nodes/pve/qemu/140/agent/get-host-name", status: 200,
			body: str(`{"data":{"result":{"host-name":"vm-llm-aimachine"}}}`)},
		{name: "agent interfaces", method: "GET", path: "/nodes/pve/qemu/140/agent/network-get-interfaces", status: 200, check: func(t *testing.T, m map[string]any) {
			l := dataOf(t, m).(map[string]any)["result"].([]any)
			if len(l) != 2 || l[0].(map[string]any)["name"] != "lo" {
				t.Fatalf("interfaces %v", l)
			}
			ip := l[1].(map[string]any)["ip-addresses"].([]any)[0].(map[string]any)
			wantKeys(t, ip, map[string]string{"ip-address": "string", "ip-address-type": "string", "prefix": "number"})
		}},
		{name: "agent exec (form, repeated command)", method: "POST", path: "/nodes/pve/qemu/140/agent/exec", form: "command=cat&command=%2Fetc%2Fhostname",
			status: 200, check: func(t *testing.T, m map[string]any) {
				wantKeys(t, dataOf(t, m).(map[string]any), map[string]string{"pid": "number"})
			}},
		{name: "agent exec-status", method: "GET", path: "/nodes/pve/qemu/140/agent/exec-status?pid={pid}", status: 200,
			body: str(`{"data":{"exited":1,"exitcode":0,"out-data":"vm-llm-aimachine\n"}}`)},
		{name: "agent exec-status without pid", method: "GET", path: "/nodes/pve/qemu/140/agent/exec-status", status: 400,
			reason: "Parameter verification failed.", body: perr(`{"pid":"property is missing and it is not optional"}`)},
		{name: "agent exec unknown program", method: "POST", path: "/nodes/pve/qemu/140/agent/exec", json: `{"command":["nvidia-smi"]}`, status: 500,
			reason: "Agent error: Failed to execute child process \u201cnvidia-smi\u201d (No such file or directory)",
			body:   die("Agent error: Failed to execute child process \u201cnvidia-smi\u201d (No such file or directory)")},
		{name: "agent file-read", method: "GET", path: "/nodes/pve/qemu/140/agent/file-read?file=%2Fetc%2Fhostname", status: 200,
			body: str(`{"data":{"content":"vm-llm-aimachine\n"}}`)},
		{name: "destroy running", method: "DELETE", path: "/nodes/pve/qemu/140", status: 500, reason: "VM 140 is running - destroy failed",
			body: die("VM 140 is running - destroy failed")},
		{name: "reboot", method: "POST", path: "/nodes/pve/qemu/140/status/reboot", status: 200, taskType: "qmreboot", exit: "OK"},
		{name: "reset", method: "POST", path: "/nodes/pve/qemu/140/status/reset", status: 200, taskType: "qmreset", exit: "OK"},
		{name: "shutdown", method: "POST", path: "/nodes/pve/qemu/140/status/shutdown", status: 200, taskType: "qmshutdown", exit: "OK"},
		{name: "shutdown stopped", method: "POST", path: "/nodes/pve/qemu/140/status/shutdown", status: 200, taskType: "qmshutdown", exit: "VM 140 not running"},
		{name: "stop stopped", method: "POST", path: "/nodes/pve/qemu/140/status/stop", status: 200, taskType: "qmstop", exit: "OK"},
		{name: "skiplock as token", method: "POST", path: "/nodes/pve/qemu/140/status/stop", json: `{"skiplock":1}`, status: 400,
			reason: "Parameter verification failed.", body: perr(`{"skiplock":"Only root may use this option."}`)},
		{name: "delete with a body", method: "DELETE", path: "/nodes/pve/qemu/140", json: `{"purge":1}`, status: 501,
			reason: "Unexpected content for method 'DELETE'", body: die("Unexpected content for method 'DELETE'")},
		{name: "destroy", method: "DELETE", path: "/nodes/pve/qemu/140?purge=1&destroy-unreferenced-disks=1", status: 200, taskType: "qmdestroy", exit: "OK"},
		{name: "destroy missing", method: "DELETE", path: "/nodes/pve/qemu/140?", status: 500,
			reason: "Configuration file 'nodes/pve/qemu-server/140.conf' does not exist", body: die("Configuration file 'nodes/pve/qemu-server/140.conf' does not exist")},
		{name: "config missing", method: "GET", path: "/nodes/pve/qemu/140/config", status: 500,
			reason: "Configuration file 'nodes/pve/qemu-server/140.conf' does not exist", body: die("Configuration file 'nodes/pve/qemu-server/140.conf' does not exist")},
		{name: "ha resource of a missing VM", method: "GET", path: "/cluster/ha/resources/140", status: 500,
			reason: "unable to detect SID from VMID - VM/CT 140 does not exist", body: die("unable to detect SID from VMID - VM/CT 140 does not exist")},
		{name: "start missing (task)", method: "POST", path: "/nodes/pve/qemu/140/status/start", status: 200, taskType: "qmstart",
			exit: "Configuration file 'nodes/pve/qemu-server/140.conf' does not exist"},
		{name: "volumes freed", method: "GET", path: "/nodes/pve/storage/local-lvm/content", status: 200, body: str(`{"data":[]}`)},
		{name: "mapping delete", method: "DELETE", path: "/cluster/mapping/pci/gpu0", status: 200, body: str(`{"data":null}`)},
		{name: "unknown path", method: "GET", path: "/nodes/pve/foo", status: 501, reason: "Method 'GET /nodes/pve/foo' not implemented",
			body: die("Method 'GET /nodes/pve/foo' not implemented")},
		{name: "unknown method", method: "PUT", path: "/version", json: `{}`, status: 501, reason: "Method 'PUT /version' not implemented",
			body: die("Method 'PUT /version' not implemented")},
	}
}

// runTable sends every row and returns how many requests each "METHOD path" got.
func runTable(t *testing.T, e *testEnv, rows []row) map[string]int {
	t.Helper()
	var lastUPID, lastPID, lastDigest, ticket, csrf string
	sent := map[string]int{}
	for _, r := range rows {
		path := strings.NewReplacer("{upid}", lastUPID, "{pid}", lastPID).Replace(r.path)
		var body io.Reader
		ctype := ""
		jsonBody := strings.ReplaceAll(r.json, "{digest}", lastDigest)
		switch {
		case r.json != "":
			body, ctype = strings.NewReader(jsonBody), "application/json"
		case r.form != "":
			body, ctype = strings.NewReader(r.form), "application/x-www-form-urlencoded"
		}
		req, err := http.NewRequest(r.method, e.ts.URL+"/api2/json"+path, body)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		switch r.auth {
		case "":
			req.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
		case "space":
			req.Header.Set("Authorization", "PVEAPIToken "+DefaultTokenID+"="+DefaultTokenSecret)
		case "bad":
			req.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"=00000000-0000-0000-0000-000000000000")
		case "ticket", "ticket-nocsrf":
			req.AddCookie(&http.Cookie{Name: "PVEAuthCookie", Value: ticket})
			if r.auth == "ticket" {
				req.Header.Set("CSRFPreventionToken", csrf)
			}
		}
		u, _ := url.Parse(path)
		sent[r.method+" "+u.Path]++
		res, err := e.hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Run(r.name, func(t *testing.T) {
			if res.StatusCode != r.status {
				t.Fatalf("status %q, want %d (body %s)", res.Status, r.status, raw)
			}
			if res.Header.Get("Server") != "pve-api-daemon/3.0" {
				t.Errorf("Server header %q", res.Header.Get("Server"))
			}
			if r.status >= 400 {
				if want := fmt.Sprintf("%d %s", r.status, r.reason); res.Status != want {
					t.Errorf("status line %q, want %q", res.Status, want)
				}
				if !res.Close {
					t.Error("keep-alive must be dropped for status >= 400")
				}
			}
			if r.body != nil {
				if *r.body == "" {
					if len(raw) != 0 {
						t.Errorf("body %q, want empty", raw)
					}
				} else if !jsonEqual(raw, []byte(*r.body)) {
					t.Errorf("body\n got  %s\n want %s", raw, *r.body)
				}
			}
			if len(raw) == 0 {
				return
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("body is not JSON: %s", raw)
			}
			if r.check != nil {
				r.check(t, m)
			}
			if r.taskType != "" {
				upid, _ := m["data"].(string)
				mm := reUPIDTest.FindStringSubmatch(upid)
				if mm == nil || mm[1] != r.taskType {
					t.Fatalf("UPID %q, want type %s", upid, r.taskType)
				}
				exit, err := e.s.WaitTask(upid, 10*time.Second)
				if err != nil || exit != r.exit {
					t.Fatalf("task exit %q (%v), want %q", exit, err, r.exit)
				}
			}
		})
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		switch d := m["data"].(type) {
		case string:
			if strings.HasPrefix(d, "UPID:") {
				lastUPID = d
				_, _ = e.s.WaitTask(d, 10*time.Second)
			}
		case map[string]any:
			if p, ok := d["pid"].(float64); ok && strings.HasSuffix(path, "/agent/exec") {
				lastPID = fmt.Sprint(int(p))
			}
			if dg, ok := d["digest"].(string); ok {
				lastDigest = dg
			}
			if tk, ok := d["ticket"].(string); ok {
				ticket, csrf = tk, d["CSRFPreventionToken"].(string)
			}
		}
	}
	return sent
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

func TestEndpointTable(t *testing.T) {
	e := newEnv(t, WithGuestFactory(NewStaticGuestFactory()))
	runTable(t, e, endpointTable(testKey(t, "alice@laptop")))
}
