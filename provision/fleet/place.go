package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/pve"
)

// Placement is where one VM goes and why.
type Placement struct {
	VM   string
	Node string
	// Auto is true for a node: auto VM (Node was chosen); Existing when the VM already exists
	// (it stays on its node).
	Auto, Existing bool
	// Why explains the choice ("" for a VM the catalog pins).
	Why string
}

// NoFitError says why no node could take a VM: one reason per node.
type NoFitError struct {
	VM      string
	Mapping string
	Reasons []string // "pve1: no free device of rtx5060ti (2 entries, 2 held: VM 201, VM 202)"
}

func (e *NoFitError) Error() string {
	return fmt.Sprintf("no node can take VM %q (gpu.mapping %s): %s", e.VM, e.Mapping, strings.Join(e.Reasons, "; "))
}

// ErrNoFit matches every NoFitError (errors.Is).
var ErrNoFit = errors.New("no node fits")

func (e *NoFitError) Is(target error) bool { return target == ErrNoFit }

// nodeRoom is what a node has left for this run.
type nodeRoom struct {
	name    string
	online  bool
	cores   int    // CPUs not committed to running/onboot VMs
	mem     uint64 // bytes free
	cat     *catalog.Node
	held    map[string][]string // mapping -> holders ("VM 201 (running)")
	rawHeld []string            // raw hostpci paths held on the node
	placed  map[string]int      // mapping -> devices this run gave away here
}

// Place resolves every node: auto VM of names (in catalog order) and returns a copy of cat in
// which those VMs name their node, with one Placement per VM of names. It only reads the
// cluster. See the package documentation for the rule.
func Place(ctx context.Context, api pve.API, cat *catalog.Catalog, names []string) (*catalog.Catalog, []Placement, error) {
	out := *cat
	out.VMs = slices.Clone(cat.VMs)
	want := map[string]bool{}
	auto := false
	for _, n := range names {
		vm, err := cat.VM(n)
		if err != nil {
			return nil, nil, err
		}
		want[vm.Name] = true
		auto = auto || vm.Node == catalog.NodeAuto
	}
	var places []Placement
	if !auto {
		for _, n := range names {
			vm, _ := cat.VM(n)
			places = append(places, Placement{VM: vm.Name, Node: vm.Node})
		}
		return &out, places, nil
	}
	vms, err := api.Resources(ctx, "vm")
	if err != nil {
		return nil, nil, fmt.Errorf("placement: list the cluster's VMs: %w", err)
	}
	nodes, err := api.Resources(ctx, "node")
	if err != nil {
		return nil, nil, fmt.Errorf("placement: list the cluster's nodes: %w", err)
	}
	maps, err := api.PCIMappings(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("placement: list the PCI mappings: %w", err)
	}
	rooms, err := readRooms(ctx, api, cat, vms, nodes)
	if err != nil {
		return nil, nil, err
	}
	existing := map[int]string{}
	for _, v := range vms {
		if v.Type == "qemu" {
			existing[v.VMID] = v.Node
		}
	}
	byName := map[string]Placement{}
	for i := range out.VMs {
		vm := &out.VMs[i]
		if !want[vm.Name] {
			continue
		}
		p := Placement{VM: vm.Name, Node: vm.Node, Auto: vm.Node == catalog.NodeAuto}
		if node, ok := existing[vm.ID]; ok && p.Auto {
			p.Node, p.Existing = node, true
			p.Why = fmt.Sprintf("VM %d exists on %s: it stays there", vm.ID, node)
		} else if p.Auto {
			room, why, err := choose(vm, rooms, maps)
			if err != nil {
				return nil, nil, err
			}
			p.Node, p.Why = room.name, why
			room.placed[vm.GPU.Mapping]++
			room.cores -= vm.Cores
			room.mem -= uint64(vm.MemoryMB) << 20
		}
		vm.Node = p.Node
		byName[vm.Name] = p
	}
	for _, n := range names {
		vm, _ := cat.VM(n)
		places = append(places, byName[vm.Name])
	}
	return &out, places, nil
}

// readRooms reads each catalog node's capacity and what its VMs hold.
func readRooms(ctx context.Context, api pve.API, cat *catalog.Catalog, vms, nodes []pve.Resource) ([]*nodeRoom, error) {
	var rooms []*nodeRoom
	for i := range cat.Nodes {
		cn := &cat.Nodes[i]
		r := &nodeRoom{name: cn.Name, cat: cn, held: map[string][]string{}, placed: map[string]int{}}
		for _, n := range nodes {
			if n.Type == "node" && n.Node == cn.Name {
				r.online = n.Status == "online"
				r.cores = n.MaxCPU
			}
		}
		if r.online {
			st, err := api.NodeStatus(ctx, cn.Name)
			if err != nil {
				return nil, fmt.Errorf("placement: read node %s: %w", cn.Name, err)
			}
			r.mem = st.MemFree
		}
		rooms = append(rooms, r)
	}
	roomOf := func(node string) *nodeRoom {
		for _, r := range rooms {
			if r.name == node && r.online {
				return r
			}
		}
		return nil
	}
	for _, v := range vms {
		r := roomOf(v.Node)
		if v.Type != "qemu" || v.Template || r == nil {
			continue
		}
		cfg, err := api.VMConfig(ctx, v.Node, v.VMID)
		if errors.Is(err, pve.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("placement: read VM %d: %w", v.VMID, err)
		}
		running := v.Status == "running"
		onboot := cfg["onboot"] == "1"
		if !running && !onboot {
			continue
		}
		r.cores -= v.MaxCPU
		if !running {
			r.mem -= min(r.mem, v.MaxMem)
		}
		state := "running"
		if !running {
			state = "onboot"
		}
		for _, k := range cfg.Keys() {
			if !strings.HasPrefix(k, "hostpci") {
				continue
			}
			m := pve.ParsePropertyString(cfg[k], "host")
			if mp := m["mapping"]; mp != "" {
				r.held[mp] = append(r.held[mp], fmt.Sprintf("VM %d (%s)", v.VMID, state))
			}
			if h := m["host"]; h != "" {
				r.rawHeld = append(r.rawHeld, strings.Split(h, ";")...)
			}
		}
	}
	return rooms, nil
}

// choose picks the node for vm or says, per node, which constraint failed.
func choose(vm *catalog.VM, rooms []*nodeRoom, maps []pve.PCIMapping) (*nodeRoom, string, error) {
	mapping := vm.GPU.Mapping
	var m *pve.PCIMapping
	for i := range maps {
		if maps[i].ID == mapping {
			m = &maps[i]
		}
	}
	if m == nil {
		return nil, "", &NoFitError{VM: vm.Name, Mapping: mapping, Reasons: []string{fmt.Sprintf("the cluster has no PCI mapping %q (Datacenter → Resource Mappings)", mapping)}}
	}
	type cand struct {
		r    *nodeRoom
		free int
	}
	var cands []cand
	var reasons []string
	need := uint64(vm.MemoryMB) << 20
	for _, r := range rooms {
		entries := 0
		for _, e := range m.Map {
			if e.Node != r.name {
				continue
			}
			raw := false
			for _, h := range r.rawHeld {
				raw = raw || overlap(h, e.Path)
			}
			if !raw {
				entries++
			}
		}
		total := 0
		for _, e := range m.Map {
			if e.Node == r.name {
				total++
			}
		}
		held := len(r.held[mapping]) + r.placed[mapping]
		free := entries - held
		declaredCores := r.cat.Cores == 0 || vm.Cores <= r.cat.Cores
		declaredMem := r.cat.MemoryMB == 0 || vm.MemoryMB <= r.cat.MemoryMB
		switch {
		case !slices.Contains(r.cat.Storages, vm.Disk.Storage):
			reasons = append(reasons, fmt.Sprintf("%s: the catalog does not list storage %s on it", r.name, vm.Disk.Storage))
		case !r.online:
			reasons = append(reasons, fmt.Sprintf("%s: not online in the cluster", r.name))
		case total == 0:
			reasons = append(reasons, fmt.Sprintf("%s: mapping %s has no device on it", r.name, mapping))
		case free <= 0:
			who := slices.Clone(r.held[mapping])
			if n := r.placed[mapping]; n > 0 {
				who = append(who, fmt.Sprintf("%d placed by this run", n))
			}
			if entries < total {
				who = append(who, fmt.Sprintf("%d by a raw hostpci", total-entries))
			}
			reasons = append(reasons, fmt.Sprintf("%s: no free device of %s (%d on the node, held by %s)", r.name, mapping, total, strings.Join(who, ", ")))
		case !declaredCores || vm.Cores > r.cores:
			reasons = append(reasons, fmt.Sprintf("%s: %d cores do not fit (%d left)", r.name, vm.Cores, max(r.cores, 0)))
		case !declaredMem || need > r.mem:
			reasons = append(reasons, fmt.Sprintf("%s: %d MiB of memory do not fit (%d MiB free)", r.name, vm.MemoryMB, r.mem>>20))
		default:
			cands = append(cands, cand{r, free})
		}
	}
	if len(cands) == 0 {
		return nil, "", &NoFitError{VM: vm.Name, Mapping: mapping, Reasons: reasons}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.free != b.free {
			return a.free > b.free
		}
		if a.r.mem != b.r.mem {
			return a.r.mem > b.r.mem
		}
		return a.r.name < b.r.name
	})
	c := cands[0]
	why := fmt.Sprintf("node: auto → %s: %d of its %s devices free, %d cores and %d MiB free (most free devices, then most free memory, then name",
		c.r.name, c.free, mapping, c.r.cores, c.r.mem>>20)
	if len(cands) > 1 {
		var others []string
		for _, o := range cands[1:] {
			others = append(others, fmt.Sprintf("%s %d free", o.r.name, o.free))
		}
		why += "; also fit: " + strings.Join(others, ", ")
	}
	if len(reasons) > 0 {
		why += "; ruled out: " + strings.Join(reasons, "; ")
	}
	return c.r, why + ")", nil
}

// overlap: a PCI id 0000:01:00.0 and a slot 0000:01:00 name the same device.
func overlap(a, b string) bool {
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(s))
		if strings.Count(s, ":") == 1 {
			s = "0000:" + s
		}
		return s
	}
	a, b = norm(a), norm(b)
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".")
}
