package pve

import (
	"fmt"
	"strings"
)

// ParityMarkdown renders PARITY.md from the route table: each endpoint, what is modelled, what is not.
func ParityMarkdown() string {
	var b strings.Builder
	b.WriteString("# fakes/pve — parity with Proxmox VE\n\n")
	b.WriteString("Generated from the route table (`routes.go`) by `go test ./fakes/pve -run TestParity -update`; a test fails when it is stale.\n\n")
	b.WriteString("Everywhere: `{\"data\":…}` envelope, `Server: pve-api-daemon/3.0`, HTTP/1.1 only; errors carry PVE's text as the reason phrase " +
		"(connection hijacked, keep-alive dropped for status ≥ 400) and a body with `errors` (400) and `message` (PVE ≥ 8.3); " +
		"401 `No ticket` / `Authentication failed!` with an empty body after the auth delay; 403 `Permission check failed (path, priv)`; " +
		"501 `Method 'M /path' not implemented` for anything the published API lacks (see Coverage below for what it has and the fake does not model); " +
		"parameters are verified against the published schema like JSONSchema.pm does " +
		"(booleans 0/1 or JSON true/false, strings reject JSON booleans, unknown parameters rejected, named formats, property strings); JSON and form bodies, query merged over body.\n\n")
	b.WriteString("Request classes in `/_sim/stats`: GET is a read; `POST /access/ticket` is auth; `POST …/agent/ping` is a read; " +
		"every other POST/PUT/DELETE is mutating (`POST …/agent/exec` included: it runs a command in the guest).\n\n")
	b.WriteString("| method | path | go-proxmox | privilege | class | modelled | not modelled |\n|---|---|---|---|---|---|---|\n")
	for _, r := range buildRoutes() {
		priv := "—"
		if r.priv != "" {
			priv = fmt.Sprintf("`%s` on `%s`", r.priv, r.privOn)
		}
		if r.public {
			priv = "none (public)"
		}
		nm := r.notModelled
		if nm == "" {
			nm = "—"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s | %s |\n", r.method, r.pattern, r.client, priv, r.class,
			strings.ReplaceAll(r.modelled, "|", "\\|"), strings.ReplaceAll(nm, "|", "\\|"))
	}
	b.WriteString("\n## Control API (`/_sim`, outside `/api2`; also Go methods on `*Server`)\n\n")
	b.WriteString("| call | Go | effect |\n|---|---|---|\n")
	for _, c := range [][3]string{
		{"`GET /_sim/stats`", "`Stats()`", "request counters: total, read, mutating, auth, faults, by method / path / route / status, plus `WithStatsSource` entries"},
		{"`GET /_sim/requests`", "`Requests()`", "request log, secrets redacted (passwords, tickets; headers are never logged)"},
		{"`GET /_sim/state`", "`Snapshot()`", "VMs with raw config, PCI reservations, IOMMU per node, mappings"},
		{"`POST /_sim/reset`", "`Reset()`", "back to the initial topology; guests destroyed, tasks cancelled, faults and counters cleared"},
		{"`POST /_sim/reset` `{topology}`", "`ResetTo(Topology)`", "the same onto another topology for this reset only (users and tokens it lacks are the initial ones; the next plain reset returns to the initial topology)"},
		{"`POST /_sim/faults` `{method,path,count,status,reason,reset}`", "`FailNext(FaultRule)`", "fail the next N matching calls (path.Match pattern under /api2/json), or reset the connection"},
		{"`DELETE /_sim/faults`", "`ClearFaults()`", "drop fault rules, task faults and latency"},
		{"`POST /_sim/latency` `{latency:\"150ms\"}`", "`SetLatency(d)` / `WithLatency(d)`", "delay every API answer"},
		{"`POST /_sim/task-faults` `{type,exitstatus,count}`", "`FailTask(TaskFault)`", "the next N tasks of a type end with `TASK ERROR: exitstatus`"},
		{"`POST /_sim/pci/busy` `{node,id,vmid}`", "`MarkPCIBusy(node, id, vmid)`", "a PCI function held by another running VMID"},
		{"`POST /_sim/pci/busy-after` `{node,id,vmid,after}`", "`MarkPCIBusyAfter(node, id, vmid, taskType)`", "a race: VM vmid (created stopped, not on boot, hostpci0 on id's slot, if missing) starts and holds the device when the next task of type `after` (e.g. qmcreate) finishes"},
		{"`POST /_sim/pci/release` `{node,id}`", "`ReleasePCI(node, id)`", "drop that reservation"},
		{"`POST /_sim/pci/fault` `{node,id,kind}`", "`SetPCIFault(node, id, kind)`", "`vfio-bind`: starts passing the function through fail with `can't unbind/bind PCI group to VFIO '<id>'` until cleared (`kind:\"\"`)"},
		{"`POST /_sim/vm/fault` `{vmid,kind}`", "`SetVMFault(vmid, kind)`", "`kvm-timeout`: the VM's next start fails with `start failed: command '/usr/bin/kvm -id <vmid> …' failed: got timeout`"},
		{"`POST /_sim/vm/kill` `{vmid}`", "`KillQEMU(vmid)`", "QEMU dies without cleanup: the VM shows stopped, its PCI reservation stays (the next start logs `leftover PCI reservation found for …`)"},
		{"`POST /_sim/vm/lock` `{vmid,lock}`", "`SetLock(vmid, lock)`", "a lock such as `backup`: config POST/PUT answer `500 VM is locked (backup)`, start/stop tasks fail with it; `\"\"` clears it"},
		{"`POST /_sim/iommu` `{node,enabled}`", "`SetIOMMU(node, on)`", "IOMMU off: iommugroup -1, pass-through fails at start"},
		{"`POST /_sim/reset` `{topology}` (fakes/sim)", "`ResetTo(Topology)`", "reset onto another topology (the simulator keeps its root credentials); a plain reset returns to the start one"},
		{"`POST /_sim/acl` `{path,user,role,propagate}`", "`GrantACL(ACLSpec)`", "what `pveum acl modify PATH --roles ROLE --users|--tokens ID` does"},
		{"`POST /_sim/snippet` `{volid,content}`", "`PutSnippet(volid, content)`", "a snippet file copied to the node (scp)"},
		{"— (fakes/sim node shell)", "`SetStorageContent`, `VolumePath`, `WriteNodeFile`, `ReadNodeFile`, `RemoveNodeFile`", "`pvesm set STORAGE --content`, `pvesm path VOLID`, a file written into, read from or removed from a snippets directory (any shell form: redirection, cat, mv, install, rm)"},
		{"— (Topology.DownloadSources)", "`AddDownloadSource(DownloadSource)`", "a file download-url can fetch (content, or a declared size and sha256); any other URL is unreachable"},
		{"`/_sim/<prefix>/…`", "`WithControlHandler(prefix, h)`", "mounted handlers (e.g. the guest simulator)"},
	} {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c[0], c[1], c[2])
	}
	b.WriteString("\n## Not modelled at all\n\n" +
		"LXC containers, snapshots, backups/restore, migration, HA, pools, SDN beyond the `localnetwork` resource entry, " +
		"pending config changes (updates apply at once, also on running VMs), VNC/SPICE/termproxy, TFA, ACL management " +
		"through the API (users, tokens, roles and ACLs come from the Topology or the control API; groups and pools are not modelled), RRD data, task lists.\n")
	b.WriteString(schemaCoverageMarkdown())
	return b.String()
}
