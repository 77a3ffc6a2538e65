package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/pve"
)

// gpuTarget is what hostpci0 resolves to on the node.
type gpuTarget struct {
	label   string   // "0000:01:00" or "mapping gpu0 (0000:01:00)"
	paths   []string // raw paths the device may use ("0000:01:00")
	mapping string
}

// checks runs preflight as a reported task.
func (r *run) checks(ctx context.Context, create, checkGPU bool) error {
	return r.step(ctx, "preflight", func(ctx context.Context) (Status, string, error) {
		if err := r.preflight(ctx, create, checkGPU); err != nil {
			return "", "", err
		}
		var what []string
		what = append(what, "node "+r.spec.node)
		if create {
			what = append(what, "capacity", "storage", "image")
		}
		if checkGPU && r.spec.vm.GPUEnabled() {
			what = append(what, "GPU "+r.spec.vm.GPU.Device()+" free")
		}
		return StatusOK, strings.Join(what, ", "), nil
	})
}

// preflight checks, with reads only, everything a create (or start) needs. checkGPU adds the
// GPU checks (a start or a hostpci change); create adds image, storage and capacity checks.
func (r *run) preflight(ctx context.Context, create, checkGPU bool) error {
	s := r.spec
	const task = "preflight"
	fail := func(err error, hint string) error {
		return &TaskError{Phase: PhaseInfra, Task: task, Err: err, Hint: hint}
	}

	nodes, err := r.c.api.Resources(ctx, "node")
	if err != nil {
		return fail(err, apiHint(err))
	}
	var known []string
	found := false
	for _, n := range nodes {
		known = append(known, n.Node)
		if n.Node == s.node {
			found = true
			if n.Status != "" && n.Status != "online" {
				return fail(fmt.Errorf("node %q is %s", s.node, n.Status), "bring the node online or place the VM on another node in the catalog")
			}
		}
	}
	if !found {
		return fail(fmt.Errorf("node %q is not in the cluster (nodes: %s)", s.node, strings.Join(known, ", ")), "fix the VM's node in the catalog")
	}

	if create {
		st, err := r.c.api.NodeStatus(ctx, s.node)
		if err != nil {
			return fail(err, apiHint(err))
		}
		if st.CPUs > 0 && s.vm.Cores > st.CPUs {
			return fail(fmt.Errorf("VM %d wants %d cores but node %q has %d CPUs", s.vmid, s.vm.Cores, s.node, st.CPUs), "lower cores in the catalog")
		}
		wantMem := uint64(s.vm.MemoryMB) << 20
		if st.MemTotal > 0 && wantMem > st.MemTotal {
			return fail(fmt.Errorf("VM %d wants %d MiB of memory but node %q has %d MiB", s.vmid, s.vm.MemoryMB, s.node, st.MemTotal>>20), "lower memory_mb in the catalog")
		}
		if s.vm.GPUEnabled() && st.MemFree > 0 && wantMem > st.MemFree {
			// VFIO pins every page of guest RAM at start: free memory must cover it.
			return fail(fmt.Errorf("VM %d wants %d MiB of memory, pinned for GPU passthrough, but node %q has only %d MiB free", s.vmid, s.vm.MemoryMB, s.node, st.MemFree>>20),
				"stop other VMs on the node or lower memory_mb in the catalog")
		}

		storages, err := r.c.api.Resources(ctx, "storage")
		if err != nil {
			return fail(err, apiHint(err))
		}
		if !hasStorage(storages, s.node, s.vm.Disk.Storage) {
			return fail(fmt.Errorf("storage %q does not exist on node %q", s.vm.Disk.Storage, s.node), "fix disk.storage in the catalog (pvesm status lists the node's storages)")
		}
		if err := r.storageFits(ctx); err != nil {
			return err
		}
		for _, vol := range []struct{ id, what, hint string }{
			{s.image, "cloud image", imageHint(s.node, s.image, s.vm)},
			{s.iso, "installer ISO", "upload the ISO to the storage"},
			{s.vendor, "vendor_data snippet", "put the snippet in the storage's snippets/ directory and enable the 'snippets' content type"},
		} {
			if vol.id == "" {
				continue
			}
			if err := r.volumeExists(ctx, vol.id); err != nil {
				if errors.Is(err, pve.ErrNotFound) {
					return fail(pve.Classed(pve.ErrNotFound, "%s %q is not on node %q", vol.what, vol.id, s.node), vol.hint)
				}
				return fail(err, apiHint(err))
			}
		}
	}

	if checkGPU && s.vm.GPUEnabled() {
		if err := r.checkGPU(ctx); err != nil {
			var te *TaskError
			if errors.As(err, &te) {
				return err
			}
			return fail(err, hintFor(err, s.vmid))
		}
	}
	return nil
}

// thinStorage are the storage types whose volumes take space only as they are written, so a
// disk may be larger than what is free now (pve-storage: LvmThinPlugin; a dir storage's qcow2
// and raw files are sparse too). Everything else reserves the whole size at allocation.
var thinStorage = map[string]bool{"lvmthin": true, "dir": true, "nfs": true, "cifs": true, "cephfs": true, "glusterfs": true, "btrfs": true}

// storageFits checks the boot disk against the storage's space (GET
// /nodes/{node}/storage/{storage}/status, fields total and avail in bytes per the API schema):
// a disk larger than the whole storage can never be written; on a storage that allocates the
// whole size, one larger than what is free fails the create after the image copy.
func (r *run) storageFits(ctx context.Context) error {
	s := r.spec
	storage := s.vm.Disk.Storage
	fail := func(err error, hint string) error {
		return &TaskError{Phase: PhaseInfra, Task: "preflight: storage", Err: err, Hint: hint}
	}
	st, err := r.c.api.StorageStatus(ctx, s.node, storage)
	if err != nil {
		return fail(err, apiHint(err))
	}
	if st.Total == 0 && st.Avail == 0 {
		return nil // an inactive storage reports no space; the create says what is wrong
	}
	want := uint64(s.vm.Disk.SizeGB) << 30
	gib := func(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }
	switch {
	case want > st.Total:
		return fail(fmt.Errorf("VM %d wants a %d GiB disk on storage %q, which holds %s in all (%s free) on node %q",
			s.vmid, s.vm.Disk.SizeGB, storage, gib(st.Total), gib(st.Avail), s.node),
			fmt.Sprintf("lower disk.size_gb in the catalog to at most %d, or put the disk on a larger storage (pvesm status lists them)", st.Avail>>30))
	case want > st.Avail && !thinStorage[st.Type]:
		return fail(fmt.Errorf("VM %d wants a %d GiB disk on storage %q (%s), which has %s free of %s on node %q",
			s.vmid, s.vm.Disk.SizeGB, storage, st.Type, gib(st.Avail), gib(st.Total), s.node),
			fmt.Sprintf("free space on %q (remove unused volumes or VMs), lower disk.size_gb in the catalog to at most %d, or pick another storage", storage, st.Avail>>30))
	case want > st.Avail:
		r.note("preflight: storage", fmt.Sprintf("the %d GiB disk is larger than the %s free on thin storage %q: it fills as the guest writes", s.vm.Disk.SizeGB, gib(st.Avail), storage))
	}
	return nil
}

// imageHint says how to put the cloud image volid on the node: aimachine prepare, or Proxmox's
// own API with the catalog's pinned URL and checksum.
func imageHint(node, volid string, vm *catalog.VM) string {
	storage, path, _ := strings.Cut(volid, ":")
	name := strings.TrimPrefix(path, "import/")
	url, sum := vm.Image.URL, vm.Image.SHA256
	if url == "" {
		url, sum = catalog.DefaultImageURL, catalog.DefaultImageSHA256
	}
	return fmt.Sprintf("run `aimachine prepare --vm %s` (it downloads the pinned image and verifies its SHA-256), or by hand: "+
		"pvesh create /nodes/%s/storage/%s/download-url --content import --url %s --filename %s --checksum %s --checksum-algorithm sha256 "+
		"(Ubuntu's .img is a qcow2 disk; Proxmox's import content takes only .ova .ovf .qcow2 .raw .vmdk; storage %s needs the 'import' content type; README: 'Putting the cloud image on the host')",
		vm.Name, node, storage, url, name, sum, storage)
}

func hasStorage(rs []pve.Resource, node, name string) bool {
	for _, r := range rs {
		if r.Storage == name && (r.Node == node || r.Node == "") {
			return true
		}
	}
	return false
}

// volumeExists looks the volume up in its storage's content.
func (r *run) volumeExists(ctx context.Context, volid string) error {
	storage, _, ok := strings.Cut(volid, ":")
	if !ok {
		return pve.Classed(pve.ErrNotFound, "volume id %q is not STORAGE:PATH", volid)
	}
	vols, err := r.c.api.StorageContent(ctx, r.spec.node, storage)
	if err != nil {
		return err
	}
	for _, v := range vols {
		if v.VolID == volid {
			return nil
		}
	}
	return pve.Classed(pve.ErrNotFound, "storage %q has no volume %q", storage, volid)
}

// checkGPU: the device exists on the node, its IOMMU group is known, no other VM holds it,
// and a raw address is not set with an API token.
func (r *run) checkGPU(ctx context.Context) error {
	s := r.spec
	g := s.vm.GPU
	fail := func(err error, hint string) error {
		return &TaskError{Phase: PhaseInfra, Task: "preflight: GPU", Err: err, Hint: hint}
	}
	t := gpuTarget{}
	if g.Mapping != "" {
		maps, err := r.c.api.PCIMappings(ctx)
		if err != nil {
			return fail(err, apiHint(err))
		}
		var m *pve.PCIMapping
		for i := range maps {
			if maps[i].ID == g.Mapping {
				m = &maps[i]
			}
		}
		if m == nil {
			return fail(pve.Classed(pve.ErrPCIMissing, "PCI mapping %q does not exist", g.Mapping),
				"create it in Datacenter → Resource Mappings (or fix gpu.mapping in the catalog)")
		}
		for _, e := range m.Map {
			if e.Node == s.node {
				t.paths = append(t.paths, e.Path)
			}
		}
		if len(t.paths) == 0 {
			return fail(pve.Classed(pve.ErrPCIMissing, "PCI mapping %q has no entry for node %q", g.Mapping, s.node),
				"add the node's device to the mapping in Datacenter → Resource Mappings")
		}
		t.mapping = g.Mapping
		t.label = fmt.Sprintf("mapping %s (%s)", g.Mapping, strings.Join(t.paths, ", "))
	} else {
		if id := r.c.api.Identity(); !id.IsRootPam() {
			return fail(pve.Classed(pve.ErrRootOnlyHostPCI, "a raw hostpci0 (%s) can only be set by root@pam, not by %s", g.PCIAddress, id.User),
				"create a cluster PCI mapping for the GPU and set gpu.mapping in the catalog, or authenticate as root@pam with "+EnvUsername+"/"+EnvPassword)
		}
		t.paths = []string{strings.ToLower(g.PCIAddress)}
		t.label = g.PCIAddress
	}

	devs, err := r.c.api.PCIDevices(ctx, s.node)
	if err != nil {
		return fail(err, apiHint(err))
	}
	var matched []pve.PCIDevice
	for _, d := range devs {
		for _, p := range t.paths {
			if pciOverlap(d.ID, p) {
				matched = append(matched, d)
			}
		}
	}
	if len(matched) == 0 {
		return fail(pve.Classed(pve.ErrPCIMissing, "no PCI device found for '%s' on node %q", strings.Join(t.paths, ", "), s.node),
			"check the catalog's gpu.pci_address against `lspci -nn` on the host (a GPU is usually 0000:01:00)")
	}
	for _, d := range matched {
		if d.IOMMUGroup < 0 {
			return fail(pve.Classed(pve.ErrNoIOMMU, "PCI device '%s' has no IOMMU group on node %q (IOMMU not present)", d.ID, s.node), iommuHint)
		}
	}
	if g.Expect.PCIID != "" {
		ok := false
		for _, d := range matched {
			if strings.EqualFold(d.PCIID(), g.Expect.PCIID) {
				ok = true
			}
		}
		if !ok {
			return fail(pve.Classed(pve.ErrPCIMissing, "PCI device '%s' is %s, the catalog expects %s", matched[0].ID, matched[0].PCIID(), g.Expect.PCIID),
				"check gpu.pci_address / gpu.expect.pci_id against `lspci -nn` on the host")
		}
	}

	// Another VM holding the device (running, or set to start on boot). A mapping with several
	// entries on the node is a pool (qemu-server PCI.pm: the first free entry is taken at start):
	// it is busy only when every entry is held.
	vms, err := r.c.api.Resources(ctx, "vm")
	if err != nil {
		return fail(err, apiHint(err))
	}
	pool := t.mapping != "" && len(t.paths) > 1
	var holders []string
	for _, o := range vms {
		if o.Type != "qemu" || o.VMID == s.vmid || o.Node != s.node || o.Template {
			continue
		}
		cfg, err := r.c.api.VMConfig(ctx, o.Node, o.VMID)
		if errors.Is(err, pve.ErrNotFound) {
			continue
		}
		if err != nil {
			return fail(err, apiHint(err))
		}
		for k, v := range cfg {
			if !strings.HasPrefix(k, "hostpci") {
				continue
			}
			if !hostpciHolds(v, t) {
				continue
			}
			running := o.Status == "running"
			onboot := boolish(cfg["onboot"])
			if !running && !onboot {
				r.note("preflight: GPU", fmt.Sprintf("VM %d (stopped, not on boot) also lists %s in %s", o.VMID, t.label, k))
				continue
			}
			state := "running"
			if !running {
				state = "stopped but starts on boot"
			}
			if pool {
				holders = append(holders, fmt.Sprintf("VM %d (%s)", o.VMID, state))
				continue
			}
			dev := matched[0].ID
			return fail(pve.Classed(pve.ErrPCIBusy, "PCI device '%s' already in use by VMID '%d' (%s, %s: %s)", dev, o.VMID, state, k, v),
				fmt.Sprintf("stop VM %d (and clear its onboot, or remove its %s) or choose another GPU in the catalog", o.VMID, k))
		}
	}
	if pool && len(holders) >= len(t.paths) {
		return fail(pve.Classed(pve.ErrPCIBusy, "every device of %s on node %q is in use: %s", t.label, s.node, strings.Join(holders, ", ")),
			fmt.Sprintf("stop one of them (and clear its onboot), add a device to the mapping, or place the VM on another node (node: %s)", catalog.NodeAuto))
	}
	return nil
}

const iommuHint = "enable the IOMMU on the host: add intel_iommu=on (Intel) or amd_iommu=on (AMD) and iommu=pt to the kernel command line, run proxmox-boot-tool refresh (or update-grub), reboot, and check `dmesg | grep -e DMAR -e IOMMU`"

// pciOverlap: a device id 0000:01:00.0 matches 0000:01:00 (all functions) or itself.
func pciOverlap(a, b string) bool {
	a, b = normPCI(a), normPCI(b)
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".")
}

// normPCI lower-cases and adds the default domain.
func normPCI(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if strings.Count(s, ":") == 1 {
		s = "0000:" + s
	}
	return s
}

// hostpciHolds reports whether a hostpciN value uses the target device.
func hostpciHolds(v string, t gpuTarget) bool {
	m := pve.ParsePropertyString(v, "host")
	if mp := m["mapping"]; mp != "" {
		return t.mapping != "" && mp == t.mapping
	}
	for _, h := range strings.Split(m["host"], ";") {
		for _, p := range t.paths {
			if h != "" && pciOverlap(h, p) {
				return true
			}
		}
	}
	return false
}
