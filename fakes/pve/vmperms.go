package pve

import (
	"regexp"
	"strings"
)

// Option classes of qemu-server src/PVE/API2/Qemu.pm ($cpuoptions, $memoryoptions,
// $hwtypeoptions, $generaloptions, $diskoptions, $cloudinitoptions) and the privilege
// $check_vm_modify_config_perm asks for each on /vms/{vmid}.
var vmOptionPriv = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"cores", "cpu", "runningcpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus"} {
		m[k] = "VM.Config.CPU"
	}
	for _, k := range []string{"memory", "balloon", "shares", "allow-ksm"} {
		m[k] = "VM.Config.Memory"
	}
	for _, k := range []string{"acpi", "hotplug", "kvm", "machine", "runningmachine", "scsihw", "smbios1", "tablet", "vga", "watchdog", "audio0", "rng0"} {
		m[k] = "VM.Config.HWType"
	}
	for _, k := range []string{"agent", "autostart", "bios", "description", "keyboard", "localtime", "migrate_downtime", "migrate_speed",
		"name", "onboot", "ostype", "protection", "reboot", "startdate", "startup", "tdf", "template"} {
		m[k] = "VM.Config.Options"
	}
	m["freeze"] = "VM.PowerMgmt"
	for _, k := range []string{"boot", "bootdisk", "vmstatestorage"} {
		m[k] = "VM.Config.Disk"
	}
	for _, k := range []string{"cicustom", "cipassword", "citype", "ciuser", "ciupgrade", "nameserver", "searchdomain", "sshkeys"} {
		m[k] = "cloudinit"
	}
	return m
}()

var reSkipPermKey = regexp.MustCompile(`^(?:unused|serial|usb|hostpci|virtiofs)\d+$`)

// checkVMCreatePerms is the permission part of qemu-server's create_vm for a new VM, in its
// order: $check_storage_access (new disks: Datastore.AllocateSpace on the storage; import-from
// a PVE volume: PVE::Storage::check_volume_access, i.e. Datastore.Allocate, or for iso/vztmpl/import
// volumes any of Datastore.AllocateSpace/Datastore.Audit), $check_vm_modify_config_perm (per
// option class on /vms/{vmid}; cloud-init options: any of VM.Config.Cloudinit/VM.Config.Network;
// unknown options: "only root can set 'X' config"), serial sockets (VM.Config.HWType),
// check_hostpci_perm (mapping: Mapping.Use on /mapping/pci/ID and VM.Config.HWType), and
// check_bridge_access (pve-guest-common GuestHelpers::check_vnet_access: SDN.Use on
// /sdn/zones/localnetwork/BRIDGE, or .../BRIDGE/TAG with a tag). root@pam passes everything.
func (s *Server) checkVMCreatePerms(id *identity, vmid string, p params, keys []string) error {
	if id.authUser() == "root@pam" {
		return nil
	}
	has := func(path, priv string) bool { return s.permitted(id, path, priv) }
	need := func(path, priv string) error {
		if !has(path, priv) {
			return errPerm(path, priv)
		}
		return nil
	}
	vmPath := "/vms/" + vmid
	// storage access
	for _, k := range keys {
		if !reDiskKey.MatchString(k) {
			continue
		}
		d := parseDrive(p.get(k))
		store, vol, _ := strings.Cut(d.file, ":")
		switch {
		case d.file == "" || d.file == "none" || d.file == "cloudinit" || vol == "cloudinit":
		case reNewDisk.MatchString(d.file):
			if err := need("/storage/"+store, "Datastore.AllocateSpace"); err != nil {
				return err
			}
		default:
			if err := s.checkVolumeAccess(id, d.file); err != nil {
				return err
			}
		}
		if src := d.opts["import-from"]; src != "" && strings.Contains(src, ":") {
			if err := s.checkVolumeAccess(id, src); err != nil {
				return err
			}
		}
	}
	// option classes
	for _, k := range keys {
		if k == "vmid" || k == "node" || k == "start" || k == "storage" || k == "pool" || k == "unique" || k == "force" || k == "tags" ||
			k == "cdrom" || reDiskKey.MatchString(k) || reSkipPermKey.MatchString(k) {
			continue
		}
		switch priv := vmOptionPriv[k]; {
		case strings.HasPrefix(k, "numa"):
			if err := need(vmPath, "VM.Config.CPU"); err != nil {
				return err
			}
		case strings.HasPrefix(k, "net"):
			if err := need(vmPath, "VM.Config.Network"); err != nil {
				return err
			}
		case priv == "cloudinit" || strings.HasPrefix(k, "ipconfig"):
			if !has(vmPath, "VM.Config.Cloudinit") && !has(vmPath, "VM.Config.Network") {
				return errPerm(vmPath, "VM.Config.Cloudinit|VM.Config.Network")
			}
		case priv != "":
			if err := need(vmPath, priv); err != nil {
				return err
			}
			if k == "startup" {
				if err := need("/", "Sys.Modify"); err != nil {
					return err
				}
			}
		default:
			return errDie("only root can set '%s' config", k)
		}
	}
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "serial"):
			if p.get(k) != "socket" {
				return errDie("only root can set '%s' config for real devices", k)
			}
			if err := need(vmPath, "VM.Config.HWType"); err != nil {
				return err
			}
		case strings.HasPrefix(k, "hostpci"):
			kv, _ := parsePropString(p.get(k), "host")
			if m := kv["mapping"]; m != "" {
				if err := need("/mapping/pci/"+m, "Mapping.Use"); err != nil {
					return err
				}
				if err := need(vmPath, "VM.Config.HWType"); err != nil {
					return err
				}
			}
		}
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "net") {
			continue
		}
		kv, _ := parsePropString(p.get(k), "model")
		bridge := kv["bridge"]
		if bridge == "" {
			continue
		}
		path := "/sdn/zones/localnetwork/" + bridge
		if tag := kv["tag"]; tag != "" {
			path += "/" + tag
		}
		if err := need(path, "SDN.Use"); err != nil {
			return err
		}
	}
	return nil
}

// checkVolumeAccess is PVE::Storage::check_volume_access for a PVE volume (pve-storage
// src/PVE/Storage.pm).
func (s *Server) checkVolumeAccess(id *identity, volid string) error {
	store, _, _ := strings.Cut(volid, ":")
	path := "/storage/" + store
	if s.permitted(id, path, "Datastore.Allocate") {
		return nil
	}
	switch volumeContent(volid) {
	case "iso", "vztmpl", "import":
		if s.permitted(id, path, "Datastore.AllocateSpace") || s.permitted(id, path, "Datastore.Audit") {
			return nil
		}
		return errPerm(path, "Datastore.AllocateSpace|Datastore.Audit")
	case "snippets":
		return errDie("missing privileges to access %s", volid)
	}
	return nil
}
