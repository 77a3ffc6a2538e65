package readiness

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/pve"
)

func (d *doctor) nodePCI(ctx context.Context, node string) ([]pve.PCIDevice, error) {
	if p, ok := d.pcis[node]; ok {
		return p, nil
	}
	p, err := d.h.api.PCIDevices(ctx, node)
	if err != nil {
		return nil, err
	}
	d.pcis[node] = p
	return p, nil
}

// slotsWithID are the slots (0000:01:00) whose function .0 has the PCI id (10de:2d04).
func slotsWithID(devs []pve.PCIDevice, pciID string) []string {
	var out []string
	for _, dv := range devs {
		if strings.HasSuffix(dv.ID, ".0") && dv.PCIID() == pciID {
			out = append(out, strings.TrimSuffix(dv.ID, ".0"))
		}
	}
	return out
}

// devicesAt are the functions a hostpci path names: a slot (all functions) or one function.
func devicesAt(devs []pve.PCIDevice, path string) []pve.PCIDevice {
	if !strings.HasPrefix(path, "0000:") && strings.Count(path, ":") == 1 {
		path = "0000:" + path
	}
	var out []pve.PCIDevice
	for _, dv := range devs {
		if dv.ID == path || strings.HasPrefix(dv.ID, path+".") {
			out = append(out, dv)
		}
	}
	return out
}

func slotOf(id string) string {
	if i := strings.LastIndex(id, "."); i > strings.LastIndex(id, ":") {
		return id[:i]
	}
	return id
}

// MappingFor is the mapping entry prepare creates for vm's GPU: its slot on vm's node found by
// expect.pci_id (exactly one such card), all functions, with the IOMMU group.
func MappingFor(vm *catalog.VM, devs []pve.PCIDevice) (pve.PCIMappingEntry, error) {
	slots := slotsWithID(devs, vm.GPU.Expect.PCIID)
	switch len(slots) {
	case 0:
		return pve.PCIMappingEntry{}, fmt.Errorf("node %s has no PCI device %s (gpu.expect.pci_id)", vm.Node, vm.GPU.Expect.PCIID)
	case 1:
	default:
		return pve.PCIMappingEntry{}, fmt.Errorf("node %s has %d devices %s (%s): create the mapping by hand for the one to pass through",
			vm.Node, len(slots), vm.GPU.Expect.PCIID, strings.Join(slots, ", "))
	}
	e := pve.PCIMappingEntry{Node: vm.Node, Path: slots[0], ID: vm.GPU.Expect.PCIID}
	if fs := devicesAt(devs, slots[0]); len(fs) > 0 && fs[0].IOMMUGroup >= 0 {
		e.IOMMUGroup = strconv.Itoa(fs[0].IOMMUGroup)
	}
	return e, nil
}

// MappingCommand is the pvesh command that creates the mapping by hand.
func MappingCommand(id string, e pve.PCIMappingEntry) string {
	m := "node=" + e.Node + ",path=" + e.Path + ",id=" + e.ID
	if e.IOMMUGroup != "" {
		m += ",iommugroup=" + e.IOMMUGroup
	}
	return "pvesh create /cluster/mapping/pci --id " + id + " --map " + m
}

// gpuChecks checks the GPU; it reports whether prepare has to create the mapping.
func (d *doctor) gpuChecks(ctx context.Context, vm *catalog.VM) (needMapping bool) {
	name, g := vm.Name, vm.GPU
	devs, err := d.nodePCI(ctx, vm.Node)
	if err != nil {
		d.fail(Check{Kind: KindGPU, VM: name, Name: "GPU present", Detail: err.Error(), Fix: "see the privilege checks (Sys.Audit on /)"})
		return false
	}
	path := g.PCIAddress
	label := "GPU " + g.PCIAddress
	if g.Mapping != "" {
		label = "GPU (mapping " + g.Mapping + ")"
		var m *pve.PCIMapping
		for i := range d.mappings {
			if d.mappings[i].ID == g.Mapping {
				m = &d.mappings[i]
			}
		}
		entry, derr := MappingFor(vm, devs)
		switch {
		case m == nil && derr != nil:
			d.fail(Check{Kind: KindMapping, VM: name, Name: "PCI mapping " + g.Mapping + " exists", Detail: "no such cluster mapping; " + derr.Error(),
				Fix: "Datacenter → Resource Mappings → Add, for the card to pass through"})
			return false
		case m == nil:
			d.fail(Check{Kind: KindMapping, VM: name, Name: "PCI mapping " + g.Mapping + " exists", Detail: "no such cluster mapping",
				Fix: "aimachine prepare --vm " + name + ", or: " + MappingCommand(g.Mapping, entry), Prepare: true})
			needMapping = true
			path = entry.Path
		default:
			var on *pve.PCIMappingEntry
			for i := range m.Map {
				if m.Map[i].Node == vm.Node {
					on = &m.Map[i]
				}
			}
			if on == nil {
				d.fail(Check{Kind: KindMapping, VM: name, Name: "PCI mapping " + g.Mapping + " has node " + vm.Node, Detail: "the mapping has no entry for the node",
					Fix: "Datacenter → Resource Mappings → " + g.Mapping + " → Edit: add node " + vm.Node + " with its card"})
				return false
			}
			d.ok(Check{Kind: KindMapping, VM: name, Name: "PCI mapping " + g.Mapping + " exists", Detail: "node " + vm.Node + " → " + on.Path})
			path = on.Path
			if on.ID != "" && on.ID != g.Expect.PCIID {
				d.fail(Check{Kind: KindMapping, VM: name, Name: "PCI mapping " + g.Mapping + " names the catalog's card",
					Detail: "mapping id " + on.ID + ", gpu.expect.pci_id " + g.Expect.PCIID, Fix: "fix gpu.expect.pci_id in the catalog or the mapping"})
			}
		}
	}
	fns := devicesAt(devs, path)
	if len(fns) == 0 {
		d.fail(Check{Kind: KindGPU, VM: name, Name: label + " present on node " + vm.Node, Detail: "no PCI device at " + path,
			Fix: "lspci -nn on the node shows the card's address; fix gpu.pci_address (or the mapping)"})
		return needMapping
	}
	gpu := fns[0]
	d.ok(Check{Kind: KindGPU, VM: name, Name: label + " present on node " + vm.Node, Detail: gpu.ID + " " + gpu.PCIID() + " " + gpu.DeviceName})
	if want := g.Expect.PCIID; want != "" && gpu.PCIID() != want {
		d.fail(Check{Kind: KindGPU, VM: name, Name: "GPU is the catalog's card", Detail: "found " + gpu.PCIID() + ", gpu.expect.pci_id " + want,
			Fix: "fix gpu.pci_address/mapping or gpu.expect.pci_id in the catalog"})
	}
	if gpu.IOMMUGroup < 0 {
		d.fail(Check{Kind: KindGPU, VM: name, Name: "IOMMU on", Detail: "the node reports no IOMMU group (iommugroup -1): passthrough cannot start",
			Fix: "enable VT-d/AMD-Vi in the firmware; on GRUB add intel_iommu=on (Intel; AMD has it on by default) to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, update-grub and reboot " +
				"(systemd-boot: /etc/kernel/cmdline, proxmox-boot-tool refresh); then dmesg | grep -e DMAR -e IOMMU"})
	} else {
		d.ok(Check{Kind: KindGPU, VM: name, Name: "IOMMU on", Detail: "group " + strconv.Itoa(gpu.IOMMUGroup)})
		var others []string
		for _, dv := range devs {
			if dv.IOMMUGroup == gpu.IOMMUGroup && slotOf(dv.ID) != slotOf(gpu.ID) {
				others = append(others, dv.ID+" "+dv.DeviceName)
			}
		}
		if len(others) > 0 {
			d.warn(Check{Kind: KindGPU, VM: name, Name: "IOMMU group " + strconv.Itoa(gpu.IOMMUGroup) + " holds only the GPU", Detail: "also: " + strings.Join(others, "; ") + " (they go to the VM together)",
				Fix: "move the card to a slot with its own group (pvesh get /nodes/" + vm.Node + "/hardware/pci shows the groups), or check the firmware's ACS setting"})
		} else {
			d.ok(Check{Kind: KindGPU, VM: name, Name: "IOMMU group " + strconv.Itoa(gpu.IOMMUGroup) + " holds only the GPU"})
		}
	}
	d.holders(ctx, vm, slotOf(gpu.ID))
	if g.PCIAddress != "" && !d.h.id.IsRootPam() {
		d.fail(Check{Kind: KindGPU, VM: name, Name: "raw PCI address allowed", Detail: d.h.id.User + " may not set a raw hostpci: qemu-server check_hostpci_perm allows it to root@pam only",
			Fix: "use gpu.mapping: NAME instead of gpu.pci_address in the catalog (aimachine prepare creates the mapping), or log in as root@pam (" + "PROXMOX_VE_USERNAME/PROXMOX_VE_PASSWORD)"})
	}
	return needMapping
}

// holders finds other VMs on the node that pass the same slot through.
func (d *doctor) holders(ctx context.Context, vm *catalog.VM, slot string) {
	var running, onboot []string
	for _, r := range d.vmRes {
		if r.VMID == vm.ID || r.Node != vm.Node || r.Template {
			continue
		}
		cfg, err := d.h.api.VMConfig(ctx, r.Node, r.VMID)
		if err != nil {
			continue
		}
		keys := cfg.Keys()
		sort.Strings(keys)
		for _, k := range keys {
			if !strings.HasPrefix(k, "hostpci") {
				continue
			}
			kv := pve.ParsePropertyString(cfg[k], "host")
			var paths []string
			if h := kv["host"]; h != "" {
				paths = strings.Split(h, ";")
			} else if m := kv["mapping"]; m != "" {
				for _, mp := range d.mappings {
					for _, e := range mp.Map {
						if mp.ID == m && e.Node == vm.Node {
							paths = append(paths, e.Path)
						}
					}
				}
			}
			for _, p := range paths {
				if !strings.HasPrefix(p, "0000:") {
					p = "0000:" + p
				}
				if slotOf(p) != slot && p != slot {
					continue
				}
				who := fmt.Sprintf("VM %d %s", r.VMID, r.Name)
				if r.Status == "running" {
					running = append(running, who)
				} else if cfg["onboot"] == "1" {
					onboot = append(onboot, who)
				}
			}
		}
	}
	switch {
	case len(running) > 0:
		d.fail(Check{Kind: KindGPU, VM: vm.Name, Name: "GPU not held by another VM", Detail: "running: " + strings.Join(running, ", "),
			Fix: "stop it (qm stop ID) and take the GPU out of its config, or pick another GPU in the catalog"})
	case len(onboot) > 0:
		d.warn(Check{Kind: KindGPU, VM: vm.Name, Name: "GPU not held by another VM", Detail: "start on boot with the same GPU: " + strings.Join(onboot, ", ") + " (whichever starts second fails)",
			Fix: "qm set ID --onboot 0 on the other VM, or remove its hostpci entry"})
	default:
		d.ok(Check{Kind: KindGPU, VM: vm.Name, Name: "GPU not held by another VM"})
	}
}

// privilegeChecks compares the credentials' privileges with what each step needs.
func (d *doctor) privilegeChecks(ctx context.Context, prep map[int]Prepared) {
	if d.h.id.IsRootPam() {
		d.ok(Check{Kind: KindPrivilege, Name: "privileges", Detail: "root@pam holds every privilege"})
		return
	}
	perms, err := d.h.api.Permissions(ctx)
	if err != nil {
		d.fail(Check{Kind: KindPrivilege, Name: "privileges readable", Detail: err.Error(), Fix: "GET /access/permissions is open to every user: check the credentials"})
		return
	}
	d.perms = perms
	pve9 := d.h.atLeast(9, 0)
	seen := map[string]bool{}
	checked, missing := 0, 0
	for _, vm := range d.vms {
		for _, n := range Needs(vm, pve9, prep[vm.ID]) {
			key := n.Path + " " + n.label()
			if seen[key] {
				continue
			}
			seen[key] = true
			checked++
			var lacking []string
			if n.Any {
				found := false
				for _, p := range n.Privs {
					found = found || perms.Has(n.Path, p)
				}
				if !found {
					lacking = []string{n.Privs[0]}
				}
			} else {
				for _, p := range n.Privs {
					if !perms.Has(n.Path, p) && !(n.OrRootSysModify && perms.Has("/", "Sys.Audit") && perms.Has("/", "Sys.Modify")) {
						lacking = append(lacking, p)
					}
				}
			}
			for _, p := range lacking {
				missing++
				what := p
				if n.Any {
					what = n.label()
				}
				d.fail(Check{Kind: KindPrivilege, VM: vm.Name, Name: "privilege " + what + " on " + n.Path, Privilege: p, Path: n.Path,
					Detail: d.h.id.User + " lacks it; needed to " + n.Step + " (" + n.Why + ")",
					Fix:    grantFix(d.h.id.User, d.h.id.Token, d.h.id.Token, n.Path, p)})
			}
		}
	}
	if missing == 0 {
		d.ok(Check{Kind: KindPrivilege, Name: "privileges", Detail: fmt.Sprintf("%s holds all %d privileges the deploy needs", d.h.id.User, checked)})
	}
}
