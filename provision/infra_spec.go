package provision

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/pve"
)

// Phase names in events and errors.
const (
	PhaseInfra = "infrastructure" // the Proxmox side: preflight, create, start, readiness
	PhaseGuest = "guest"          // over SSH: driver, CUDA, vLLM, Ollama
)

// OwnerTag marks VMs this tool manages; a VM without it is never touched.
const OwnerTag = "aimachine"

// ownerMarker starts the line the tool appends to a VM's description.
const ownerMarker = "aimachine: managed"

// spec is what the catalog wants a VM to be, in PVE's terms.
type spec struct {
	vm   *catalog.VM
	node string
	vmid int
	// want holds the config keys the tool manages, rendered as they are sent.
	want map[string]string
	// params are the create parameters (typed for PVE).
	params pve.Params
	// diskKey is the boot disk ("scsi0"), diskGB its catalog size.
	diskKey string
	diskGB  int
	// image is the cloud image volume id ("" for an ISO install); vendor the cicustom snippet.
	image, iso, vendor string
	keys               []string // decoded public keys
}

// keys that take effect only after the VM is power-cycled when changed on a running VM.
var coldKeys = map[string]bool{
	"machine": true, "bios": true, "cpu": true, "cores": true, "sockets": true, "memory": true,
	"balloon": true, "hostpci0": true, "scsihw": true, "efidisk0": true, "serial0": true, "vga": true,
	"ciuser": true, "sshkeys": true, "ipconfig0": true, "nameserver": true, "cicustom": true, "ide2": true,
}

// buildSpec renders the catalog VM as PVE config.
func buildSpec(cat *catalog.Catalog, vm *catalog.VM, runID string) (*spec, error) {
	keys, err := vm.PublicKeys()
	if err != nil {
		return nil, err
	}
	s := &spec{vm: vm, node: vm.Node, vmid: vm.ID, want: map[string]string{}, params: pve.Params{},
		diskKey: "scsi0", diskGB: vm.Disk.SizeGB, image: vm.Image.CloudImage, iso: vm.Image.ISO,
		vendor: vm.Image.VendorData, keys: keys}
	set := func(k, v string, typed any) {
		s.want[k] = v
		s.params[k] = typed
	}
	str := func(k, v string) { set(k, v, v) }
	num := func(k string, n int) { set(k, strconv.Itoa(n), n) }
	b01 := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}

	storage := vm.Disk.Storage
	str("name", vm.Name)
	str("machine", vm.Machine)
	str("bios", vm.BIOS)
	if vm.BIOS == "ovmf" {
		s.params["efidisk0"] = storage + ":1,efitype=4m,pre-enrolled-keys=0"
		s.want["efidisk0"] = "present"
	}
	str("cpu", vm.CPU)
	num("cores", vm.Cores)
	num("sockets", 1)
	// memory is a string property since qemu-server 8.0.8.
	str("memory", strconv.Itoa(vm.MemoryMB))
	str("scsihw", "virtio-scsi-single")
	if vm.GPUEnabled() {
		// All guest RAM is pinned for VFIO: ballooning is moot.
		num("balloon", 0)
		str("hostpci0", hostpciValue(vm.GPU))
	}
	if s.image != "" {
		s.params["scsi0"] = storage + ":0,import-from=" + s.image + ",iothread=1,discard=on"
	} else {
		s.params["scsi0"] = fmt.Sprintf("%s:%d,iothread=1,discard=on", storage, vm.Disk.SizeGB)
		s.params["ide0"] = s.iso + ",media=cdrom"
	}
	s.want["scsi0"] = "present"
	str("boot", "order=scsi0")
	if s.iso != "" {
		str("boot", "order=scsi0;ide0")
	}
	str("net0", "virtio,bridge="+vm.Network.Bridge)
	s.params["ide2"] = storage + ":cloudinit"
	s.want["ide2"] = "present"
	if vm.CloudInit.User != "" {
		str("ciuser", vm.CloudInit.User)
	}
	if len(keys) > 0 {
		str("sshkeys", pve.EncodeSSHKeys(keys...))
	}
	ipc := "ip=" + vm.IPCIDR()
	if vm.Network.Gateway != "" {
		ipc += ",gw=" + vm.Network.Gateway
	}
	str("ipconfig0", ipc)
	if ns := cat.Network.Nameservers; len(ns) > 0 {
		str("nameserver", strings.Join(ns, " "))
	}
	if s.vendor != "" {
		str("cicustom", "vendor="+s.vendor)
	}
	if vm.AgentEnabled() {
		str("agent", "enabled=1") // a string: PVE rejects a JSON boolean here
	} else {
		str("agent", "enabled=0")
	}
	set("onboot", strconv.Itoa(b01(vm.OnBootEnabled())), b01(vm.OnBootEnabled()))
	str("serial0", "socket")
	str("vga", "serial0")
	str("tags", strings.Join(wantTags(vm), ";"))
	desc := strings.TrimSpace(vm.Description)
	if desc != "" {
		desc += "\n\n"
	}
	s.params["description"] = desc + ownerMarker + "; run=" + runID
	return s, nil
}

func wantTags(vm *catalog.VM) []string {
	seen := map[string]bool{OwnerTag: true}
	tags := []string{OwnerTag}
	for _, t := range vm.Tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "" && !seen[t] {
			seen[t] = true
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags
}

// hostpciValue is the hostpci0 property string for a GPU.
func hostpciValue(g *catalog.GPU) string {
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	var dev string
	if g.Mapping != "" {
		dev = "mapping=" + g.Mapping
	} else {
		dev = g.PCIAddress
	}
	v := dev + ",pcie=" + b(g.PCIeEnabled()) + ",rombar=" + b(g.ROMBarEnabled())
	if g.XVGA {
		v += ",x-vga=1"
	}
	return v
}

// splitTags splits a PVE tags value (";", "," or space separated).
func splitTags(v string) []string {
	f := strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
	sort.Strings(f)
	return f
}

// owned reports whether a VM config carries the ownership tag.
func owned(cfg pve.Config) bool {
	for _, t := range splitTags(cfg["tags"]) {
		if t == OwnerTag {
			return true
		}
	}
	return false
}

var runRe = regexp.MustCompile(`aimachine: managed; run=([A-Za-z0-9._-]+)`)

// createdByRun returns the run id in a VM's ownership marker ("" when none).
func createdByRun(cfg pve.Config) string {
	desc, err := url.QueryUnescape(cfg["description"])
	if err != nil {
		desc = cfg["description"]
	}
	if m := runRe.FindStringSubmatch(desc); m != nil {
		return m[1]
	}
	return ""
}

// change is one drifted config key.
type change struct {
	Key      string
	Have     string
	Want     string
	Delete   bool
	Cold     bool // needs a power cycle when the VM runs
	sendAs   any
	readOnly string // not fixable by a config change: the reason
}

// diff compares the live config to the spec and returns the minimal changes.
func (s *spec) diff(have pve.Config) []change {
	var out []change
	for _, k := range sortedKeys(s.want) {
		want := s.want[k]
		got, ok := have[k]
		if equalValue(k, got, ok, want, s) {
			continue
		}
		c := change{Key: k, Have: got, Want: want, Cold: coldKeys[k], sendAs: s.params[k]}
		switch k {
		case "efidisk0", "ide2", "scsi0":
			if k == "scsi0" && ok {
				continue // disk size is handled by resize
			}
			if k == "scsi0" {
				c.readOnly = "the VM has no boot disk scsi0; re-create it (aimachine destroy, then deploy)"
			}
			c.Want = fmt.Sprint(s.params[k])
		case "net0":
			// Keep the MAC address PVE generated.
			m := pve.ParsePropertyString(got, "")
			model, mac := "virtio", ""
			for _, mk := range []string{"virtio", "e1000", "vmxnet3", "rtl8139"} {
				if v, ok := m[mk]; ok {
					model, mac = mk, v
				}
			}
			nv := model
			if mac != "" {
				nv += "=" + mac
			}
			nv += ",bridge=" + s.vm.Network.Bridge
			for _, extra := range []string{"firewall", "tag", "mtu", "queues", "rate", "link_down"} {
				if v, ok := m[extra]; ok {
					nv += "," + extra + "=" + v
				}
			}
			c.Want, c.sendAs = nv, nv
		}
		out = append(out, c)
	}
	// A GPU removed from the catalog: drop the device we set.
	if !s.vm.GPUEnabled() {
		if v, ok := have["hostpci0"]; ok {
			out = append(out, change{Key: "hostpci0", Have: v, Delete: true, Cold: true})
		}
	}
	// cicustom removed from the catalog.
	if s.vendor == "" {
		if v, ok := have["cicustom"]; ok && strings.Contains(v, "vendor=") {
			out = append(out, change{Key: "cicustom", Have: v, Delete: true, Cold: true})
		}
	}
	return out
}

// equalValue compares one key semantically (PVE normalises some values).
func equalValue(k, got string, present bool, want string, s *spec) bool {
	switch k {
	case "efidisk0", "ide2", "scsi0":
		return present
	}
	if !present {
		return false
	}
	switch k {
	case "cores", "sockets", "memory", "balloon":
		a, err1 := strconv.Atoi(got)
		b, err2 := strconv.Atoi(want)
		return err1 == nil && err2 == nil && a == b
	case "onboot":
		return boolish(got) == boolish(want)
	case "agent":
		return propBool(got, "enabled") == propBool(want, "enabled")
	case "cpu":
		return pve.ParsePropertyString(got, "cputype")["cputype"] == pve.ParsePropertyString(want, "cputype")["cputype"]
	case "hostpci0":
		return equalHostPCI(got, want)
	case "net0":
		g := pve.ParsePropertyString(got, "")
		_, virtio := g["virtio"]
		return virtio && g["bridge"] == s.vm.Network.Bridge
	case "sshkeys":
		return equalKeys(got, want)
	case "ipconfig0", "cicustom":
		return equalProps(got, want)
	case "nameserver":
		return strings.Join(strings.Fields(got), " ") == strings.Join(strings.Fields(want), " ")
	case "tags":
		return strings.Join(splitTags(got), ";") == strings.Join(splitTags(want), ";")
	}
	return got == want
}

func boolish(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "on", "yes", "true":
		return true
	}
	return false
}

// propBool reads a boolean property whose bare value is the default key ("1" ≡ "enabled=1").
func propBool(v, key string) bool {
	return boolish(pve.ParsePropertyString(v, key)[key])
}

func equalProps(a, b string) bool {
	pa, pb := pve.ParsePropertyString(a, ""), pve.ParsePropertyString(b, "")
	if len(pa) != len(pb) {
		return false
	}
	for k, v := range pa {
		if pb[k] != v {
			return false
		}
	}
	return true
}

// equalHostPCI compares hostpci values with PVE's defaults (host is the bare key, rombar
// defaults to 1, pcie and x-vga to 0).
func equalHostPCI(a, b string) bool {
	norm := func(v string) map[string]string {
		m := pve.ParsePropertyString(v, "host")
		out := map[string]string{"host": strings.ToLower(m["host"]), "mapping": m["mapping"],
			"pcie": "0", "rombar": "1", "x-vga": "0"}
		for _, k := range []string{"pcie", "rombar", "x-vga"} {
			if v, ok := m[k]; ok {
				if boolish(v) {
					out[k] = "1"
				} else {
					out[k] = "0"
				}
			}
		}
		return out
	}
	na, nb := norm(a), norm(b)
	for k, v := range na {
		if nb[k] != v {
			return false
		}
	}
	return true
}

// decodeKeys turns an sshkeys value into trimmed key lines.
func decodeKeys(v string) []string {
	dec, err := url.PathUnescape(v)
	if err != nil {
		dec = v
	}
	var out []string
	for _, l := range strings.Split(dec, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func equalKeys(a, b string) bool {
	return strings.Join(decodeKeys(a), "\n") == strings.Join(decodeKeys(b), "\n")
}

// diskSizeGB parses size= of a disk value ("local-lvm:vm-140-disk-0,size=500G") in GiB.
func diskSizeGB(v string) (int, bool) {
	size := pve.ParsePropertyString(v, "file")["size"]
	if size == "" {
		return 0, false
	}
	unit := size[len(size)-1]
	n, err := strconv.ParseFloat(strings.TrimRight(size, "KMGTkmgt"), 64)
	if err != nil {
		return 0, false
	}
	switch unit {
	case 'T', 't':
		n *= 1024
	case 'M', 'm':
		n /= 1024
	case 'K', 'k':
		n /= 1024 * 1024
	case 'G', 'g':
	default:
		n /= 1024 * 1024 * 1024 // bytes
	}
	return int(n + 0.5), true
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
