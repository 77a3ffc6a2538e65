package pve

import (
	"slices"
	"testing"

	proxmox "github.com/luthermonson/go-proxmox"
)

// startLog starts vm and returns the exit status and the task log, both as go-proxmox reads them.
func startLog(t *testing.T, vm *proxmox.VirtualMachine) (string, []string) {
	t.Helper()
	ctx := ctxT(t)
	task, err := vm.Start(ctx)
	if err != nil {
		t.Fatalf("start call: %v", err)
	}
	ex := waitTask(t, ctx, task)
	log, err := task.Log(ctx, 0, 100)
	if err != nil {
		t.Fatalf("task log: %v", err)
	}
	lines := make([]string, 0, len(log))
	for i := 0; i < len(log); i++ {
		lines = append(lines, log[i])
	}
	return ex, lines
}

func stopVM(t *testing.T, vm *proxmox.VirtualMachine) {
	t.Helper()
	ctx := ctxT(t)
	task, err := vm.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, task); ex != "OK" {
		t.Fatalf("stop %d: %q", vm.VMID, ex)
	}
}

// TestCompatPCIRaceAndLeftover: another VM starts with the GPU between a create and its start
// (MarkPCIBusyAfter), then its QEMU dies without cleanup and the next start takes the leftover
// reservation with PVE's warning.
func TestCompatPCIRaceAndLeftover(t *testing.T) {
	e := newEnv(t, WithGuestFactory(NewStaticGuestFactory()))
	ctx := ctxT(t)
	node, _ := e.root.Node(ctx, "pve")
	if err := e.s.MarkPCIBusyAfter("pve", DefaultGPUID, 141, "qmcreate"); err != nil {
		t.Fatal(err)
	}
	holder, err := node.VirtualMachine(ctx, 141)
	if err != nil || holder.Status != "stopped" {
		t.Fatalf("holder before the create: %v %+v", err, holder)
	}
	for _, v := range e.s.Snapshot().VMs {
		if v.VMID == 141 && v.Config["hostpci0"] != "host=0000:01:00,pcie=1" {
			t.Fatalf("holder hostpci0 = %q", v.Config["hostpci0"])
		}
	}
	q35 := proxmox.VirtualMachineOption{Name: "machine", Value: "q35"}
	vm := mustCreate(t, e.root, 140, minimalVM("gpu", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1"}))
	if holder, err = node.VirtualMachine(ctx, 141); err != nil || holder.Status != "running" {
		t.Fatalf("holder after the create: %v %+v", err, holder)
	}
	if ex, _ := startLog(t, vm); ex != "PCI device '0000:01:00.0' already in use by VMID '141'" {
		t.Fatalf("start while 141 runs: %q", ex)
	}

	if err := e.s.KillQEMU(141); err != nil {
		t.Fatal(err)
	}
	if holder, _ = node.VirtualMachine(ctx, 141); holder.Status != "stopped" {
		t.Fatalf("holder after KillQEMU: %q", holder.Status)
	}
	if r := e.s.Snapshot().Reservations; len(r) == 0 {
		t.Fatal("KillQEMU dropped the reservation; it must stay behind as a leftover")
	}
	ex, log := startLog(t, vm)
	if ex != "OK" {
		t.Fatalf("start with a leftover reservation: %q (log %q)", ex, log)
	}
	for _, want := range []string{
		"leftover PCI reservation found for 0000:01:00.0, lets take it...",
		"leftover PCI reservation found for 0000:01:00.1, lets take it...",
		"TASK OK",
	} {
		if !slices.Contains(log, want) {
			t.Errorf("task log lacks %q:\n%q", want, log)
		}
	}
	// 140 holds the GPU now: the old holder cannot start.
	if ex, _ := startLog(t, holder); ex != "PCI device '0000:01:00.0' already in use by VMID '140'" {
		t.Fatalf("holder start while 140 runs: %q", ex)
	}
	stopVM(t, vm)
	if ex, _ := startLog(t, holder); ex != "OK" {
		t.Fatalf("holder start after 140 stopped: %q", ex)
	}
}

// TestCompatVMLocked: a VM locked by a backup refuses config changes (sync 500) and starts (task).
func TestCompatVMLocked(t *testing.T) {
	e := newEnv(t, WithGuestFactory(NewStaticGuestFactory()))
	ctx := ctxT(t)
	vm := mustCreate(t, e.root, 150, minimalVM("backedup"))
	if err := e.s.SetLock(150, "backup"); err != nil {
		t.Fatal(err)
	}
	node, _ := e.root.Node(ctx, "pve")
	vm, _ = node.VirtualMachine(ctx, 150)
	if vm.Lock != "backup" {
		t.Fatalf("status lock %q, want backup", vm.Lock)
	}
	wantErr(t, "config PUT", vm.ConfigSync(ctx, proxmox.VirtualMachineOption{Name: "cores", Value: 4}), "500 VM is locked (backup)")
	_, err := vm.Config(ctx, proxmox.VirtualMachineOption{Name: "cores", Value: 4})
	wantErr(t, "config POST", err, "500 VM is locked (backup)")
	if ex, _ := startLog(t, vm); ex != "VM is locked (backup)" {
		t.Fatalf("start: %q", ex)
	}
	if err := e.s.SetLock(150, ""); err != nil {
		t.Fatal(err)
	}
	if ex, _ := startLog(t, vm); ex != "OK" {
		t.Fatalf("start after the backup: %q", ex)
	}
	if err := e.s.SetLock(999, "backup"); err == nil {
		t.Error("SetLock of a missing VM succeeded")
	}
}

// TestCompatStartFaults: vfio bind failure, memory the node does not have, kvm timeout.
func TestCompatStartFaults(t *testing.T) {
	e := newEnv(t, WithGuestFactory(NewStaticGuestFactory()))
	q35 := proxmox.VirtualMachineOption{Name: "machine", Value: "q35"}

	t.Run("vfio bind", func(t *testing.T) {
		vm := mustCreate(t, e.root, 160, minimalVM("vfio", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1"}))
		if err := e.s.SetPCIFault("pve", DefaultGPUID, PCIFaultVFIOBind); err != nil {
			t.Fatal(err)
		}
		if ex, _ := startLog(t, vm); ex != "can't unbind/bind PCI group to VFIO '0000:01:00.0'" {
			t.Fatalf("start: %q", ex)
		}
		if r := e.s.Snapshot().Reservations; len(r) != 0 {
			t.Fatalf("reservations left after the failed start: %v", r)
		}
		if err := e.s.SetPCIFault("pve", DefaultGPUID, ""); err != nil {
			t.Fatal(err)
		}
		if ex, _ := startLog(t, vm); ex != "OK" {
			t.Fatalf("start after the fault cleared: %q", ex)
		}
		stopVM(t, vm)
	})
	t.Run("not enough memory", func(t *testing.T) {
		// node: 128 GiB, 4 GiB host overhead; 64 GiB fits once, not twice
		a := mustCreate(t, e.root, 161, minimalVM("big-a", proxmox.VirtualMachineOption{Name: "memory", Value: "65536"}))
		b := mustCreate(t, e.root, 162, minimalVM("big-b", proxmox.VirtualMachineOption{Name: "memory", Value: "65536"}))
		if ex, _ := startLog(t, a); ex != "OK" {
			t.Fatalf("first 64 GiB VM: %q", ex)
		}
		ex, log := startLog(t, b)
		if ex != "start failed: QEMU exited with code 1" {
			t.Fatalf("second 64 GiB VM: %q", ex)
		}
		if !slices.Contains(log, "kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory") {
			t.Fatalf("log lacks the kvm stderr line: %q", log)
		}
		stopVM(t, a)
		if ex, _ := startLog(t, b); ex != "OK" {
			t.Fatalf("second VM once the first stopped: %q", ex)
		}
		stopVM(t, b)
	})
	t.Run("kvm timeout", func(t *testing.T) {
		vm := mustCreate(t, e.root, 163, minimalVM("slowkvm"))
		if err := e.s.SetVMFault(163, VMFaultKVMTimeout); err != nil {
			t.Fatal(err)
		}
		want := "start failed: command '/usr/bin/kvm -id 163 -name 'slowkvm,debug-threads=on' -no-shutdown " +
			"-chardev 'socket,id=qmp,path=/var/run/qemu-server/163.qmp,server=on,wait=off' -mon 'chardev=qmp,mode=control' " +
			"-pidfile /var/run/qemu-server/163.pid -daemonize -smp '2,sockets=1,cores=2,maxcpus=2' -m 2048' failed: got timeout"
		if ex, _ := startLog(t, vm); ex != want {
			t.Fatalf("start:\n got  %q\n want %q", ex, want)
		}
		if ex, _ := startLog(t, vm); ex != "OK" {
			t.Fatalf("the fault is for one start; the next: %q", ex)
		}
	})
	t.Run("unknown kinds", func(t *testing.T) {
		if err := e.s.SetPCIFault("pve", DefaultGPUID, "melt"); err == nil {
			t.Error("SetPCIFault accepted an unknown kind")
		}
		if err := e.s.SetVMFault(163, "melt"); err == nil {
			t.Error("SetVMFault accepted an unknown kind")
		}
	})
}
