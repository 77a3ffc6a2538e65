package pve

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var (
	rePCIID     = regexp.MustCompile(`^(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?$`)
	reMappingID = regexp.MustCompile(`^(?i:[a-z][a-z0-9_-]*[a-z0-9])$`)
)

var hostpciBoolKeys = map[string]bool{"pcie": true, "x-vga": true, "rombar": true, "legacy-igd": true}
var hostpciKeys = map[string]bool{"host": true, "mapping": true, "pcie": true, "x-vga": true, "rombar": true, "romfile": true,
	"mdev": true, "legacy-igd": true, "vendor-id": true, "device-id": true, "sub-vendor-id": true, "sub-device-id": true}

func propBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return true, true
	case "0", "off", "no", "false":
		return false, true
	}
	return false, false
}

// hostpciFormatError validates the pve-qm-hostpci property string (400 at create/config time).
func hostpciFormatError(name, v string) string {
	kv, order := parsePropString(v, "host")
	var errs []string
	for _, k := range order {
		val := kv[k]
		switch {
		case !hostpciKeys[k]:
			errs = append(errs, fmt.Sprintf("%s.%s: property is not defined in schema and the schema does not allow additional properties", name, k))
		case k == "host":
			for _, id := range strings.Split(val, ";") {
				if !rePCIID.MatchString(id) {
					errs = append(errs, fmt.Sprintf("%s.host: value does not match the regex pattern", name))
					break
				}
			}
		case k == "mapping":
			if !reMappingID.MatchString(val) {
				errs = append(errs, fmt.Sprintf("%s.mapping: invalid format - invalid configuration ID '%s'", name, val))
			}
		case hostpciBoolKeys[k]:
			if _, ok := propBool(val); !ok {
				errs = append(errs, fmt.Sprintf("%s.%s: type check ('boolean') failed - got '%s'", name, k, val))
			}
		}
	}
	return strings.Join(errs, "\n")
}

// hostpciIsRaw tells a raw host= value (root@pam only) from a mapping=.
func hostpciIsRaw(v string) bool {
	kv, _ := parsePropString(v, "host")
	_, hasHost := kv["host"]
	return hasHost
}

// pciByPrefix returns a node's functions matching id; an id without function matches the whole slot.
func (s *Server) pciByPrefix(node, id string) []PCIDevice {
	n := s.st.node(node)
	if n == nil || id == "" {
		return nil
	}
	if strings.Count(id, ":") == 1 {
		id = "0000:" + id
	}
	var out []PCIDevice
	for _, d := range n.spec.PCI {
		if d.ID == id || (!strings.Contains(id, ".") && strings.HasPrefix(d.ID, id+".")) {
			if !n.iommu {
				d.IOMMUGroup = -1
			}
			out = append(out, d)
		}
	}
	return out
}

// pciVendorNames is the part of pci.ids the default topology needs.
var pciVendorNames = map[string]string{
	"0x10de": "NVIDIA Corporation", "0x1458": "Gigabyte Technology Co., Ltd", "0x144d": "Samsung Electronics Co Ltd",
	"0x8086": "Intel Corporation", "0x1022": "Advanced Micro Devices, Inc. [AMD]",
}

func pciEntry(d PCIDevice, iommu, verbose bool) map[string]any {
	g := d.IOMMUGroup
	if !iommu {
		g = -1
	}
	e := map[string]any{"id": d.ID, "class": d.Class, "vendor": d.Vendor, "device": d.Device, "iommugroup": g,
		"subsystem_vendor": d.SubsystemVendor, "subsystem_device": d.SubsystemDevice}
	if verbose {
		e["vendor_name"] = d.VendorName
		e["device_name"] = d.DeviceName
		if n, ok := pciVendorNames[d.SubsystemVendor]; ok {
			e["subsystem_vendor_name"] = n
		}
	}
	return e
}

func handlePCIList(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.st.node(c.vars["node"])
	black := "05;06;0b"
	if c.p.has("pci-class-blacklist") {
		black = c.p.get("pci-class-blacklist")
	}
	verbose := !c.p.has("verbose") || c.p.get("verbose") == "1"
	out := []map[string]any{}
	for _, d := range n.spec.PCI {
		skip := false
		for _, b := range strings.Split(black, ";") {
			if b != "" && strings.HasPrefix(strings.TrimPrefix(d.Class, "0x"), strings.ToLower(b)) {
				skip = true
			}
		}
		if !skip {
			out = append(out, pciEntry(d, n.iommu, verbose))
		}
	}
	return out, nil
}

func handlePCIDevice(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pciByPrefix(c.vars["node"], c.vars["pciid"])) == 0 {
		return nil, errDie("no PCI device found for '%s'", c.vars["pciid"])
	}
	return []map[string]any{{"method": "mdev"}}, nil
}

// handlePCIMdev: the GPU is not mediated-device capable (vfio passthrough), so the list is empty.
func handlePCIMdev(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pciByPrefix(c.vars["node"], c.vars["pciid"])) == 0 {
		return nil, errDie("no PCI device found for '%s'", c.vars["pciid"])
	}
	return []map[string]any{}, nil
}

// resolvedPCI is one hostpciN entry resolved on a node.
type resolvedPCI struct {
	key  string
	devs []PCIDevice
	pcie bool
	xvga bool
}

func hostpciKeysSorted(conf map[string]string) []string {
	var ks []string
	for k := range conf {
		if strings.HasPrefix(k, "hostpci") {
			ks = append(ks, k)
		}
	}
	sort.Slice(ks, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.TrimPrefix(ks[i], "hostpci"))
		b, _ := strconv.Atoi(strings.TrimPrefix(ks[j], "hostpci"))
		return a < b
	})
	return ks
}

func isQ35(machine string) bool {
	return machine == "q35" || strings.HasPrefix(machine, "pc-q35") || strings.Contains(machine, "q35")
}

// resolveHostpci turns the VM's hostpciN values into PCI functions, with PVE's start-time errors
// (called with s.mu held). Warnings reserve_pci_usage prints (a leftover reservation taken over)
// are appended to notes when it is not nil.
func (s *Server) resolveHostpci(v *vmState, reserve bool, notes *[]string) ([]resolvedPCI, error) {
	var out []resolvedPCI
	for _, key := range hostpciKeysSorted(v.conf) {
		kv, _ := parsePropString(v.conf[key], "host")
		r := resolvedPCI{key: key}
		r.pcie, _ = propBool(kv["pcie"])
		r.xvga, _ = propBool(kv["x-vga"])
		host, hasHost := kv["host"]
		mapName, hasMap := kv["mapping"]
		switch {
		case hasHost && hasMap:
			return nil, fmt.Errorf("Cannot set both 'host' and 'mapping'.")
		case hasMap:
			devs, err := s.resolveMapping(v, key, mapName)
			if err != nil {
				return nil, err
			}
			r.devs = devs
		case hasHost:
			for _, id := range strings.Split(host, ";") {
				devs := s.pciByPrefix(v.node, id)
				if len(devs) == 0 {
					return nil, fmt.Errorf("no PCI device found for '%s'", id)
				}
				r.devs = append(r.devs, devs...)
			}
		}
		out = append(out, r)
	}
	line := 501
	if s.versionAtLeast(9, 0) {
		line = 510
	}
	for _, r := range out {
		if r.pcie && !isQ35(v.conf["machine"]) {
			return nil, fmt.Errorf("q35 machine model is not enabled at /usr/share/perl5/PVE/QemuServer/PCI.pm line %d.", line)
		}
	}
	if !reserve || len(out) == 0 {
		return out, nil
	}
	for _, r := range out {
		for _, d := range r.devs {
			res := s.st.reservations[v.node+" "+d.ID]
			if res == nil || res.vmid == v.vmid {
				continue
			}
			switch {
			case res.starting:
				return nil, fmt.Errorf("PCI device '%s' is currently reserved for use by VMID '%d'", d.ID, res.vmid)
			case res.sim || s.holderRunning(v.node, res):
				return nil, fmt.Errorf("PCI device '%s' already in use by VMID '%d'", d.ID, res.vmid)
			default:
				// PCI.pm: the reserving VM's QEMU is gone (pid not running): warn and take it.
				if notes != nil {
					*notes = append(*notes, fmt.Sprintf("leftover PCI reservation found for %s, lets take it...", d.ID))
				}
			}
		}
	}
	for _, r := range out {
		for _, d := range r.devs {
			s.st.reservations[v.node+" "+d.ID] = &reservation{vmid: v.vmid, starting: true}
		}
	}
	if n := s.st.node(v.node); n != nil && !n.iommu {
		s.releasePCI(v)
		return nil, fmt.Errorf("cannot prepare PCI pass-through, IOMMU not present")
	}
	return out, nil
}

// resolveMapping picks the first free map entry of a cluster mapping for the VM's node.
func (s *Server) resolveMapping(v *vmState, key, name string) ([]PCIDevice, error) {
	m := s.st.mapping(name)
	if m == nil {
		return nil, fmt.Errorf("PCI device mapping not found for '%s'", name)
	}
	var candidates [][]PCIDevice
	for _, e := range m.maps {
		kv, _ := parsePropString(e, "")
		if kv["node"] != v.node {
			continue
		}
		devs := s.pciByPrefix(v.node, kv["path"])
		if len(devs) == 0 {
			return nil, fmt.Errorf("PCI device mapping invalid (hardware probably changed): pci device '%s' not found ", kv["path"])
		}
		if want := kv["id"]; want != "" {
			have := strings.TrimPrefix(devs[0].Vendor, "0x") + ":" + strings.TrimPrefix(devs[0].Device, "0x")
			if have != want {
				return nil, fmt.Errorf("PCI device mapping invalid (hardware probably changed): PCI device '%s' has wrong id '%s' (expected '%s') ", kv["path"], have, want)
			}
		}
		candidates = append(candidates, devs)
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("PCI device mapping not found for '%s'", name)
	}
	if len(candidates) == 1 {
		return candidates[0], nil
	}
	for _, devs := range candidates {
		free := true
		for _, d := range devs {
			if res := s.st.reservations[v.node+" "+d.ID]; res != nil && res.vmid != v.vmid {
				free = false
			}
		}
		if free {
			return devs, nil
		}
	}
	return nil, fmt.Errorf("could not find a free device for '%s'", key)
}

// holderRunning reports whether a reservation's VM still runs the QEMU that reserved the device
// (PVE compares the pid in the reservation file with the VM's running pid); s.mu held.
func (s *Server) holderRunning(node string, res *reservation) bool {
	h := s.st.vms[res.vmid]
	return h != nil && h.node == node && h.running && h.pid > 0 && h.pid == res.pid
}

// markReservationsRunning turns the VM's start-time reservations into pid-based ones; s.mu held.
func (s *Server) markReservationsRunning(v *vmState) {
	for k, r := range s.st.reservations {
		if r.vmid == v.vmid && !r.sim && strings.HasPrefix(k, v.node+" ") {
			r.starting, r.pid = false, v.pid
		}
	}
}

// releasePCI drops the VM's reservations (stop, destroy, failed start); called with s.mu held.
func (s *Server) releasePCI(v *vmState) {
	for k, r := range s.st.reservations {
		if r.vmid == v.vmid && !r.sim && strings.HasPrefix(k, v.node+" ") {
			delete(s.st.reservations, k)
		}
	}
}
