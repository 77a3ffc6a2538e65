package pve

import (
	"fmt"
	"strings"
	"testing"

	proxmox "github.com/luthermonson/go-proxmox"
)

// multiNodeTopology is a four-node cluster like fakes/sim/testdata/fleet-topology.yaml: two
// RTX 5060 Ti on each of pve1..pve3 in one mapping spanning the three nodes, two RTX 4090 on pve4.
func multiNodeTopology() Topology {
	tp := DefaultTopology()
	tp.ClusterName = "gpufleet"
	tp.Nodes = nil
	var pool []string
	for i, name := range []string{"pve1", "pve2", "pve3", "pve4"} {
		n := NodeSpec{Name: name, IP: fmt.Sprintf("192.168.0.%d", 11+i), Cores: 32, Sockets: 1, MemoryGiB: 96, IOMMU: true}
		for j, slot := range []string{"0000:01:00", "0000:02:00"} {
			dev := "2d04"
			if name == "pve4" {
				dev = "2684"
			}
			devs, err := NVIDIAGPU(slot, 12+j, dev, "", "")
			if err != nil {
				panic(err)
			}
			n.PCI = append(n.PCI, devs...)
			if name != "pve4" {
				pool = append(pool, fmt.Sprintf("node=%s,path=%s,id=10de:2d04,iommugroup=%d", name, slot, 12+j))
			}
		}
		tp.Nodes = append(tp.Nodes, n)
	}
	tp.Mappings = []PCIMappingSpec{{ID: "rtx5060ti", Map: pool}}
	return tp
}

// TestMultiNodeCluster pins what a cluster adds to one node:
//   - VM ids are unique cluster-wide: qemu-server API2/Qemu.pm create_vm calls
//     PVE::Cluster::check_vmid_unused (pve-cluster Cluster.pm, over the cluster-wide vmlist of
//     pmxcfs), which dies "VM N already exists on node 'X'" naming the node that holds it, so a
//     create on pve2 of an id that pve1 holds fails (shared/reference/proxmox-api.md §4);
//   - /cluster/nextid skips ids taken on any node (pve-manager API2/Cluster.pm, same vmlist);
//   - /cluster/resources lists every node's VMs with their node, and one node entry per node
//     (pve-api-schema.json /cluster/resources: id, type, node, status, maxcpu, maxmem ...);
//   - every node's endpoints answer (pveproxy proxies /nodes/{node}/... to that node), and a
//     VM's endpoints answer only on its node (AbstractConfig.pm load_config reads
//     nodes/<node>/qemu-server/<vmid>.conf of the node asked);
//   - a mapping spanning nodes resolves per node, its entries on one node are a pool: PCI.pm
//     choose_hostpci_devices takes the first entry not reserved, so two VMs on one node get
//     two different cards and a third finds none;
//   - per-node capacity: a start that does not fit the node's memory fails as QEMU does.
func TestMultiNodeCluster(t *testing.T) {
	f := NewStaticGuestFactory()
	e := newEnv(t, WithTopology(multiNodeTopology()), WithGuestFactory(f))
	ctx := ctxT(t)
	q35 := proxmox.VirtualMachineOption{Name: "machine", Value: "q35"}
	create := func(node string, vmid int, opts ...proxmox.VirtualMachineOption) (*proxmox.VirtualMachine, error) {
		n, err := e.token.Node(ctx, node)
		if err != nil {
			t.Fatalf("node %s: %v", node, err)
		}
		task, err := n.NewVirtualMachine(ctx, vmid, append(minimalVM(fmt.Sprintf("vm%d", vmid), q35), opts...)...)
		if err != nil {
			return nil, err
		}
		if st := waitTask(t, ctx, task); st != "OK" {
			t.Fatalf("create %d on %s: %s", vmid, node, st)
		}
		return n.VirtualMachine(ctx, vmid)
	}

	for _, name := range []string{"pve1", "pve2", "pve3", "pve4"} {
		if _, err := e.token.Node(ctx, name); err != nil {
			t.Fatalf("GET /nodes/%s/status: %v", name, err)
		}
		var devs []map[string]any
		if err := e.token.Get(ctx, "/nodes/"+name+"/hardware/pci", &devs); err != nil || len(devs) != 4 {
			t.Fatalf("GET /nodes/%s/hardware/pci: %d devices, %v", name, len(devs), err)
		}
	}

	if _, err := create("pve1", 300); err != nil {
		t.Fatal(err)
	}
	_, err := create("pve2", 300)
	wantErr(t, "create 300 on pve2", err, "500 unable to create VM 300 - VM 300 already exists on node 'pve1'")
	var next string
	if err := e.token.Get(ctx, "/cluster/nextid", &next); err != nil || next != "100" {
		t.Fatalf("nextid = %q, %v", next, err)
	}
	if err := e.token.Get(ctx, "/cluster/nextid?vmid=300", &next); err == nil {
		t.Fatal("nextid?vmid=300: no error for an id pve1 holds")
	}
	n2, _ := e.token.Node(ctx, "pve2")
	if _, err := n2.VirtualMachine(ctx, 300); err == nil || !strings.Contains(err.Error(), "nodes/pve2/qemu-server/300.conf' does not exist") {
		t.Fatalf("VM 300 read on pve2: %v", err)
	}

	// The pool: pve1 has two entries of the mapping, a third VM finds no free one.
	gpu := proxmox.VirtualMachineOption{Name: "hostpci0", Value: "mapping=rtx5060ti,pcie=1"}
	var vms []*proxmox.VirtualMachine
	for _, id := range []int{301, 302, 303} {
		vm, err := create("pve1", id, gpu)
		if err != nil {
			t.Fatal(err)
		}
		vms = append(vms, vm)
	}
	if ex := startExit(t, vms[0]); ex != "OK" {
		t.Fatalf("301: %s", ex)
	}
	if ex := startExit(t, vms[1]); ex != "OK" {
		t.Fatalf("302: %s", ex)
	}
	a, b := f.Guest(301).BootInfo().GPUs, f.Guest(302).BootInfo().GPUs
	if len(a) == 0 || len(b) == 0 || a[0].ID == b[0].ID {
		t.Fatalf("two VMs on pve1 got %v and %v, want two different cards", a, b)
	}
	if ex := startExit(t, vms[2]); ex != "could not find a free device for 'hostpci0'" {
		t.Fatalf("303 on a full pool: %q", ex)
	}
	// The same mapping on another node resolves to that node's cards.
	vm, err := create("pve2", 304, gpu)
	if err != nil {
		t.Fatal(err)
	}
	if ex := startExit(t, vm); ex != "OK" {
		t.Fatalf("304 on pve2: %s", ex)
	}

	var res []map[string]any
	if err := e.token.Get(ctx, "/cluster/resources?type=vm", &res); err != nil {
		t.Fatal(err)
	}
	nodeOf := map[float64]string{}
	for _, r := range res {
		nodeOf[r["vmid"].(float64)] = r["node"].(string)
	}
	if nodeOf[300] != "pve1" || nodeOf[304] != "pve2" || len(nodeOf) != 5 {
		t.Fatalf("cluster/resources VMs: %v", nodeOf)
	}
	if err := e.token.Get(ctx, "/cluster/resources?type=node", &res); err != nil || len(res) != 4 {
		t.Fatalf("cluster/resources nodes: %d, %v", len(res), err)
	}

	// Capacity: pve3 has 96 GiB, 4 GiB of which the host uses.
	big := proxmox.VirtualMachineOption{Name: "memory", Value: "65536"}
	v1, err := create("pve3", 310, big)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := create("pve3", 311, big)
	if err != nil {
		t.Fatal(err)
	}
	if ex := startExit(t, v1); ex != "OK" {
		t.Fatalf("310: %s", ex)
	}
	if ex := startExit(t, v2); ex != "start failed: QEMU exited with code 1" {
		t.Fatalf("311 beyond pve3's memory: %q", ex)
	}
}

// TestResetTo: a reset onto another topology keeps the credentials, the next Reset returns to
// the initial one.
func TestResetTo(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if err := e.s.ResetTo(multiNodeTopology()); err != nil {
		t.Fatal(err)
	}
	var nodes []map[string]any
	if err := e.token.Get(ctx, "/nodes", &nodes); err != nil || len(nodes) != 4 {
		t.Fatalf("nodes after ResetTo: %d, %v", len(nodes), err)
	}
	e.s.Reset()
	if err := e.token.Get(ctx, "/nodes", &nodes); err != nil || len(nodes) != 1 || nodes[0]["node"] != DefaultNode {
		t.Fatalf("nodes after Reset: %v, %v", nodes, err)
	}
	if err := e.s.ResetTo(Topology{}); err == nil {
		t.Fatal("ResetTo without nodes: no error")
	}
}
