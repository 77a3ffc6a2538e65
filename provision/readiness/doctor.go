package readiness

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/pve"
)

// Status of a check.
type Status string

// Check statuses: ✓, ✗ (a deploy would fail), ! (a deploy works, but look).
const (
	OK   Status = "ok"
	Fail Status = "fail"
	Warn Status = "warn"
)

// Mark is the status's one-character sign.
func (s Status) Mark() string {
	switch s {
	case OK:
		return "✓"
	case Warn:
		return "!"
	}
	return "✗"
}

// Check kinds.
const (
	KindEndpoint    = "endpoint"
	KindTLS         = "tls"
	KindCredentials = "credentials"
	KindVersion     = "version"
	KindPrivilege   = "privilege"
	KindCluster     = "cluster"
	KindStorage     = "storage"
	KindImage       = "image"
	KindSnippet     = "snippet"
	KindCapacity    = "capacity"
	KindVMID        = "vmid"
	KindGPU         = "gpu"
	KindMapping     = "mapping"
)

// Check is one line of the report.
type Check struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail is what was found.
	Detail string `json:"detail,omitempty"`
	// Fix is the exact remedy of a ✗ or !: a command (pvesh, pveum, qm, shell on the node) or a web UI path.
	Fix string `json:"fix,omitempty"`
	// VM is the catalog VM the check is about ("" = the host).
	VM string `json:"vm,omitempty"`
	// Privilege and Path name a missing privilege (kind privilege).
	Privilege string `json:"privilege,omitempty"`
	Path      string `json:"path,omitempty"`
	// Prepare: aimachine prepare fixes it.
	Prepare bool `json:"prepare,omitempty"`
}

// Report is the result of Doctor.
type Report struct {
	Endpoint string  `json:"endpoint"`
	User     string  `json:"user,omitempty"`
	Version  string  `json:"version,omitempty"`
	Checks   []Check `json:"checks"`
}

// OK reports whether nothing failed (warnings allowed): a deploy can succeed.
func (r *Report) OK() bool { return len(r.Failed()) == 0 }

// Failed lists the ✗ checks.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == Fail {
			out = append(out, c)
		}
	}
	return out
}

func (r *Report) add(c Check) { r.Checks = append(r.Checks, c) }

// Doctor checks, with reads only, everything a deploy of vms needs from the host named by o:
// the endpoint, its certificate and the credentials, the PVE release, the privileges, the
// cluster, storages, image, snippet, capacity, VM id and GPU. Problems are ✗ checks, not errors;
// the error is for what stops the checks themselves (a VM missing from the catalog).
func Doctor(ctx context.Context, o provision.ConnOptions, cat *catalog.Catalog, vms []*catalog.VM) (*Report, error) {
	rep := &Report{}
	h, ok := connect(ctx, o, rep)
	if !ok {
		return rep, nil
	}
	d := &doctor{h: h, rep: rep, vms: vms, cat: cat}
	d.run(ctx)
	return rep, nil
}

// host is a connection that passed the endpoint, TLS and credential checks.
type host struct {
	api     pve.HostAPI
	id      pve.Identity
	version string
	major   int
	minor   int
}

func (h *host) atLeast(major, minor int) bool {
	return h.major > major || (h.major == major && h.minor >= minor)
}

// connect runs the endpoint, TLS and credential checks and returns the connection.
func connect(ctx context.Context, o provision.ConnOptions, rep *Report) (*host, bool) {
	cfg, err := o.PVEConfig()
	if err != nil {
		rep.add(Check{Kind: KindEndpoint, Name: "endpoint configured", Status: Fail, Detail: err.Error(),
			Fix: "export " + provision.EnvEndpoint + "=https://NODE:8006/ and " + provision.EnvAPIToken + "='USER@REALM!ID=SECRET' (or the simulator's env file)"})
		return nil, false
	}
	rep.Endpoint = cfg.URL
	tlsInfo, err := pve.ProbeTLS(ctx, cfg)
	if err != nil {
		rep.add(Check{Kind: KindEndpoint, Name: "endpoint reachable", Status: Fail, Detail: err.Error(),
			Fix: "check " + provision.EnvEndpoint + " (https://NODE:8006/); on the node: systemctl status pveproxy, and that port 8006 is open to this machine"})
		return nil, false
	}
	rep.add(Check{Kind: KindEndpoint, Name: "endpoint reachable", Status: OK, Detail: cfg.URL})
	switch {
	case cfg.Insecure:
		rep.add(Check{Kind: KindTLS, Name: "TLS certificate", Status: Warn, Detail: "verification skipped (" + provision.EnvInsecure + "); served certificate " + tlsInfo.Fingerprint,
			Fix: "pin it instead: export " + provision.EnvFingerprint + "=" + tlsInfo.Fingerprint + " (compare with `pvenode cert info` on the node) and unset " + provision.EnvInsecure})
	case !tlsInfo.Trusted:
		rep.add(Check{Kind: KindTLS, Name: "TLS certificate trusted", Status: Fail,
			Detail: fmt.Sprintf("%v; the server's certificate (%s) has SHA-256 fingerprint %s", tlsInfo.Err, tlsInfo.Subject, tlsInfo.Fingerprint),
			Fix: "compare the fingerprint with `pvenode cert info` on the node, then export " + provision.EnvFingerprint + "=" + tlsInfo.Fingerprint +
				" (or copy /etc/pve/pve-root-ca.pem from the node and export " + provision.EnvCAFile + "=that file)"})
		return nil, false
	default:
		rep.add(Check{Kind: KindTLS, Name: "TLS certificate trusted", Status: OK, Detail: tlsInfo.Fingerprint})
	}
	api, err := pve.DialContext(ctx, cfg)
	var version string
	if err == nil {
		version, err = api.Version(ctx)
	}
	if err != nil {
		fix := "check " + provision.EnvAPIToken + " (USER@REALM!ID=SECRET; Datacenter → Permissions → API Tokens) or " + provision.EnvUsername + "/" + provision.EnvPassword
		if !errors.Is(err, pve.ErrAuth) {
			fix = "check that " + cfg.URL + " is a Proxmox VE API (pveproxy)"
		}
		rep.add(Check{Kind: KindCredentials, Name: "credentials accepted", Status: Fail, Detail: err.Error(), Fix: fix})
		return nil, false
	}
	ha, ok := pve.Host(api)
	if !ok {
		rep.add(Check{Kind: KindCredentials, Name: "credentials accepted", Status: Fail, Detail: "the API client cannot read permissions", Fix: "—"})
		return nil, false
	}
	h := &host{api: ha, id: api.Identity(), version: version}
	rep.User, rep.Version = h.id.User, version
	kind := "ticket"
	if h.id.Token {
		kind = "API token"
	}
	rep.add(Check{Kind: KindCredentials, Name: "credentials accepted", Status: OK, Detail: h.id.User + " (" + kind + ")"})
	parts := strings.SplitN(version, ".", 3)
	h.major, _ = strconv.Atoi(parts[0])
	if len(parts) > 1 {
		h.minor, _ = strconv.Atoi(parts[1])
	}
	return h, true
}

type doctor struct {
	h     *host
	rep   *Report
	vms   []*catalog.VM
	cat   *catalog.Catalog
	perms pve.Permissions
	// per node
	storages map[string][]pve.StorageInfo
	content  map[string][]pve.Volume // node/storage
	pcis     map[string][]pve.PCIDevice
	mappings []pve.PCIMapping
	vmRes    []pve.Resource
}

func (d *doctor) fail(c Check) { c.Status = Fail; d.rep.add(c) }
func (d *doctor) ok(c Check)   { c.Status = OK; d.rep.add(c) }
func (d *doctor) warn(c Check) { c.Status = Warn; d.rep.add(c) }

func (d *doctor) run(ctx context.Context) {
	d.storages, d.content, d.pcis = map[string][]pve.StorageInfo{}, map[string][]pve.Volume{}, map[string][]pve.PCIDevice{}
	d.versionChecks()
	d.clusterChecks(ctx)
	if rs, err := d.h.api.Resources(ctx, "vm"); err == nil {
		d.vmRes = rs
	} else {
		d.fail(Check{Kind: KindVMID, Name: "list VMs", Detail: err.Error(), Fix: "see the privilege checks"})
	}
	if d.anyMapping() {
		if ms, err := d.h.api.PCIMappings(ctx); err == nil {
			d.mappings = ms
		} else {
			d.fail(Check{Kind: KindMapping, Name: "list PCI mappings", Detail: err.Error(), Fix: "see the privilege checks"})
		}
	}
	prep := map[int]Prepared{}
	for _, vm := range d.vms {
		prep[vm.ID] = d.vmChecks(ctx, vm)
	}
	d.privilegeChecks(ctx, prep)
}

func (d *doctor) anyMapping() bool {
	for _, vm := range d.vms {
		if vm.GPUEnabled() && vm.GPU.Mapping != "" {
			return true
		}
	}
	return false
}

// Releases that added what the catalog uses (debian/changelog of each package):
//   - PCI resource mappings: qemu-server 8.0.4 "enable cluster mapped PCI devices for guests",
//     pve-manager 8.0.0~9 "ui: add overview panel and edit window for PCI resource mappings" (PVE 8.0);
//   - the import content type on directory storages: libpve-storage-perl 8.2.8 "directory backed
//     storage: implement import content type" (8.1.1 added the type for the ESXi plugin only),
//     qemu-server 8.2.7 "api: create: implement extracting disks when needed for import-from" and
//     import-content checks, pve-manager 8.2.9 UI (PVE 8.3); import-from itself is older:
//     qemu-server 7.1-5 "api: support VM disk import" (PVE 7.2);
//   - download-url of .qcow2/.raw/.vmdk into an import storage: libpve-storage-perl 8.3.6, commit
//     76f695f "import: allow upload of guest images files into import storage" (PVE 8.4; before,
//     40df25d allowed only .ova); download-url itself: libpve-storage-perl 7.0-4 (PVE 7.0).
func (d *doctor) versionChecks() {
	v := d.h.version
	usesImport, usesMapping := false, false
	for _, vm := range d.vms {
		usesImport = usesImport || strings.Contains(vm.Image.CloudImage, ":import/")
		usesMapping = usesMapping || (vm.GPUEnabled() && vm.GPU.Mapping != "")
	}
	upgrade := "upgrade the node: apt update && apt full-upgrade (Proxmox VE 8.4 or newer; https://pve.proxmox.com/wiki/Upgrade_from_7_to_8 for older majors)"
	if usesMapping {
		if d.h.atLeast(8, 0) {
			d.ok(Check{Kind: KindVersion, Name: "PVE release has PCI resource mappings (8.0+)", Detail: "pve-manager " + v})
		} else {
			d.fail(Check{Kind: KindVersion, Name: "PVE release has PCI resource mappings (8.0+)", Detail: "pve-manager " + v + ": qemu-server 8.0.4 added mapped PCI devices", Fix: upgrade})
		}
	}
	if usesImport {
		if d.h.atLeast(8, 3) {
			d.ok(Check{Kind: KindVersion, Name: "PVE release has the import content type for import-from (8.3+)", Detail: "pve-manager " + v})
		} else {
			d.fail(Check{Kind: KindVersion, Name: "PVE release has the import content type for import-from (8.3+)",
				Detail: "pve-manager " + v + ": libpve-storage-perl 8.2.8 added the import content type to directory storages", Fix: upgrade})
		}
		if d.h.atLeast(8, 4) {
			d.ok(Check{Kind: KindVersion, Name: "PVE release downloads disk images into import storage (8.4+)", Detail: "pve-manager " + v})
		} else {
			d.warn(Check{Kind: KindVersion, Name: "PVE release downloads disk images into import storage (8.4+)",
				Detail: "pve-manager " + v + ": download-url takes .qcow2 for import only from libpve-storage-perl 8.3.6; aimachine prepare cannot download the image",
				Fix:    upgrade + ", or download the image on the node by hand (the image check's fix)"})
		}
	}
}

func (d *doctor) clusterChecks(ctx context.Context) {
	members, err := d.h.api.ClusterStatus(ctx)
	if err != nil {
		d.fail(Check{Kind: KindCluster, Name: "cluster status", Detail: err.Error(), Fix: "see the privilege checks (Sys.Audit on /)"})
		return
	}
	online := map[string]bool{}
	clustered := false
	for _, m := range members {
		switch m.Type {
		case "cluster":
			clustered = true
			if m.Quorate {
				d.ok(Check{Kind: KindCluster, Name: "cluster quorate", Detail: fmt.Sprintf("%s, %d nodes", m.Name, m.Nodes)})
			} else {
				d.fail(Check{Kind: KindCluster, Name: "cluster quorate", Detail: fmt.Sprintf("cluster %s has lost quorum: /etc/pve is read-only, nothing can be created", m.Name),
					Fix: "bring the other nodes back online (pvecm status on a node shows the votes); on a node left alone for good: pvecm expected 1"})
			}
		case "node":
			online[m.Name] = m.Online
		}
	}
	if !clustered {
		d.ok(Check{Kind: KindCluster, Name: "cluster quorate", Detail: "standalone node"})
	}
	seen := map[string]bool{}
	for _, vm := range d.vms {
		if seen[vm.Node] {
			continue
		}
		seen[vm.Node] = true
		up, known := online[vm.Node]
		var names []string
		for n := range online {
			names = append(names, n)
		}
		sort.Strings(names)
		switch {
		case !known:
			d.fail(Check{Kind: KindCluster, Name: "node " + vm.Node + " online", Detail: "not in the cluster (nodes: " + strings.Join(names, ", ") + ")",
				Fix: "fix the VM's node in the catalog (pvecm nodes lists the node names)"})
		case !up:
			d.fail(Check{Kind: KindCluster, Name: "node " + vm.Node + " online", Detail: "offline", Fix: "start the node or place the VM on another node in the catalog"})
		default:
			d.ok(Check{Kind: KindCluster, Name: "node " + vm.Node + " online"})
		}
	}
}

// nodeStorages lists (once) a node's storages.
func (d *doctor) nodeStorages(ctx context.Context, node string) []pve.StorageInfo {
	if s, ok := d.storages[node]; ok {
		return s
	}
	s, _ := d.h.api.Storages(ctx, node)
	d.storages[node] = s
	return s
}

func findStorage(ss []pve.StorageInfo, name string) (pve.StorageInfo, bool) {
	for _, s := range ss {
		if s.Storage == name {
			return s, true
		}
	}
	return pve.StorageInfo{}, false
}

// volumes lists (once) a storage's content on a node.
func (d *doctor) volumes(ctx context.Context, node, storage string) ([]pve.Volume, error) {
	k := node + "/" + storage
	if v, ok := d.content[k]; ok {
		return v, nil
	}
	v, err := d.h.api.StorageContent(ctx, node, storage)
	if err != nil {
		return nil, err
	}
	d.content[k] = v
	return v, nil
}

func hasVolume(vs []pve.Volume, volid string) bool {
	for _, v := range vs {
		if v.VolID == volid {
			return true
		}
	}
	return false
}

var reImportName = regexp.MustCompile(`^[a-zA-Z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$`)

// vmChecks checks one VM and says which host steps prepare would do for it.
func (d *doctor) vmChecks(ctx context.Context, vm *catalog.VM) Prepared {
	var prep Prepared
	name := vm.Name
	ss := d.nodeStorages(ctx, vm.Node)
	var existing *pve.Resource
	for i := range d.vmRes {
		if d.vmRes[i].VMID == vm.ID {
			existing = &d.vmRes[i]
		}
	}

	// storages and content types
	contentCheck := func(storage, content, what string) bool {
		st, ok := findStorage(ss, storage)
		label := fmt.Sprintf("storage %s holds %s (content %s)", storage, what, content)
		switch {
		case !ok:
			d.fail(Check{Kind: KindStorage, VM: name, Name: label, Detail: fmt.Sprintf("storage %q is not on node %s (or not visible to %s)", storage, vm.Node, d.h.id.User),
				Fix: "pvesm status on the node lists its storages; fix the catalog or grant Datastore.Audit on /storage/" + storage})
			return false
		case !st.Enabled || !st.Active:
			d.fail(Check{Kind: KindStorage, VM: name, Name: label, Detail: "storage is not active",
				Fix: "on the node: pvesm set " + storage + " --disable 0, then pvesm status (a network storage must be reachable)"})
			return false
		case !st.HasContent(content):
			d.fail(Check{Kind: KindStorage, VM: name, Name: label, Detail: "content types: " + strings.Join(st.Content, ","),
				Fix: fmt.Sprintf("on the node: pvesm set %s --content %s (Datacenter → Storage → %s → Content)", storage, strings.Join(append(append([]string(nil), st.Content...), content), ","), storage)})
			return false
		}
		d.ok(Check{Kind: KindStorage, VM: name, Name: label})
		return true
	}
	if contentCheck(vm.Disk.Storage, "images", "the disk") && existing == nil {
		st, _ := findStorage(ss, vm.Disk.Storage)
		want := uint64(vm.Disk.SizeGB) << 30
		if st.Avail > 0 && want > st.Avail {
			d.fail(Check{Kind: KindCapacity, VM: name, Name: "storage " + vm.Disk.Storage + " has room for the disk",
				Detail: fmt.Sprintf("%d GiB wanted, %d GiB free", vm.Disk.SizeGB, st.Avail>>30), Fix: "free space on the storage or lower disk.size_gb / pick another disk.storage in the catalog"})
		} else {
			d.ok(Check{Kind: KindCapacity, VM: name, Name: "storage " + vm.Disk.Storage + " has room for the disk", Detail: fmt.Sprintf("%d GiB of %d GiB free", vm.Disk.SizeGB, st.Avail>>30)})
		}
	}
	if img := vm.Image.CloudImage; img != "" {
		storage, rest, _ := strings.Cut(img, ":")
		dir, file, _ := strings.Cut(rest, "/")
		if contentCheck(storage, dir, "the cloud image") {
			vols, err := d.volumes(ctx, vm.Node, storage)
			switch {
			case err != nil:
				d.fail(Check{Kind: KindImage, VM: name, Name: "cloud image " + img + " present", Detail: err.Error(), Fix: "see the privilege checks"})
			case hasVolume(vols, img):
				d.ok(Check{Kind: KindImage, VM: name, Name: "cloud image " + img + " present"})
			case dir == "import" && !reImportName.MatchString(file):
				d.fail(Check{Kind: KindImage, VM: name, Name: "cloud image " + img + " present",
					Detail: "an import storage holds only .ova/.ovf/.qcow2/.raw/.vmdk files (pve-storage $IMPORT_EXT_RE_1): this name can never be there",
					Fix:    "name it " + storage + ":import/" + strings.TrimSuffix(file, ".img") + ".qcow2 in the catalog (the noble .img is a qcow2 file), then aimachine prepare --vm " + name})
			default:
				prep.Image = true
				fix := fmt.Sprintf("aimachine prepare --vm %s, or on the node: pvesh create /nodes/%s/storage/%s/download-url --content %s --filename %s --url %s --checksum %s --checksum-algorithm sha256",
					name, vm.Node, storage, dir, file, vm.Image.URL, vm.Image.SHA256)
				if !d.h.atLeast(8, 4) && dir == "import" {
					path := "/var/lib/vz/import/" + file
					fix = fmt.Sprintf("on the node: wget -O %s %s && echo '%s  %s' | sha256sum -c (PVE before 8.4 cannot download it into import)", path, vm.Image.URL, vm.Image.SHA256, path)
					prep.Image = false
				}
				d.fail(Check{Kind: KindImage, VM: name, Name: "cloud image " + img + " present", Detail: "not in " + storage + " on node " + vm.Node, Fix: fix, Prepare: prep.Image})
			}
		}
	}
	if sn := vm.Image.VendorData; sn != "" {
		storage, _, _ := strings.Cut(sn, ":")
		if contentCheck(storage, "snippets", "the vendor snippet") {
			vols, err := d.volumes(ctx, vm.Node, storage)
			switch {
			case err != nil:
				d.fail(Check{Kind: KindSnippet, VM: name, Name: "vendor snippet " + sn + " present", Detail: err.Error(), Fix: "see the privilege checks"})
			case hasVolume(vols, sn):
				d.ok(Check{Kind: KindSnippet, VM: name, Name: "vendor snippet " + sn + " present"})
			default:
				d.fail(Check{Kind: KindSnippet, VM: name, Name: "vendor snippet " + sn + " present", Detail: "not on node " + vm.Node + " (the API cannot upload snippets)",
					Fix: "aimachine prepare --vm " + name + " prints the file and the command to run on the node, or writes it with --node-ssh root@" + vm.Node})
			}
		} else {
			d.fail(Check{Kind: KindSnippet, VM: name, Name: "vendor snippet " + sn + " present", Detail: "storage " + storage + " has no snippets content type",
				Fix: "enable it (the storage check's fix), then aimachine prepare --vm " + name + " prints the snippet and the command, or writes it with --node-ssh root@" + vm.Node})
		}
	}

	// capacity and id
	if existing == nil {
		if st, err := d.h.api.NodeStatus(ctx, vm.Node); err == nil {
			switch {
			case st.CPUs > 0 && vm.Cores > st.CPUs:
				d.fail(Check{Kind: KindCapacity, VM: name, Name: "node " + vm.Node + " has the cores and memory", Detail: fmt.Sprintf("%d cores wanted, the node has %d CPUs", vm.Cores, st.CPUs), Fix: "lower cores in the catalog"})
			case st.MemTotal > 0 && uint64(vm.MemoryMB)<<20 > st.MemTotal:
				d.fail(Check{Kind: KindCapacity, VM: name, Name: "node " + vm.Node + " has the cores and memory", Detail: fmt.Sprintf("%d MiB wanted, the node has %d MiB", vm.MemoryMB, st.MemTotal>>20), Fix: "lower memory_mb in the catalog"})
			case vm.GPUEnabled() && st.MemFree > 0 && uint64(vm.MemoryMB)<<20 > st.MemFree:
				d.fail(Check{Kind: KindCapacity, VM: name, Name: "node " + vm.Node + " has the cores and memory",
					Detail: fmt.Sprintf("%d MiB wanted, pinned for GPU passthrough, %d MiB free", vm.MemoryMB, st.MemFree>>20), Fix: "stop other VMs on the node or lower memory_mb in the catalog"})
			default:
				d.ok(Check{Kind: KindCapacity, VM: name, Name: "node " + vm.Node + " has the cores and memory", Detail: fmt.Sprintf("%d of %d CPUs, %d of %d MiB free", vm.Cores, st.CPUs, vm.MemoryMB, st.MemFree>>20)})
			}
		}
		d.ok(Check{Kind: KindVMID, VM: name, Name: fmt.Sprintf("VM id %d free or ours", vm.ID), Detail: "free"})
	} else {
		cfg, err := d.h.api.VMConfig(ctx, existing.Node, vm.ID)
		switch {
		case err != nil:
			d.fail(Check{Kind: KindVMID, VM: name, Name: fmt.Sprintf("VM id %d free or ours", vm.ID), Detail: err.Error(), Fix: "see the privilege checks"})
		case provision.OwnedByAimachine(cfg) && existing.Name == vm.Name:
			d.ok(Check{Kind: KindVMID, VM: name, Name: fmt.Sprintf("VM id %d free or ours", vm.ID), Detail: "aimachine's " + vm.Name + " (deploy converges it)"})
		default:
			d.fail(Check{Kind: KindVMID, VM: name, Name: fmt.Sprintf("VM id %d free or ours", vm.ID), Detail: fmt.Sprintf("VM %d %q on node %s was not created by aimachine", vm.ID, existing.Name, existing.Node),
				Fix: "pick a free id in the catalog (pvesh get /cluster/nextid), or remove that VM if it is unused: qm destroy " + strconv.Itoa(vm.ID)})
		}
	}
	if vm.GPUEnabled() {
		prep.Mapping = d.gpuChecks(ctx, vm)
	}
	return prep
}
