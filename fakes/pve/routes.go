package pve

import "strings"

// buildRoutes is the route table: every modelled API method (PARITY.md is generated from it).
func buildRoutes() []*route {
	rs := []*route{
		{method: "POST", pattern: "/access/ticket", public: true, handler: handleTicket,
			client:      "Client.Ticket / CreateSession (WithCredentials)",
			modelled:    "password login and ticket renewal (password = valid ticket); ticket + CSRFPreventionToken + cap; 401 `authentication failure` (after the auth delay)",
			notModelled: "realms other than the users listed, TFA/OTP, `path`/`privs` permission probes"},
		{method: "GET", pattern: "/version", handler: handleVersion, client: "Client.Version",
			modelled: "version, release, repoid (strings)", notModelled: "`console` (only when set in datacenter.cfg)"},
		{method: "GET", pattern: "/nodes", priv: "", handler: handleNodes, client: "Client.Nodes",
			modelled: "one entry per node with ssl_fingerprint of the served certificate, cpu/mem/disk numbers", notModelled: "offline nodes"},
		{method: "GET", pattern: "/nodes/{node}/status", priv: "Sys.Audit", privOn: "/nodes/{node}", handler: handleNodeStatus,
			client: "Client.Node", modelled: "cpuinfo (hvm/mhz strings, user_hz int), loadavg strings, memory/swap/rootfs, pveversion, current-kernel, boot-info; unknown node → 500 hostname lookup",
			notModelled: "live load figures (static simulated values)"},
		{method: "GET", pattern: "/cluster/status", handler: handleClusterStatus, client: "Client.Cluster",
			modelled: "standalone node entry (nodeid 0, local 1) or cluster + node entries; level \"\"", notModelled: "quorum loss"},
		{method: "GET", pattern: "/cluster/resources", handler: handleClusterResources, client: "Cluster.Resources",
			modelled: "qemu (vmid number, template 0/1, lock, tags), node, storage, sdn entries; `type` filter", notModelled: "lxc, pools, PVE 9 `network` entries, RRD staleness"},
		{method: "GET", pattern: "/cluster/nextid", handler: handleNextID, client: "Cluster.NextID / CheckID",
			modelled: "first free id ≥ 100 as a JSON string; `vmid` taken → 400 `VM N already exists`", notModelled: "datacenter next-id range"},
		{method: "GET", pattern: "/cluster/mapping/pci", priv: "", handler: handleMappingList, client: "Cluster.PCIMappings",
			modelled: "only mappings with Mapping.Audit/Use/Modify on /mapping/pci/ID; id, description, map, digest (of the whole mapping file); `check-node` adds checks (no mapping for the node, missing device, id mismatch)", notModelled: "mdev/live-migration flags"},
		{method: "POST", pattern: "/cluster/mapping/pci", priv: "Mapping.Modify", privOn: "/mapping/pci", handler: handleMappingCreate,
			client: "Cluster.NewPCIMapping", modelled: "create with map entries (node, path, id required); duplicate id → 500", notModelled: "subsystem-id validation"},
		{method: "GET", pattern: "/cluster/mapping/pci/{id}", priv: "", handler: handleMappingGet, client: "Cluster.PCIMapping",
			modelled: "the config section (no id) with digest; unknown → 500 `mapping 'x' not found`", notModelled: ""},
		{method: "DELETE", pattern: "/cluster/mapping/pci/{id}", priv: "Mapping.Modify", privOn: "/mapping/pci", handler: handleMappingDelete,
			client: "Cluster.DeletePCIMapping", modelled: "removal; a missing id is not an error", notModelled: "—"},
		{method: "GET", pattern: "/nodes/{node}/hardware/pci", priv: "Sys.Audit|Sys.Modify", privOn: "/", handler: handlePCIList,
			client: "Node.ListPCIDevices", modelled: "class blacklist (default 05;06;0b), verbose names, iommugroup (-1 when IOMMU is off), no mdev key for the vfio GPU",
			notModelled: "physfn/virtfns (SR-IOV)"},
		{method: "GET", pattern: "/nodes/{node}/hardware/pci/{pciid}", priv: "Sys.Audit", privOn: "/nodes/{node}", handler: handlePCIDevice,
			client: "PCIDevice index", modelled: "index [{method: mdev}]", notModelled: ""},
		{method: "GET", pattern: "/nodes/{node}/hardware/pci/{pciid}/mdev", priv: "Sys.Audit", privOn: "/nodes/{node}", handler: handlePCIMdev,
			client: "PCIDevice.Mdev", modelled: "empty list (no mediated devices)", notModelled: "vGPU types"},
		{method: "GET", pattern: "/nodes/{node}/storage", handler: handleStorageList, client: "Node.Storages",
			modelled: "storages of the node the caller has Datastore.Audit or Datastore.AllocateSpace on, with content, active/enabled/shared 0/1, total/used/avail, used_fraction; `content` filter", notModelled: "`format`, `target`"},
		{method: "GET", pattern: "/nodes/{node}/storage/{storage}/status", priv: "Datastore.Audit", privOn: "/storage/{storage}", handler: handleStorageStatus,
			client: "Node.Storage", modelled: "same fields without `storage`; missing → 500 `storage 'x' does not exist`", notModelled: ""},
		{method: "GET", pattern: "/nodes/{node}/storage/{storage}/content", priv: "Datastore.Audit|Datastore.AllocateSpace", privOn: "/storage/{storage}", handler: handleStorageContent,
			client: "Storage.GetContent", modelled: "volid, content, format, size, ctime, vmid; `content`/`vmid` filters; VM disks appear and vanish with the VM",
			notModelled: "notes, protected, verification"},
		{method: "GET", pattern: "/nodes/{node}/storage/{storage}/content/{volume...}", priv: "Datastore.Audit", privOn: "/storage/{storage}", handler: handleVolumeGet,
			client: "Storage.ISO / volume attributes", modelled: "path, size, used, format; missing → 500 `file_size_info on 'vol' failed`", notModelled: "notes, protected"},
		{method: "POST", pattern: "/nodes/{node}/storage/{storage}/download-url", handler: handleDownloadURL,
			client: "Storage.DownloadURL", modelled: "permission check (Datastore.AllocateTemplate on /storage/X and Sys.Audit+Sys.Modify on / or Sys.AccessNetwork on the node); " +
				"file-based storage, content configured, file name normalised and its extension per content (import: .ova from PVE 8.3, .ova/.qcow2/.raw/.vmdk from 8.4; `import` refused before 8.3); " +
				"`download` task: wget lines with dot:giga progress, checksum verified (`checksum mismatch: got … != expect …`, no volume left), existing file with the same checksum is kept (`no need to download`), " +
				"unknown URL = unresolvable host (exit code 4), source HTTP error (exit code 8); files come from the topology's DownloadSources, never the network",
			notModelled: "compression, proxies, certificate checks, OVA/image content validation; a declared (size + sha256) source checks only sha256"},
		{method: "GET", pattern: "/nodes/{node}/qemu", handler: handleQemuList, client: "Node.VirtualMachines",
			modelled: "vmid number, status, cpus, maxmem, maxdisk, pid only when running, template only for templates, lock, tags", notModelled: "serial, full=1 extras"},
		{method: "POST", pattern: "/nodes/{node}/qemu", priv: "VM.Allocate", privOn: "/vms/{vmid}", handler: handleCreate,
			client: "Node.NewVirtualMachine",
			modelled: "JSON and form bodies; schema typing; qemu-server create permission checks for tokens and other users (storage, option classes, serial, mapping Mapping.Use, bridge SDN.Use); sshkeys urlencoded (400) and key validation (500); hostpci syntax (400) and root-only raw hostpci (500); " +
				"storage missing for new disks (500) / without images content (400); VM exists (500); `lock: create` while the qmcreate task runs; " +
				"disk rewrite `local-lvm:500` → `local-lvm:vm-N-disk-M,…,size=500G`; `import-from=` copies the image (size of the source); cloudinit drive; " +
				"MAC added to netN; smbios1, vmgenid, meta, default boot; task failure (also an injected one) removes the config and volumes (create_vm); start=1",
			notModelled: "restore (archive), pools, efidisk/tpm content, unique/force; while qmcreate runs the real config holds only `lock: create` (here the parameters show at once)"},
		{method: "GET", pattern: "/nodes/{node}/qemu/{vmid}/config", priv: "VM.Audit", privOn: "/vms/{vmid}", handler: handleConfigGet,
			client: "VirtualMachine.Ping / Node.VirtualMachine", modelled: "typed values (ints, 0/1, strings incl. memory and agent), digest (SHA-1 of the rendered config), no vmid, cipassword masked; missing → 500",
			notModelled: "pending changes (updates apply at once), snapshots"},
		{method: "PUT", pattern: "/nodes/{node}/qemu/{vmid}/config", priv: "VM.Config.HWType", privOn: "/vms/{vmid}", handler: handleConfigPut,
			client: "VirtualMachine.ConfigSync", modelled: "sync update: lock (500 `VM is locked (x)`), digest check (500 `checksum mismatch (file change by other user?)`), hostpci root-only on set/modify/delete, delete list (disks → unusedN), new disks, MAC",
			notModelled: "pending/hotplug semantics for running VMs, revert"},
		{method: "POST", pattern: "/nodes/{node}/qemu/{vmid}/config", priv: "VM.Config.HWType", privOn: "/vms/{vmid}", handler: handleConfigPost,
			client: "VirtualMachine.Config", modelled: "same checks synchronously, then a qmconfig task applies the change (digest checked again in the task)", notModelled: "background_delay (always a UPID)"},
		{method: "PUT", pattern: "/nodes/{node}/qemu/{vmid}/resize", priv: "VM.Config.Disk", privOn: "/vms/{vmid}", handler: handleResize,
			client: "VirtualMachine.ResizeDisk", modelled: "task type `resize`; absolute and +size; shrink and missing disk fail in the task; volume size updated", notModelled: "per-storage size rounding"},
		{method: "GET", pattern: "/nodes/{node}/qemu/{vmid}/status/current", priv: "VM.Audit", privOn: "/vms/{vmid}", handler: handleStatusCurrent,
			client: "VirtualMachine.Ping", modelled: "stopped minimal set, running adds pid, running-machine/qemu, ballooninfo, nics, proxmox-support; agent:1 when configured; lock; ha.managed 0",
			notModelled: "live counters (static values)"},
		{method: "POST", pattern: "/nodes/{node}/qemu/{vmid}/status/start", priv: "VM.PowerMgmt", privOn: "/vms/{vmid}", handler: handleStart,
			client: "VirtualMachine.Start", modelled: "qmstart task: config missing, lock, already running, template, hostpci resolution (raw slot = all functions, mapping for this node), " +
				"q35 check, PCI reservation by full function id (in use by a running VM / currently reserved by a starting one; a reservation whose VM no longer runs is taken with the log line " +
				"`leftover PCI reservation found for …, lets take it...` and TASK OK), IOMMU, vfio bind (`can't unbind/bind PCI group to VFIO '…'`, SetPCIFault), " +
				"memory: QEMU cannot allocate more than node memory minus 4 GiB host minus running VMs (`start failed: QEMU exited with code 1`, kvm stderr line in the log), " +
				"kvm timeout (`start failed: command '/usr/bin/kvm -id N …' failed: got timeout`, SetVMFault); cicustom snippets must exist; guest PowerOn with BootInfo",
			notModelled: "hugepage allocation failures (`hugepage allocation failed at …`; inject with FailTask); `already in use by running VMID` (not reachable through the API: qemu-server passes a pid only in vm_start_nolock's " +
				"post-start re-reserve, which finds the time-based entry the same start wrote and is wrapped in eval/warn; start of a running VM fails earlier with `VM N already running`)"},
		{method: "POST", pattern: "/nodes/{node}/qemu/{vmid}/status/stop", priv: "VM.PowerMgmt", privOn: "/vms/{vmid}", handler: handleStop,
			client: "VirtualMachine.Stop", modelled: "qmstop task; releases PCI; guest PowerOff(false); stop of a stopped VM is OK", notModelled: "timeout"},
		{method: "POST", pattern: "/nodes/{node}/qemu/{vmid}/status/shutdown", priv: "VM.PowerMgmt", privOn: "/vms/{vmid}", handler: handleShutdown,
			client: "VirtualMachine.Shutdown", modelled: "qmshutdown task; `VM N not running` when stopped; guest PowerOff(true)", notModelled: "guests ignoring ACPI"},
		{method: "POST", pattern: "/nodes/{node}/qemu/{vmid}/status/reboot", priv: "VM.PowerMgmt", privOn: "/vms/{vmid}", handler: handleReboot,
			client: "VirtualMachine.Reboot", modelled: "qmreboot task; new pid; guest Reboot(); PCI stays reserved", notModelled: ""},
		{method: "POST", pattern: "/nodes/{node}/qemu/{vmid}/status/reset", priv: "VM.PowerMgmt", privOn: "/vms/{vmid}", handler: handleReset,
			client: "VirtualMachine.Reset", modelled: "qmreset task; guest Reboot()", notModelled: ""},
		{method: "DELETE", pattern: "/nodes/{node}/qemu/{vmid}", priv: "VM.Allocate", privOn: "/vms/{vmid}", handler: handleDestroy,
			client: "VirtualMachine.Delete", modelled: "sync: config missing, running (`VM N is running - destroy failed`), protection; qmdestroy task: lock, volumes freed, PCI released, guest Destroy(); empty query accepted",
			notModelled: "HA/replication/backup-job purge effects"},
		{method: "GET", pattern: "/nodes/{node}/tasks/{upid}/status", priv: "", handler: handleTaskStatus,
			client: "Task.Ping / Wait", modelled: "numbers for pid/pstart/starttime, user + tokenid for token tasks, running → stopped, exitstatus from the last log line, no endtime; bad/unknown UPID → 400",
			notModelled: ""},
		{method: "GET", pattern: "/nodes/{node}/tasks/{upid}/log", priv: "", handler: handleTaskLog,
			client: "Task.Log", modelled: "[{n,t}] 1-based with start/limit, total; `no content` for an empty log; TASK OK / TASK ERROR / TASK WARNINGS", notModelled: "download"},
		{method: "DELETE", pattern: "/nodes/{node}/tasks/{upid}", priv: "", handler: handleTaskStop,
			client: "Task.Stop", modelled: "interrupts a running task (`received interrupt`)", notModelled: ""},
		{method: "POST", pattern: "/nodes/{node}/qemu/{vmid}/agent/ping", priv: "VM.Monitor", privOn: "/vms/{vmid}", handler: handleAgentPing,
			client: "VirtualMachine.AgentPing", modelled: "agent checks in PVE order: config, `No QEMU guest agent configured`, `VM N is not running`, `QEMU guest agent is not running`", notModelled: ""},
		{method: "GET", pattern: "/nodes/{node}/qemu/{vmid}/agent/get-osinfo", priv: "VM.Monitor", privOn: "/vms/{vmid}", handler: handleAgentOSInfo,
			client: "VirtualMachine.AgentOsInfo / WaitForAgent", modelled: "{result: guest OSInfo}", notModelled: ""},
		{method: "GET", pattern: "/nodes/{node}/qemu/{vmid}/agent/get-host-name", priv: "VM.Monitor", privOn: "/vms/{vmid}", handler: handleAgentHostName,
			client: "VirtualMachine.AgentGetHostName", modelled: "{result:{host-name}} from the guest's /etc/hostname", notModelled: ""},
		{method: "GET", pattern: "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", priv: "VM.Monitor", privOn: "/vms/{vmid}", handler: handleAgentInterfaces,
			client: "VirtualMachine.AgentGetNetworkIFaces", modelled: "lo included, ip-addresses omitted when none, statistics", notModelled: ""},
		{method: "POST", pattern: "/nodes/{node}/qemu/{vmid}/agent/exec", priv: "VM.Monitor", privOn: "/vms/{vmid}", handler: handleAgentExec,
			client: "VirtualMachine.AgentExec", modelled: "command array (JSON array or repeated form field), input-data; {pid} without result wrapper", notModelled: ""},
		{method: "GET", pattern: "/nodes/{node}/qemu/{vmid}/agent/exec-status", priv: "VM.Monitor", privOn: "/vms/{vmid}", handler: handleAgentExecStatus,
			client: "VirtualMachine.AgentExecStatus", modelled: "exited 0/1, exitcode or signal (int), out-data/err-data decoded", notModelled: "truncation flags"},
		{method: "GET", pattern: "/nodes/{node}/qemu/{vmid}/agent/file-read", priv: "VM.Monitor", privOn: "/vms/{vmid}", handler: handleAgentFileRead,
			client: "VirtualMachine.AgentFileRead", modelled: "content (+ truncated 1 over 16 MiB)", notModelled: ""},
	}
	rs = append(rs, clientRoutes()...)
	for _, r := range rs {
		r.segs = splitPath(r.pattern)
		r.class = classify(r.method, strings.ReplaceAll(r.pattern, "{", ""))
	}
	return rs
}
