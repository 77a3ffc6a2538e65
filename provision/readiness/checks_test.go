package readiness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/catalog"
	fakepve "github.com/aimachine/aimachine/fakes/pve"
	"github.com/aimachine/aimachine/provision"
)

// readyTopology is the default fake host with what the testdata catalog needs: the image under
// its .qcow2 name and the mapping rtx5060ti.
func readyTopology() fakepve.Topology {
	t := fakepve.DefaultTopology()
	t.Storages[0].Volumes = append(t.Storages[0].Volumes, fakepve.VolumeSpec{VolID: "local:import/noble-server-cloudimg-amd64.qcow2", Format: "qcow2", Size: 600 << 20})
	t.Mappings = []fakepve.PCIMappingSpec{{ID: "rtx5060ti", Map: []string{"node=pve,path=0000:01:00,id=10de:2d04,iommugroup=12"}}}
	return t
}

// doctorOn runs Doctor against a fake host built from topo, as the root token.
func doctorOn(t *testing.T, topo fakepve.Topology, edit func(*catalog.VM), opts ...fakepve.Option) (*Report, *fakepve.Server) {
	t.Helper()
	srv := fakepve.New(append([]fakepve.Option{fakepve.WithAuthDelay(0), fakepve.WithTimeScale(0), fakepve.WithTopology(topo)}, opts...)...)
	ts := srv.StartTLS()
	t.Cleanup(ts.Close)
	cat, err := catalog.LoadValid("testdata/catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	vm, _ := cat.VM("vm-llm-aimachine")
	if edit != nil {
		edit(vm)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := provision.ConnOptions{Endpoint: ts.URL, APIToken: fakepve.DefaultTokenID + "=" + fakepve.DefaultTokenSecret, Fingerprint: srv.Fingerprint(), Simulator: true}
	rep, err := Doctor(ctx, o, cat, []*catalog.VM{vm})
	if err != nil {
		t.Fatal(err)
	}
	return rep, srv
}

func find(rep *Report, prefix string) *Check {
	for i := range rep.Checks {
		if strings.HasPrefix(rep.Checks[i].Name, prefix) {
			return &rep.Checks[i]
		}
	}
	return nil
}

func TestDoctorReadyHostPasses(t *testing.T) {
	rep, _ := doctorOn(t, readyTopology(), nil)
	if !rep.OK() {
		t.Errorf("failed: %v", failedNames(rep))
	}
	if c := find(rep, "privileges"); c == nil || c.Status != OK || !strings.Contains(c.Detail, "root@pam!aimachine holds all") {
		t.Errorf("privileges: %+v", c)
	}
}

func TestDoctorFindsHostProblems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		topo   func(*fakepve.Topology)
		vm     func(*catalog.VM)
		opts   []fakepve.Option
		check  string
		status Status
		fix    string
	}{
		{name: "IOMMU off", topo: func(t *fakepve.Topology) { t.Nodes[0].IOMMU = false },
			check: "IOMMU on", status: Fail, fix: "intel_iommu=on"},
		{name: "shared IOMMU group", topo: func(t *fakepve.Topology) {
			for i := range t.Nodes[0].PCI {
				if t.Nodes[0].PCI[i].ID == "0000:03:00.0" {
					t.Nodes[0].PCI[i].IOMMUGroup = 12
				}
			}
		}, check: "IOMMU group 12 holds only the GPU", status: Warn, fix: "ACS"},
		{name: "GPU held by a running VM", topo: func(t *fakepve.Topology) {
			t.VMs = []fakepve.VMSpec{{Node: "pve", VMID: 150, Running: true, Config: map[string]string{"name": "other", "memory": "4096", "cores": "2", "hostpci0": "host=0000:01:00,pcie=1", "machine": "q35"}}}
		}, check: "GPU not held by another VM", status: Fail, fix: "qm stop"},
		{name: "GPU of an onboot VM", topo: func(t *fakepve.Topology) {
			t.VMs = []fakepve.VMSpec{{Node: "pve", VMID: 150, Config: map[string]string{"name": "other", "memory": "4096", "onboot": "1", "hostpci0": "mapping=rtx5060ti", "machine": "q35"}}}
		}, check: "GPU not held by another VM", status: Warn, fix: "--onboot 0"},
		{name: "VM id taken by another VM", topo: func(t *fakepve.Topology) {
			t.VMs = []fakepve.VMSpec{{Node: "pve", VMID: 140, Config: map[string]string{"name": "someone-else", "memory": "1024"}}}
		}, check: "VM id 140 free or ours", status: Fail, fix: "qm destroy 140"},
		{name: "quorum lost", topo: func(t *fakepve.Topology) {
			t.ClusterName = "lab"
			t.Nodes = append(t.Nodes, fakepve.NodeSpec{Name: "pve2", Offline: true}, fakepve.NodeSpec{Name: "pve3", Offline: true})
		}, check: "cluster quorate", status: Fail, fix: "pvecm"},
		{name: "raw address with a token", vm: func(vm *catalog.VM) { vm.GPU.Mapping, vm.GPU.PCIAddress = "", "0000:01:00" },
			check: "raw PCI address allowed", status: Fail, fix: "gpu.mapping"},
		{name: "mapping without the node", topo: func(t *fakepve.Topology) {
			t.Mappings[0].Map = []string{"node=pve2,path=0000:01:00,id=10de:2d04"}
		}, check: "PCI mapping rtx5060ti has node pve", status: Fail, fix: "Resource Mappings"},
		{name: "PVE 8.2: no import content type", opts: []fakepve.Option{fakepve.WithPVEVersion("8.2.7")},
			check: "PVE release has the import content type", status: Fail, fix: "apt full-upgrade"},
		{name: "PVE 8.3: no qcow2 download into import", opts: []fakepve.Option{fakepve.WithPVEVersion("8.3.5")},
			check: "PVE release downloads disk images", status: Warn, fix: "by hand"},
		{name: "disk too big", vm: func(vm *catalog.VM) { vm.Disk.SizeGB = 4000 },
			check: "storage local-lvm has room for the disk", status: Fail, fix: "disk.size_gb"},
		{name: ".img name in import", vm: func(vm *catalog.VM) { vm.Image.CloudImage = "local:import/other.img" },
			check: "cloud image local:import/other.img present", status: Fail, fix: "other.qcow2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := readyTopology()
			if tc.topo != nil {
				tc.topo(&topo)
			}
			rep, srv := doctorOn(t, topo, tc.vm, tc.opts...)
			c := find(rep, tc.check)
			if c == nil {
				t.Fatalf("no check %q:\n%v", tc.check, rep.Checks)
			}
			if c.Status != tc.status || !strings.Contains(c.Fix, tc.fix) {
				t.Errorf("%s: %s %s (fix %q), want %s with %q", c.Name, c.Status, c.Detail, c.Fix, tc.status, tc.fix)
			}
			if tc.status == Fail && rep.OK() {
				t.Error("report OK with a failed check")
			}
			if n := srv.Stats().Mutating; n != 0 {
				t.Errorf("%d mutating calls", n)
			}
		})
	}
}

func TestDoctorStopsAtRejectedCredentials(t *testing.T) {
	srv := fakepve.New(fakepve.WithAuthDelay(0), fakepve.WithTimeScale(0))
	ts := srv.StartTLS()
	t.Cleanup(ts.Close)
	cat, err := catalog.LoadValid("testdata/catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := provision.ConnOptions{Endpoint: ts.URL, APIToken: fakepve.DefaultTokenID + "=wrong-secret", Fingerprint: srv.Fingerprint(), Simulator: true}
	rep, err := Doctor(ctx, o, cat, []*catalog.VM{&cat.VMs[0]})
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Checks[len(rep.Checks)-1]
	if last.Name != "credentials accepted" || last.Status != Fail || !strings.Contains(last.Fix, "PROXMOX_VE_API_TOKEN") || strings.Contains(last.Detail+last.Fix, "wrong-secret") {
		t.Errorf("last check %+v", last)
	}
	if n := srv.Stats().Mutating; n != 0 {
		t.Errorf("%d mutating calls", n)
	}
}
