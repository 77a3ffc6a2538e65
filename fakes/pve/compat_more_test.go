package pve

import (
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

// TestCompatMoreErrors covers the remaining §4 texts the fake implements, through go-proxmox.
func TestCompatMoreErrors(t *testing.T) {
	tp := DefaultTopology()
	tp.Mappings = []PCIMappingSpec{
		{ID: "moved", Map: []string{"node=pve,path=0000:05:00,id=10de:2d04,iommugroup=12"}},
		{ID: "pool", Map: []string{"node=pve,path=0000:01:00,id=10de:2d04", "node=pve,path=0000:03:00.0,id=8086:125c"}},
		{ID: "gpu0", Map: []string{"node=pve,path=0000:01:00,id=10de:2d04,iommugroup=12"}},
	}
	f := NewStaticGuestFactory()
	e := newEnv(t, WithTopology(tp), WithGuestFactory(f))
	ctx := ctxT(t)
	q35 := proxmox.VirtualMachineOption{Name: "machine", Value: "q35"}
	tokNode, _ := e.token.Node(ctx, "pve")

	t.Run("mapping hardware changed", func(t *testing.T) {
		vm := mustCreate(t, e.token, 170, minimalVM("moved", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "mapping=moved,pcie=1"}))
		if ex := startExit(t, vm); ex != "PCI device mapping invalid (hardware probably changed): pci device '0000:05:00' not found " {
			t.Fatalf("exit %q", ex)
		}
	})
	t.Run("mapping pool exhausted", func(t *testing.T) {
		vm := mustCreate(t, e.token, 171, minimalVM("pool", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "mapping=pool"}))
		_ = e.s.MarkPCIBusy("pve", "0000:01:00.1", 198)
		_ = e.s.MarkPCIBusy("pve", "0000:03:00.0", 199)
		if ex := startExit(t, vm); ex != "could not find a free device for 'hostpci0'" {
			t.Fatalf("exit %q", ex)
		}
		e.s.ReleasePCI("pve", "0000:03:00.0")
		if ex := startExit(t, vm); ex != "OK" {
			t.Fatalf("second pool entry: %q", ex)
		}
		if g := f.Guest(171).BootInfo().GPUs; len(g) != 1 || g[0].ID != "0000:03:00.0" {
			t.Fatalf("pool picked %+v", g)
		}
		e.s.ReleasePCI("pve", "0000:01:00.1")
		stop, _ := vm.Stop(ctx)
		waitTask(t, ctx, stop)
	})
	t.Run("both host and mapping", func(t *testing.T) {
		vm := mustCreate(t, e.root, 172, minimalVM("both", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "host=0000:01:00,mapping=gpu0"}))
		if ex := startExit(t, vm); ex != "Cannot set both 'host' and 'mapping'." {
			t.Fatalf("exit %q", ex)
		}
	})
	t.Run("mapping resolves all functions for the guest", func(t *testing.T) {
		vm := mustCreate(t, e.token, 173, minimalVM("mapped", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "mapping=gpu0,pcie=1"}))
		if ex := startExit(t, vm); ex != "OK" {
			t.Fatalf("exit %q", ex)
		}
		g := f.Guest(173).BootInfo().GPUs
		if len(g) != 2 || g[0].Model != "NVIDIA GeForce RTX 5060 Ti" || g[0].MemoryMiB != 16311 || g[1].ID != DefaultGPUAudioID {
			t.Fatalf("gpus %+v", g)
		}
		stop, _ := vm.Stop(ctx)
		waitTask(t, ctx, stop)
	})
	t.Run("template", func(t *testing.T) {
		vm := mustCreate(t, e.root, 174, minimalVM("tmpl", proxmox.VirtualMachineOption{Name: "template", Value: 1}))
		if !vm.Template {
			t.Fatal("template flag not reported")
		}
		if ex := startExit(t, vm); ex != "you can't start a vm if it's a template" {
			t.Fatalf("exit %q", ex)
		}
	})
	t.Run("skiplock as token", func(t *testing.T) {
		vm, err := tokNode.VirtualMachine(ctx, 174)
		if err != nil {
			t.Fatal(err)
		}
		_, err = vm.Delete(ctx, &proxmox.VirtualMachineDeleteOptions{SkipLock: true, Purge: true})
		wantErr(t, "skiplock", err, `bad request: 400 Parameter verification failed. - {"skiplock":"Only root may use this option."}`)
	})
	t.Run("protection", func(t *testing.T) {
		vm := mustCreate(t, e.root, 175, minimalVM("prot", proxmox.VirtualMachineOption{Name: "protection", Value: 1}))
		_, err := vm.Delete(ctx, nil)
		wantErr(t, "protected", err, "500 can't remove VM 175 - protection mode enabled")
	})
	t.Run("romfile as token", func(t *testing.T) {
		_, err := tokNode.NewVirtualMachine(ctx, 176, minimalVM("rom", proxmox.VirtualMachineOption{Name: "hostpci0", Value: "mapping=gpu0,romfile=gb206.rom"})...)
		wantErr(t, "romfile", err, `bad request: 400 Parameter verification failed. - {"hostpci0":"only root@pam can set 'romfile' option"}`)
	})
}

// TestCompatCurrentlyReserved: a device reserved by a VM whose start is still running.
func TestCompatCurrentlyReserved(t *testing.T) {
	e := newEnv(t, WithTimeScale(0.2))
	ctx := ctxT(t)
	q35 := proxmox.VirtualMachineOption{Name: "machine", Value: "q35"}
	a := mustCreate(t, e.root, 180, minimalVM("a", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00"}))
	b := mustCreate(t, e.root, 181, minimalVM("b", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00.0"}))
	ta, err := a.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.s.Snapshot().Reservations["pve 0000:01:00.0"] != 180 {
		if time.Now().After(deadline) {
			t.Fatal("VM 180 never reserved the GPU")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ex := startExit(t, b); ex != "PCI device '0000:01:00.0' is currently reserved for use by VMID '180'" {
		t.Fatalf("exit %q", ex)
	}
	if ex := waitTask(t, ctx, ta); ex != "OK" {
		t.Fatalf("a: %q", ex)
	}
	if ex := startExit(t, b); ex != "PCI device '0000:01:00.0' already in use by VMID '180'" {
		t.Fatalf("exit after a started %q", ex)
	}
}

// TestTopologyVMs: VMs of the initial topology own their volumes and, when running, their PCI devices.
func TestTopologyVMs(t *testing.T) {
	tp := DefaultTopology()
	tp.VMs = []VMSpec{{Node: "pve", VMID: 141, Running: true, Config: map[string]string{
		"name": "other-gpu-vm", "memory": "4096", "cores": "2", "machine": "q35",
		"hostpci0": "0000:01:00,pcie=1", "scsi0": "local-lvm:vm-141-disk-0,size=32G"}}}
	e := newEnv(t, WithTopology(tp), WithGuestFactory(NewStaticGuestFactory()))
	ctx := ctxT(t)
	node, _ := e.root.Node(ctx, "pve")
	st, _ := node.Storage(ctx, "local-lvm")
	content, err := st.GetContent(ctx)
	if err != nil || len(content) != 1 || content[0].Volid != "local-lvm:vm-141-disk-0" || content[0].Size != 32<<30 {
		t.Fatalf("content %+v %v", content, err)
	}
	vm := mustCreate(t, e.root, 140, minimalVM("new", proxmox.VirtualMachineOption{Name: "machine", Value: "q35"},
		proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1"}))
	if ex := startExit(t, vm); ex != "PCI device '0000:01:00.0' already in use by VMID '141'" {
		t.Fatalf("exit %q", ex)
	}
	if got := vm.VirtualMachineConfig.SCSIs["scsi0"]; got != "local-lvm:vm-140-disk-0,size=8G" {
		t.Fatalf("scsi0 %q", got)
	}
}

// TestCompatRemainingTexts: §4 texts whose go-proxmox rendering is not covered elsewhere.
func TestCompatRemainingTexts(t *testing.T) {
	tp := DefaultTopology()
	tp.Storages = append(tp.Storages, StorageSpec{Name: "nfs-far", Type: "nfs", Content: []string{"images"}, Nodes: []string{"pve2"}, TotalBytes: 1 << 40})
	e := newEnv(t, WithTopology(tp), WithTimeScale(0.05))
	ctx := ctxT(t)
	node, _ := e.root.Node(ctx, "pve")

	var out any
	wantErr(t, "nextid taken", func() error {
		mustCreate(t, e.root, 140, minimalVM("x"))
		return e.root.Get(ctx, "/cluster/nextid?vmid=140", &out)
	}(), `bad request: 400 Parameter verification failed. - {"vmid":"VM 140 already exists"}`)
	wantErr(t, "missing vmid", e.root.Post(ctx, "/nodes/pve/qemu", map[string]any{"name": "x"}, &out),
		`bad request: 400 Parameter verification failed. - {"vmid":"property is missing and it is not optional"}`)

	task, err := node.NewVirtualMachine(ctx, 145, minimalVM("far", proxmox.VirtualMachineOption{Name: "scsi0", Value: "nfs-far:32"})...)
	if err != nil {
		t.Fatalf("storage of another node is a task error, got %v", err)
	}
	if ex := waitTask(t, ctx, task); ex != "unable to create VM 145 - storage 'nfs-far' is not available on node 'pve'" {
		t.Fatalf("exit %q", ex)
	}

	// destroy while the create task still holds the lock
	task, err = node.NewVirtualMachine(ctx, 146, minimalVM("slow", proxmox.VirtualMachineOption{Name: "scsi0", Value: "local-lvm:0,import-from=" + DefaultCloudImage})...)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := node.VirtualMachine(ctx, 146)
	if err != nil {
		t.Fatal(err)
	}
	del, err := vm.Delete(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, del); ex != "VM is locked (create)" {
		t.Fatalf("destroy during create %q", ex)
	}
	if ex := waitTask(t, ctx, task); ex != "OK" {
		t.Fatalf("create %q", ex)
	}
	del, err = vm.Delete(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, del); ex != "OK" {
		t.Fatalf("destroy %q", ex)
	}
	_, err = vm.Delete(ctx, nil)
	wantErr(t, "destroy missing", err, "500 Configuration file 'nodes/pve/qemu-server/146.conf' does not exist")
	err = vm.AgentPing(ctx)
	wantErr(t, "agent on missing", err, "500 Configuration file 'nodes/pve/qemu-server/146.conf' does not exist")
	st, err := vm.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, st); ex != "Configuration file 'nodes/pve/qemu-server/146.conf' does not exist" {
		t.Fatalf("start missing %q", ex)
	}
}
