package pve

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Tests of the endpoints aimachine doctor and prepare use: /access/permissions, download-url,
// cluster/status quorum (sources cited on each handler and in access.go / download.go).

const (
	lpToken  = "aimachine@pve!deploy"
	lpSecret = "lp-secret"
)

// leastPrivTopology: a privsep token with a custom role on / and one extra ACL on /vms/140.
func leastPrivTopology() Topology {
	t := DefaultTopology()
	t.Users = append(t.Users, UserSpec{ID: "aimachine@pve"})
	t.Tokens = append(t.Tokens, TokenSpec{ID: lpToken, Secret: lpSecret, Privsep: true})
	t.Roles = map[string][]string{"Deploy": {"VM.Allocate", "VM.Audit", "Datastore.AllocateTemplate", "Sys.AccessNetwork", "Sys.Audit", "Mapping.Modify"}}
	t.ACLs = []ACLSpec{
		{Path: "/", User: "aimachine@pve", Role: "PVEAdmin", Propagate: true}, // PVEAdmin: no Sys.AccessNetwork, no Mapping.Modify
		{Path: "/", User: lpToken, Role: "Deploy", Propagate: true},
		{Path: "/vms/140", User: lpToken, Role: "PVEVMUser"},
	}
	return t
}

// call does one API request as the token and decodes {"data": ...}.
func (e *testEnv) call(t *testing.T, method, path, tokenID, secret string, form url.Values) (int, string, json.RawMessage) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, e.ts.URL+"/api2/json"+path, body)
	req.Header.Set("Authorization", "PVEAPIToken="+tokenID+"="+secret)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(raw, &env)
	return resp.StatusCode, resp.Status, env.Data
}

func TestPermissionsPrivsepIntersectionAndPropagation(t *testing.T) {
	e := newEnv(t, WithTopology(leastPrivTopology()))
	code, status, data := e.call(t, "GET", "/access/permissions", lpToken, lpSecret, nil)
	if code != 200 {
		t.Fatalf("status %s", status)
	}
	var perms map[string]map[string]int
	if err := json.Unmarshal(data, &perms); err != nil {
		t.Fatal(err)
	}
	// RPCEnvironment compile_acl_path: a privsep token gets its privileges intersected with its
	// user's: PVEAdmin has neither Sys.AccessNetwork nor Mapping.Modify (AccessControl.pm create_roles).
	root := perms["/"]
	if root["VM.Allocate"] != 1 || root["Datastore.AllocateTemplate"] != 1 {
		t.Errorf("/ = %v", root)
	}
	if _, ok := root["Sys.AccessNetwork"]; ok {
		t.Errorf("Sys.AccessNetwork must not survive the intersection: %v", root)
	}
	if _, ok := root["Mapping.Modify"]; ok {
		t.Errorf("Mapping.Modify must not survive the intersection: %v", root)
	}
	// the ACL on /vms/140 (not propagated) replaces the / role there (AccessControl.pm roles()).
	vm := perms["/vms/140"]
	if vm["VM.Config.Cloudinit"] != 0 {
		t.Errorf("/vms/140 = %v", vm)
	}
	if _, ok := vm["VM.Config.Cloudinit"]; !ok {
		t.Errorf("/vms/140 lacks VM.Config.Cloudinit: %v", vm)
	}
	if _, ok := vm["VM.Allocate"]; ok {
		t.Errorf("/vms/140: the deeper ACL replaces the role of /: %v", vm)
	}
	// path= answers one path; a path without privileges answers {}.
	_, _, one := e.call(t, "GET", "/access/permissions?path=/storage/local", lpToken, lpSecret, nil)
	if !strings.Contains(string(one), `"/storage/local"`) || !strings.Contains(string(one), "Datastore.AllocateTemplate") {
		t.Errorf("path=/storage/local: %s", one)
	}
	// another user's permissions need Sys.Audit on /access (the token has Sys.Audit on /, propagated).
	code, _, _ = e.call(t, "GET", "/access/permissions?userid=root@pam", lpToken, lpSecret, nil)
	if code != 200 {
		t.Errorf("userid=root@pam with Sys.Audit: %d", code)
	}
}

func TestRoutePermissionIsPathAware(t *testing.T) {
	e := newEnv(t, WithTopology(leastPrivTopology()))
	// the schema's check: any of Datastore.Audit, Datastore.AllocateSpace on /storage/local; the
	// token's Deploy role has neither → 403 with check_any's "A|B" (RPCEnvironment.pm check_any)
	code, status, _ := e.call(t, "GET", "/nodes/pve/storage/local/content", lpToken, lpSecret, nil)
	if code != 403 || !strings.Contains(status, "Permission check failed (/storage/local, Datastore.Audit|Datastore.AllocateSpace)") {
		t.Errorf("got %s", status)
	}
}

func downloadForm(u, file, sum string) url.Values {
	f := url.Values{"url": {u}, "content": {"import"}, "filename": {file}}
	if sum != "" {
		f.Set("checksum", sum)
		f.Set("checksum-algorithm", "sha256")
	}
	return f
}

func (e *testEnv) taskLog(t *testing.T, upid string) []string {
	t.Helper()
	if _, err := e.s.WaitTask(upid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	return append([]string(nil), e.s.tasks[upid].lines...)
}

func TestDownloadURLTask(t *testing.T) {
	const data = "QFI\xfb fake qcow2 bytes"
	sum := sha256.Sum256([]byte(data))
	good := hex.EncodeToString(sum[:])
	src := "https://images.example/noble.img"
	topo := DefaultTopology()
	topo.Storages[0].Volumes = nil
	topo.DownloadSources = []DownloadSource{{URL: src, Data: data}}
	e := newEnv(t, WithTopology(topo))
	post := func(f url.Values) (int, string, string) {
		code, status, data := e.call(t, "POST", "/nodes/pve/storage/local/download-url", DefaultTokenID, DefaultTokenSecret, f)
		var upid string
		_ = json.Unmarshal(data, &upid)
		return code, status, upid
	}
	volid := "local:import/noble.qcow2"

	// a wrong checksum: download_file_from_url dies after "calculating checksum..." and removes the file
	_, _, upid := post(downloadForm(src, "noble.qcow2", strings.Repeat("0", 64)))
	lines := e.taskLog(t, upid)
	last := lines[len(lines)-1]
	if want := "TASK ERROR: checksum mismatch: got '" + good + "' != expect '" + strings.Repeat("0", 64) + "'"; last != want {
		t.Errorf("last line %q, want %q", last, want)
	}
	if !strings.HasPrefix(upid, "UPID:pve:") || !strings.Contains(upid, ":download:noble.qcow2:") {
		t.Errorf("upid %s", upid)
	}
	e.s.mu.Lock()
	left := e.s.st.storage("local").volume(volid)
	e.s.mu.Unlock()
	if left != nil {
		t.Fatal("a failed checksum left a volume")
	}

	// the right checksum: progress lines, verified, the volume exists
	_, _, upid = post(downloadForm(src, "noble.qcow2", good))
	lines = e.taskLog(t, upid)
	text := strings.Join(lines, "\n")
	for _, want := range []string{"downloading " + src + " to /var/lib/vz/import/noble.qcow2", "HTTP request sent, awaiting response... 200 OK",
		"calculating checksum...OK, checksum verified", "download of '" + src + "' to '/var/lib/vz/import/noble.qcow2' finished", "TASK OK"} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
	// a second download of the same file is a no-op
	_, _, upid = post(downloadForm(src, "noble.qcow2", good))
	lines = e.taskLog(t, upid)
	if !strings.Contains(strings.Join(lines, "\n"), "OK, got correct file already, no need to download") {
		t.Errorf("second download: %v", lines)
	}

	// unreachable URL: wget exit code 4
	_, _, upid = post(downloadForm("https://nowhere.example/x.img", "x.qcow2", good))
	lines = e.taskLog(t, upid)
	if l := lines[len(lines)-1]; !strings.HasPrefix(l, "TASK ERROR: download failed: command 'wget --progress=dot:giga -O /var/lib/vz/import/x.qcow2.tmp_dwnl.") || !strings.HasSuffix(l, "failed: exit code 4") {
		t.Errorf("unreachable: %q", l)
	}

	// .img is not an import extension (Storage.pm $UPLOAD_IMPORT_EXT_RE_1); snippets not a download content
	code, status, _ := post(downloadForm(src, "noble.img", ""))
	if code != 400 {
		t.Errorf(".img: %s", status)
	}
	code, status, _ = e.call(t, "POST", "/nodes/pve/storage/local-lvm/download-url", DefaultTokenID, DefaultTokenSecret, downloadForm(src, "n.qcow2", ""))
	if code != 500 || !strings.Contains(status, "can't upload to storage type 'lvmthin', not a file based storage!") {
		t.Errorf("lvmthin: %s", status)
	}
}

func TestDownloadURLImportNeedsPVE84(t *testing.T) {
	topo := DefaultTopology()
	topo.DownloadSources = []DownloadSource{{URL: "https://i.example/a.img", Data: "x"}}
	e := newEnv(t, WithTopology(topo), WithPVEVersion("8.3.2"))
	code, status, _ := e.call(t, "POST", "/nodes/pve/storage/local/download-url", DefaultTokenID, DefaultTokenSecret, downloadForm("https://i.example/a.img", "a.qcow2", ""))
	if code != 400 {
		t.Errorf("8.3 took a .qcow2 import download: %s", status)
	}
}

func TestDownloadURLPermissions(t *testing.T) {
	topo := leastPrivTopology()
	topo.DownloadSources = []DownloadSource{{URL: "https://i.example/a.img", Data: "x"}}
	e := newEnv(t, WithTopology(topo))
	// Datastore.AllocateTemplate holds, Sys.AccessNetwork was lost in the intersection → the 'or' fails
	code, status, _ := e.call(t, "POST", "/nodes/pve/storage/local/download-url", lpToken, lpSecret, downloadForm("https://i.example/a.img", "a.qcow2", ""))
	if code != 403 || status != "403 Permission check failed" {
		t.Errorf("got %s", status)
	}
}

func TestClusterStatusQuorum(t *testing.T) {
	topo := DefaultTopology()
	topo.ClusterName = "lab"
	topo.Nodes = append(topo.Nodes, NodeSpec{Name: "pve2", Offline: true}, NodeSpec{Name: "pve3", Offline: true})
	e := newEnv(t, WithTopology(topo))
	_, _, data := e.call(t, "GET", "/cluster/status", DefaultTokenID, DefaultTokenSecret, nil)
	var entries []map[string]any
	_ = json.Unmarshal(data, &entries)
	if entries[0]["type"] != "cluster" || entries[0]["quorate"] != float64(0) {
		t.Errorf("1 of 3 online must not be quorate: %v", entries[0])
	}
	if entries[2]["online"] != float64(0) {
		t.Errorf("pve2: %v", entries[2])
	}
}

func TestCreateChecksBridgeAndMappingPrivileges(t *testing.T) {
	topo := DefaultTopology()
	topo.Users = append(topo.Users, UserSpec{ID: "aimachine@pve"})
	topo.Tokens = append(topo.Tokens, TokenSpec{ID: lpToken, Secret: lpSecret, Privsep: true})
	topo.Mappings = []PCIMappingSpec{{ID: "gpu0", Map: []string{"node=pve,path=0000:01:00,id=10de:2d04"}}}
	topo.ACLs = []ACLSpec{
		{Path: "/", User: "aimachine@pve", Role: "Administrator", Propagate: true},
		{Path: "/", User: lpToken, Role: "PVEVMAdmin", Propagate: true},
		{Path: "/storage", User: lpToken, Role: "PVEDatastoreUser", Propagate: true},
	}
	e := newEnv(t, WithTopology(topo))
	form := url.Values{"vmid": {"140"}, "name": {"x"}, "cores": {"2"}, "scsi0": {"local-lvm:0,import-from=local:import/noble-server-cloudimg-amd64.qcow2"},
		"net0": {"virtio,bridge=vmbr0"}, "ciuser": {"ubuntu"}, "hostpci0": {"mapping=gpu0,pcie=1"}}
	create := func() string {
		_, status, _ := e.call(t, "POST", "/nodes/pve/qemu", lpToken, lpSecret, form)
		return status
	}
	// check_hostpci_perm runs before check_bridge_access
	if got := create(); got != "403 Permission check failed (/mapping/pci/gpu0, Mapping.Use)" {
		t.Errorf("got %s", got)
	}
	if err := e.s.GrantACL(ACLSpec{Path: "/mapping/pci/gpu0", User: lpToken, Role: "PVEMappingUser"}); err != nil {
		t.Fatal(err)
	}
	if got := create(); got != "403 Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)" {
		t.Errorf("got %s", got)
	}
	if err := e.s.GrantACL(ACLSpec{Path: "/sdn/zones/localnetwork", User: lpToken, Role: "PVESDNUser", Propagate: true}); err != nil {
		t.Fatal(err)
	}
	if got := create(); !strings.HasPrefix(got, "200") {
		t.Errorf("with every privilege: %s", got)
	}
}

// Lists show only what the caller may see (the schema's permission descriptions of
// GET /nodes/{node}/storage and GET /cluster/mapping/pci).
func TestListsFilteredByPrivileges(t *testing.T) {
	topo := leastPrivTopology()
	topo.Mappings = []PCIMappingSpec{{ID: "gpu0", Map: []string{"node=pve,path=0000:01:00,id=10de:2d04"}}}
	topo.ACLs = topo.ACLs[:1] // the token has no ACL: it sees nothing
	e := newEnv(t, WithTopology(topo))
	for _, p := range []string{"/nodes/pve/storage", "/cluster/mapping/pci"} {
		_, status, data := e.call(t, "GET", p, lpToken, lpSecret, nil)
		if string(data) != "[]" {
			t.Errorf("%s: %s %s", p, status, data)
		}
		_, _, data = e.call(t, "GET", p, DefaultTokenID, DefaultTokenSecret, nil)
		if string(data) == "[]" {
			t.Errorf("%s: root token sees nothing", p)
		}
	}
}
