package pve

import (
	"errors"
	"strings"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

func minimalVM(name string, extra ...proxmox.VirtualMachineOption) []proxmox.VirtualMachineOption {
	return append([]proxmox.VirtualMachineOption{
		{Name: "name", Value: name},
		{Name: "cores", Value: 2},
		{Name: "memory", Value: "2048"},
		{Name: "scsi0", Value: "local-lvm:8"},
		{Name: "net0", Value: "virtio,bridge=vmbr0"},
	}, extra...)
}

func mustCreate(t *testing.T, c *proxmox.Client, vmid int, opts []proxmox.VirtualMachineOption) *proxmox.VirtualMachine {
	t.Helper()
	ctx := ctxT(t)
	node, err := c.Node(ctx, "pve")
	if err != nil {
		t.Fatal(err)
	}
	task, err := node.NewVirtualMachine(ctx, vmid, opts...)
	if err != nil {
		t.Fatalf("create %d: %v", vmid, err)
	}
	if st := waitTask(t, ctx, task); st != "OK" {
		t.Fatalf("create %d exit %q", vmid, st)
	}
	vm, err := node.VirtualMachine(ctx, vmid)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func startExit(t *testing.T, vm *proxmox.VirtualMachine) string {
	t.Helper()
	ctx := ctxT(t)
	task, err := vm.Start(ctx)
	if err != nil {
		t.Fatalf("start call: %v", err)
	}
	if task.Type != "qmstart" {
		t.Fatalf("start task type %q", task.Type)
	}
	return waitTask(t, ctx, task)
}

func wantErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %q", what, want)
	}
	if err.Error() != want {
		t.Fatalf("%s:\n got  %q\n want %q", what, err.Error(), want)
	}
}

// TestCompatSyncErrors: errors PVE returns on the HTTP call, as go-proxmox surfaces them.
func TestCompatSyncErrors(t *testing.T) {
	e := newEnv(t, WithGuestFactory(NewStaticGuestFactory()))
	ctx := ctxT(t)
	rootNode, _ := e.root.Node(ctx, "pve")
	tokNode, _ := e.token.Node(ctx, "pve")
	key := testKey(t, "alice@laptop")

	vm := mustCreate(t, e.root, 140, minimalVM("gpu", proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1"},
		proxmox.VirtualMachineOption{Name: "machine", Value: "q35"}))

	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"vm exists", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 140, minimalVM("again")...)
			return err
		}, "500 unable to create VM 140 - VM 140 already exists on node 'pve'"},
		{"token raw hostpci on create", func() error {
			_, err := tokNode.NewVirtualMachine(ctx, 150, minimalVM("tok", proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1"})...)
			return err
		}, "500 only root can set 'hostpci0' config for non-mapped devices"},
		{"token raw hostpci on config update", func() error {
			tvm, err := tokNode.VirtualMachine(ctx, 140)
			if err != nil {
				return err
			}
			return tvm.ConfigSync(ctx, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1,x-vga=1"})
		}, "500 only root can set 'hostpci0' config for non-mapped devices"},
		{"token deletes raw hostpci", func() error {
			tvm, err := tokNode.VirtualMachine(ctx, 140)
			if err != nil {
				return err
			}
			_, err = tvm.Config(ctx, proxmox.VirtualMachineOption{Name: "delete", Value: "hostpci0"})
			return err
		}, "500 only root can set 'hostpci0' config for non-mapped devices"},
		{"storage missing for a new disk", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 151, proxmox.VirtualMachineOption{Name: "scsi0", Value: "nvme:500"})
			return err
		}, "500 storage 'nvme' does not exist"},
		{"storage without images content", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 151, proxmox.VirtualMachineOption{Name: "scsi0", Value: "local:32"})
			return err
		}, `bad request: 400 Parameter verification failed. - {"storage":"storage 'local' does not support vm images"}`},
		{"sshkeys not urlencoded", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 151, proxmox.VirtualMachineOption{Name: "sshkeys", Value: "ssh-ed25519 AAAA alice"})
			return err
		}, `bad request: 400 Parameter verification failed. - {"sshkeys":"invalid format - invalid urlencoded string: ssh-ed25519 AAAA alice\n"}`},
		{"sshkeys encoded with QueryEscape only (go-proxmox issue #144)", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 151, proxmox.VirtualMachineOption{Name: "sshkeys", Value: "ssh-ed25519+AAAA+alice"})
			return err
		}, `bad request: 400 Parameter verification failed. - {"sshkeys":"invalid format - invalid urlencoded string: ssh-ed25519+AAAA+alice\n"}`},
		{"sshkeys well encoded but not a key", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 151, proxmox.VirtualMachineOption{Name: "sshkeys", Value: proxmox.EncodeSSHKeys(key, "not a key")})
			return err
		}, "500 SSH public key validation error"},
		{"bad hostpci id", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 151, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:0A:00,pcie=1"})
			return err
		}, `bad request: 400 Parameter verification failed. - {"hostpci0":"invalid format - format error\nhostpci0.host: value does not match the regex pattern\n"}`},
		{"mapping name given as host", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 151, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "gpu0,pcie=1"})
			return err
		}, `bad request: 400 Parameter verification failed. - {"hostpci0":"invalid format - format error\nhostpci0.host: value does not match the regex pattern\n"}`},
		{"JSON boolean for a string parameter", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 151, proxmox.VirtualMachineOption{Name: "agent", Value: true})
			return err
		}, `bad request: 400 Parameter verification failed. - {"agent":"type check ('string') failed - got JSON::PP::Boolean"}`},
		{"string true for a boolean", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 151, proxmox.VirtualMachineOption{Name: "onboot", Value: "true"})
			return err
		}, `bad request: 400 Parameter verification failed. - {"onboot":"type check ('boolean') failed - got 'true'"}`},
		{"unknown parameter", func() error {
			_, err := rootNode.NewVirtualMachine(ctx, 151, proxmox.VirtualMachineOption{Name: "gpu", Value: "yes"})
			return err
		}, `bad request: 400 Parameter verification failed. - {"gpu":"property is not defined in schema and the schema does not allow additional properties"}`},
		{"config file missing", func() error {
			_, err := rootNode.VirtualMachine(ctx, 999)
			return err
		}, "500 Configuration file 'nodes/pve/qemu-server/999.conf' does not exist"},
		{"agent not configured", func() error { return vm.AgentPing(ctx) }, "500 No QEMU guest agent configured"},
		{"unknown path", func() error {
			var out any
			return e.root.Get(ctx, "/nodes/pve/foo", &out)
		}, "501 Method 'GET /nodes/pve/foo' not implemented"},
		{"unknown node", func() error {
			var out any
			return e.root.Get(ctx, "/nodes/xyz/qemu", &out)
		}, "500 hostname lookup 'xyz' failed - failed to get address info for: xyz: Name or service not known"},
		{"mapping not found", func() error {
			cl, _ := e.root.Cluster(ctx)
			_, err := cl.PCIMapping(ctx, "nope")
			return err
		}, "500 mapping 'nope' not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.name, tc.call(), tc.want) })
	}

	// the failed creates left nothing behind
	if _, err := rootNode.VirtualMachine(ctx, 151); err == nil {
		t.Fatal("VM 151 exists after failed creates")
	}
	// CheckID folds "VM 140 already exists" into false
	cl, _ := e.root.Cluster(ctx)
	if free, err := cl.CheckID(ctx, 140); err != nil || free {
		t.Fatalf("CheckID(140) = %v, %v", free, err)
	}

	// destroy running
	if ex := startExit(t, vm); ex != "OK" {
		t.Fatalf("start: %q", ex)
	}
	_, err := vm.Delete(ctx, nil)
	wantErr(t, "destroy running", err, "500 VM 140 is running - destroy failed")
}

// TestCompatTaskErrors: errors PVE reports only in the task's exitstatus.
func TestCompatTaskErrors(t *testing.T) {
	e := newEnv(t, WithGuestFactory(NewStaticGuestFactory()))
	ctx := ctxT(t)
	q35 := proxmox.VirtualMachineOption{Name: "machine", Value: "q35"}

	t.Run("no such device", func(t *testing.T) {
		vm := mustCreate(t, e.root, 160, minimalVM("nodev", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:99:00,pcie=1"}))
		if ex := startExit(t, vm); ex != "no PCI device found for '0000:99:00'" {
			t.Fatalf("exit %q", ex)
		}
	})
	t.Run("mapping not found", func(t *testing.T) {
		vm := mustCreate(t, e.token, 161, minimalVM("nomap", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "mapping=nogpu,pcie=1"}))
		if ex := startExit(t, vm); ex != "PCI device mapping not found for 'nogpu'" {
			t.Fatalf("exit %q", ex)
		}
	})
	t.Run("pcie without q35", func(t *testing.T) {
		vm := mustCreate(t, e.root, 162, minimalVM("i440", proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1"}))
		if ex := startExit(t, vm); ex != "q35 machine model is not enabled at /usr/share/perl5/PVE/QemuServer/PCI.pm line 501." {
			t.Fatalf("exit %q", ex)
		}
	})
	t.Run("IOMMU off", func(t *testing.T) {
		vm := mustCreate(t, e.root, 163, minimalVM("noiommu", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1"}))
		if err := e.s.SetIOMMU("pve", false); err != nil {
			t.Fatal(err)
		}
		defer e.s.SetIOMMU("pve", true)
		if ex := startExit(t, vm); ex != "cannot prepare PCI pass-through, IOMMU not present" {
			t.Fatalf("exit %q", ex)
		}
		if snap := e.s.Snapshot(); len(snap.Reservations) != 0 {
			t.Fatalf("reservations left after failed start: %v", snap.Reservations)
		}
	})
	t.Run("device in use by a running VM, released on stop", func(t *testing.T) {
		cl, _ := e.root.Cluster(ctx)
		if err := cl.NewPCIMapping(ctx, &proxmox.ClusterPCIMappingOptions{ID: "gpu0", Description: "RTX 5060 Ti",
			Map: []string{"node=pve,path=0000:01:00,id=10de:2d04,iommugroup=12"}}); err != nil {
			t.Fatalf("mapping: %v", err)
		}
		holder := mustCreate(t, e.token, 141, minimalVM("holder", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "mapping=gpu0,pcie=1"}))
		if ex := startExit(t, holder); ex != "OK" {
			t.Fatalf("holder start %q", ex)
		}
		vm := mustCreate(t, e.root, 164, minimalVM("second", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1"}))
		if ex := startExit(t, vm); ex != "PCI device '0000:01:00.0' already in use by VMID '141'" {
			t.Fatalf("exit %q", ex)
		}
		stop, err := holder.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ex := waitTask(t, ctx, stop); ex != "OK" {
			t.Fatalf("stop %q", ex)
		}
		if ex := startExit(t, vm); ex != "OK" {
			t.Fatalf("start after release %q", ex)
		}
		if ex := startExit(t, vm); ex != "VM 164 already running" {
			t.Fatalf("second start %q", ex)
		}
		stop, _ = vm.Stop(ctx)
		waitTask(t, ctx, stop)
	})
	t.Run("device marked busy through the control API", func(t *testing.T) {
		vm := mustCreate(t, e.root, 165, minimalVM("busy", q35, proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00.0,pcie=1"}))
		if err := e.s.MarkPCIBusy("pve", DefaultGPUID, 199); err != nil {
			t.Fatal(err)
		}
		if ex := startExit(t, vm); ex != "PCI device '0000:01:00.0' already in use by VMID '199'" {
			t.Fatalf("exit %q", ex)
		}
		e.s.ReleasePCI("pve", DefaultGPUID)
	})
	t.Run("injected task failure", func(t *testing.T) {
		vm := mustCreate(t, e.root, 166, minimalVM("inject"))
		e.s.FailTask(TaskFault{Type: "qmstart", ExitStatus: "start failed: QEMU exited with code 1"})
		task, err := vm.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waitTask(t, ctx, task)
		if !task.IsFailed || task.ExitStatus != "start failed: QEMU exited with code 1" {
			t.Fatalf("task %+v", task)
		}
		log, err := task.Log(ctx, 0, 50)
		if err != nil || len(log) == 0 || log[len(log)-1] != "TASK ERROR: start failed: QEMU exited with code 1" {
			t.Fatalf("log %v %v", log, err)
		}
	})
}

// TestCompatCreateLock: the config carries lock=create while qmcreate runs; start and config updates see it.
func TestCompatCreateLock(t *testing.T) {
	e := newEnv(t, WithTimeScale(0.05))
	ctx := ctxT(t)
	node, _ := e.root.Node(ctx, "pve")
	task, err := node.NewVirtualMachine(ctx, 140, minimalVM("slow",
		proxmox.VirtualMachineOption{Name: "scsi0", Value: "local-lvm:0,import-from=" + DefaultCloudImage})...)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := node.VirtualMachine(ctx, 140)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Lock != "create" || vm.VirtualMachineConfig.Lock != "create" {
		t.Fatalf("lock during create: status %q config %q", vm.Lock, vm.VirtualMachineConfig.Lock)
	}
	wantErr(t, "config during create", vm.ConfigSync(ctx, proxmox.VirtualMachineOption{Name: "cores", Value: 4}), "500 VM is locked (create)")
	st, err := vm.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, st); ex != "VM is locked (create)" {
		t.Fatalf("start during create: %q", ex)
	}
	if ex := waitTask(t, ctx, task); ex != "OK" {
		t.Fatalf("create: %q", ex)
	}
	// a fresh handle: go-proxmox's Ping decodes into the old struct and keeps absent keys
	vm, err = node.VirtualMachine(ctx, 140)
	if err != nil || vm.Lock != "" || vm.VirtualMachineConfig.Lock != "" {
		t.Fatalf("lock after create: %v", err)
	}
}

func TestCompatCreateTaskFailureRemovesConfig(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	node, _ := e.root.Node(ctx, "pve")
	task, err := node.NewVirtualMachine(ctx, 143, minimalVM("ci", proxmox.VirtualMachineOption{Name: "ide2", Value: "nvme:cloudinit"})...)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, task); ex != "unable to create VM 143 - storage 'nvme' does not exist" {
		t.Fatalf("exit %q", ex)
	}
	_, err = node.VirtualMachine(ctx, 143)
	wantErr(t, "config after failed create", err, "500 Configuration file 'nodes/pve/qemu-server/143.conf' does not exist")
	st, _ := node.Storage(ctx, "local-lvm")
	content, err := st.GetContent(ctx)
	if err != nil || len(content) != 0 {
		t.Fatalf("volumes left: %+v %v", content, err)
	}
}

func TestCompatAgentStates(t *testing.T) {
	// no guest factory: the VM runs but no agent ever answers
	e := newEnv(t)
	ctx := ctxT(t)
	vm := mustCreate(t, e.root, 140, minimalVM("noagent", proxmox.VirtualMachineOption{Name: "agent", Value: "1"}))
	_, err := vm.AgentOsInfo(ctx)
	wantErr(t, "stopped", err, "500 VM 140 is not running")
	if err := vm.WaitForAgent(ctx, 1); err == nil || err.Error() != "500 VM 140 is not running" {
		t.Fatalf("WaitForAgent on stopped VM: %v", err)
	}
	if ex := startExit(t, vm); ex != "OK" {
		t.Fatal(ex)
	}
	_, err = vm.AgentOsInfo(ctx)
	wantErr(t, "running without agent", err, "500 QEMU guest agent is not running")
	start := time.Now()
	if err := vm.WaitForAgent(ctx, 1); !errors.Is(err, proxmox.ErrTimeout) {
		t.Fatalf("WaitForAgent keeps polling until timeout, got %v after %s", err, time.Since(start))
	}
	// agent exec hides the cause (go-proxmox pitfall #8)
	_, err = vm.AgentExec(ctx, []string{"true"}, "")
	wantErr(t, "exec", err, "no pid returned from agent exec command")
}

func TestCompatAgentNeedsGuestAgentPackage(t *testing.T) {
	// the static guest runs qemu-guest-agent only when cloud-init installs it (vendor snippet)
	f := NewStaticGuestFactory()
	e := newEnv(t, WithGuestFactory(f))
	ctx := ctxT(t)
	bare := mustCreate(t, e.root, 140, minimalVM("bare", proxmox.VirtualMachineOption{Name: "agent", Value: "1"},
		proxmox.VirtualMachineOption{Name: "ide2", Value: "local-lvm:cloudinit"}))
	withVendor := mustCreate(t, e.root, 141, minimalVM("vendor", proxmox.VirtualMachineOption{Name: "agent", Value: "1"},
		proxmox.VirtualMachineOption{Name: "ide2", Value: "local-lvm:cloudinit"},
		proxmox.VirtualMachineOption{Name: "cicustom", Value: "vendor=" + DefaultVendorSnippet}))
	for _, vm := range []*proxmox.VirtualMachine{bare, withVendor} {
		if ex := startExit(t, vm); ex != "OK" {
			t.Fatal(ex)
		}
	}
	_, err := bare.AgentOsInfo(ctx)
	wantErr(t, "bare image", err, "500 QEMU guest agent is not running")
	info, err := withVendor.AgentOsInfo(ctx)
	if err != nil || info.ID != "ubuntu" || info.VersionID != "24.04" {
		t.Fatalf("osinfo %+v %v", info, err)
	}
	// a poweroff inside the guest stops the VM
	f.Guest(141).PowerOffFromInside()
	if err := withVendor.Ping(ctx); err != nil || withVendor.Status != "stopped" {
		t.Fatalf("after guest poweroff: %q %v", withVendor.Status, err)
	}
}

func TestCompatAuthErrors(t *testing.T) {
	e := newEnv(t, WithTopology(func() Topology {
		tp := DefaultTopology()
		tp.Tokens = append(tp.Tokens, TokenSpec{ID: "root@pam!readonly", Secret: "ro-secret", Privsep: true, Privs: []string{"VM.Audit", "Sys.Audit"}})
		return tp
	}()))
	ctx := ctxT(t)
	url := e.ts.URL + "/api2/json"
	bad := proxmox.NewClient(url, proxmox.WithHTTPClient(e.hc), proxmox.WithAPIToken(DefaultTokenID, "wrong"))
	if _, err := bad.Version(ctx); !errors.Is(err, proxmox.ErrNotAuthorized) {
		t.Fatalf("bad token: %v", err)
	}
	badpw := proxmox.NewClient(url, proxmox.WithHTTPClient(e.hc), proxmox.WithCredentials(&proxmox.Credentials{Username: "root@pam", Password: "nope"}))
	if _, err := badpw.Version(ctx); !errors.Is(err, proxmox.ErrNotAuthorized) {
		t.Fatalf("bad password: %v", err)
	}
	ro := proxmox.NewClient(url, proxmox.WithHTTPClient(e.hc), proxmox.WithAPIToken("root@pam!readonly", "ro-secret"))
	node, err := ro.Node(ctx, "pve")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.NewVirtualMachine(ctx, 140, minimalVM("x")...); !errors.Is(err, proxmox.ErrNotAuthorized) {
		t.Fatalf("privsep token create: %v", err)
	}
	last := e.s.Requests()[len(e.s.Requests())-1]
	if last.Status != 403 || last.Reason != "Permission check failed (/vms/140, VM.Allocate)" {
		t.Fatalf("403 record: %+v", last)
	}
}

func TestCompatFaultInjection(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	node, _ := e.root.Node(ctx, "pve")
	mustCreate(t, e.root, 140, minimalVM("f"))
	e.s.FailNext(FaultRule{Method: "GET", Path: "/nodes/*/qemu/*/status/current", Status: 500, Reason: "got timeout"})
	_, err := node.VirtualMachine(ctx, 140)
	wantErr(t, "injected 500", err, "500 got timeout")
	e.s.FailNext(FaultRule{Path: "/version", Reset: true})
	if _, err := e.root.Version(ctx); err == nil || !(strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF")) {
		t.Fatalf("reset: %v", err)
	}
	if _, err := e.root.Version(ctx); err != nil {
		t.Fatalf("after reset: %v", err)
	}
}
