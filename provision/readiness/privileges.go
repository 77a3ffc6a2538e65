package readiness

import (
	"fmt"
	"strings"

	"github.com/aimachine/aimachine/catalog"
)

// Need is one privilege (or one of several, Any) a step needs on a path.
type Need struct {
	Step  string   // "create the VM"
	Path  string   // "/vms/140"
	Privs []string // all of them, or any one with Any
	Any   bool
	// Why names the API call and where the rule comes from.
	Why string
	// OrRootSysModify: Sys.Audit and Sys.Modify on / also satisfy it (download-url's 'or').
	OrRootSysModify bool
}

func (n Need) label() string {
	if n.Any {
		return strings.Join(n.Privs, " or ")
	}
	return strings.Join(n.Privs, ", ")
}

// Needs lists what deploying vm (and, with prepare, its host steps) asks of the credentials.
// The paths and privileges come from the permissions of each endpoint in the PVE 9.1.3 API
// schema and from qemu-server's create checks (src/PVE/API2/Qemu.pm: $check_storage_access,
// $check_vm_modify_config_perm, check_hostpci_perm, PVE::QemuServer::check_bridge_access →
// pve-guest-common GuestHelpers::check_vnet_access). Guest agent calls need VM.Monitor before
// PVE 9 and VM.GuestAgent.* from PVE 9 (pve-access-control 0706945 "privileges: drop VM.Monitor").
func Needs(vm *catalog.VM, pve9 bool, prepare Prepared) []Need {
	vmPath := fmt.Sprintf("/vms/%d", vm.ID)
	node := "/nodes/" + vm.Node
	disk := "/storage/" + vm.Disk.Storage
	var n []Need
	add := func(step, path, why string, any bool, privs ...string) {
		n = append(n, Need{Step: step, Path: path, Privs: privs, Any: any, Why: why})
	}
	const read, create, run = "read the host (plan, preflight)", "create the VM", "run the VM"
	add(read, node, "GET /nodes/{node}/status", false, "Sys.Audit")
	add(read, "/", "GET /cluster/status", false, "Sys.Audit")
	add(read, vmPath, "GET /nodes/{node}/qemu/{vmid}/config", false, "VM.Audit")
	add(read, disk, "GET /nodes/{node}/storage/{storage}/content", true, "Datastore.Audit", "Datastore.AllocateSpace")
	add(create, vmPath, "POST /nodes/{node}/qemu", false, "VM.Allocate")
	add(create, disk, "new disks: $check_storage_access", false, "Datastore.AllocateSpace")
	if img := storageOf(vm.Image.CloudImage); img != "" {
		add(read, "/storage/"+img, "GET /nodes/{node}/storage/{storage}/content", true, "Datastore.Audit", "Datastore.AllocateSpace")
		add(create, "/storage/"+img, "import-from: PVE::Storage::check_volume_access (import volumes)", true, "Datastore.AllocateSpace", "Datastore.Audit", "Datastore.Allocate")
	}
	if iso := storageOf(vm.Image.ISO); iso != "" {
		add(create, "/storage/"+iso, "ISO: PVE::Storage::check_volume_access", true, "Datastore.AllocateSpace", "Datastore.Audit", "Datastore.Allocate")
	}
	if sn := storageOf(vm.Image.VendorData); sn != "" {
		add(read, "/storage/"+sn, "GET /nodes/{node}/storage/{storage}/content", true, "Datastore.Audit", "Datastore.AllocateSpace")
	}
	add(create, vmPath, "cores, cpu, sockets: $check_vm_modify_config_perm", false, "VM.Config.CPU")
	add(create, vmPath, "memory, balloon", false, "VM.Config.Memory")
	add(create, vmPath, "machine, scsihw, vga, serial0 socket", false, "VM.Config.HWType")
	add(create, vmPath, "name, bios, agent, onboot, description", false, "VM.Config.Options")
	add(create, vmPath, "boot", false, "VM.Config.Disk")
	add(create, vmPath, "net0", false, "VM.Config.Network")
	add(create, vmPath, "ciuser, sshkeys, ipconfig0, nameserver, cicustom", true, "VM.Config.Cloudinit", "VM.Config.Network")
	add(create, "/sdn/zones/localnetwork/"+vm.Network.Bridge, "net0 bridge: check_bridge_access", false, "SDN.Use")
	add(create, vmPath, "grow the disk: PUT /nodes/{node}/qemu/{vmid}/resize", false, "VM.Config.Disk")
	if vm.GPUEnabled() {
		add(read, "/", "GET /nodes/{node}/hardware/pci", true, "Sys.Audit", "Sys.Modify")
		if m := vm.GPU.Mapping; m != "" {
			add(read, "/mapping/pci/"+m, "GET /cluster/mapping/pci (lists only mappings you may see)", true, "Mapping.Audit", "Mapping.Use", "Mapping.Modify")
			add(create, "/mapping/pci/"+m, "hostpci0 mapping: check_hostpci_perm", false, "Mapping.Use")
		}
	}
	add(run, vmPath, "POST /nodes/{node}/qemu/{vmid}/status/start and stop", false, "VM.PowerMgmt")
	if vm.AgentEnabled() {
		if pve9 {
			add(run, vmPath, "guest agent ping, interfaces", true, "VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted")
			add(run, vmPath, "guest agent exec (host key pinning)", false, "VM.GuestAgent.Unrestricted")
		} else {
			add(run, vmPath, "guest agent calls (agent/ping, exec, file-read)", false, "VM.Monitor")
		}
	}
	if prepare.Image {
		img := storageOf(vm.Image.CloudImage)
		add("prepare: download the cloud image", "/storage/"+img, "POST /nodes/{node}/storage/{storage}/download-url", false, "Datastore.AllocateTemplate")
		add("prepare: download the cloud image", node, "download-url: Sys.AccessNetwork on the node (or Sys.Audit+Sys.Modify on /)", false, "Sys.AccessNetwork")
		n[len(n)-1].OrRootSysModify = true
	}
	if prepare.Mapping && vm.GPUEnabled() && vm.GPU.Mapping != "" {
		add("prepare: create the PCI mapping", "/mapping/pci", "POST /cluster/mapping/pci", false, "Mapping.Modify")
	}
	return n
}

// Prepared says which host steps prepare still has to do (their privileges count then).
type Prepared struct {
	Image   bool
	Mapping bool
}

func storageOf(volid string) string {
	s, _, ok := strings.Cut(volid, ":")
	if !ok {
		return ""
	}
	return s
}

// roleFor suggests a built-in role holding priv (pve-access-control AccessControl.pm
// create_roles: PVE<Cat>User = user+audit privileges, PVE<Cat>Admin = admin+user+audit; the
// Sys root privileges are only in Administrator, so they get a custom role).
func roleFor(priv string) (role string, custom bool) {
	switch priv {
	case "VM.Config.Cloudinit", "VM.PowerMgmt", "VM.Config.CDROM", "VM.Console", "VM.Backup", "VM.Audit",
		"VM.GuestAgent.Audit", "VM.GuestAgent.FileRead":
		return "PVEVMUser", false
	case "Datastore.AllocateSpace", "Datastore.Audit":
		return "PVEDatastoreUser", false
	case "Datastore.AllocateTemplate", "Datastore.Allocate":
		return "PVEDatastoreAdmin", false
	case "Sys.Audit":
		return "PVEAuditor", false
	case "SDN.Use":
		return "PVESDNUser", false
	case "Mapping.Use", "Mapping.Audit":
		return "PVEMappingUser", false
	case "Mapping.Modify":
		return "PVEMappingAdmin", false
	case "Sys.AccessNetwork", "Sys.Modify", "Sys.PowerMgmt":
		return "AimachineSys", true
	}
	if strings.HasPrefix(priv, "VM.") {
		return "PVEVMAdmin", false
	}
	return "Administrator", false
}

// grantFix is the pveum command that grants priv on path to the principal.
func grantFix(principal string, token, privsep bool, path, priv string) string {
	role, custom := roleFor(priv)
	who := "--users " + principal
	if token {
		who = "--tokens '" + principal + "'"
	}
	var b strings.Builder
	if custom {
		fmt.Fprintf(&b, "pveum role add %s --privs %s; ", role, priv)
	}
	fmt.Fprintf(&b, "pveum acl modify %s --roles %s %s", path, role, who)
	if token && privsep {
		user, _, _ := strings.Cut(principal, "!")
		fmt.Fprintf(&b, " (a privilege-separated token keeps only what its user %s also holds there)", user)
	}
	return b.String()
}
