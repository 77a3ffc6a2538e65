package pve

import (
	"testing"

	"github.com/luthermonson/go-proxmox"
)

// TestCreateTaskFailureLeavesNothing: a qmcreate that fails, also through an injected task
// fault, leaves no config, no lock and no volume. Source: qemu-server src/PVE/API2/Qemu.pm,
// create_vm: on an error in $createfn the allocated volumes are freed (vdisk_free over
// $vollist) and the qmcreate worker unlinks the config file (PVE::QemuConfig->config_file)
// before it dies; create_and_lock_config's "lock: create" config goes with it.
func TestCreateTaskFailureLeavesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	e.s.FailTask(TaskFault{Type: "qmcreate", ExitStatus: "unable to create VM 140 - got timeout"})
	node, _ := e.root.Node(ctx, "pve")
	task, err := node.NewVirtualMachine(ctx, 140, minimalVM("failed", proxmox.VirtualMachineOption{Name: "ide2", Value: "local-lvm:cloudinit"})...)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, task); ex != "unable to create VM 140 - got timeout" {
		t.Fatalf("exit %q", ex)
	}
	_, err = node.VirtualMachine(ctx, 140)
	wantErr(t, "config after a failed create", err, "500 Configuration file 'nodes/pve/qemu-server/140.conf' does not exist")
	st, _ := node.Storage(ctx, "local-lvm")
	if content, err := st.GetContent(ctx); err != nil || len(content) != 0 {
		t.Fatalf("volumes left: %+v %v", content, err)
	}
	// The id is free again: the same create succeeds.
	task, err = node.NewVirtualMachine(ctx, 140, minimalVM("again")...)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, task); ex != "OK" {
		t.Fatalf("re-create: %q", ex)
	}
}

// TestConfigDigestCompareAndSwap: two writers holding the same digest; the first PUT wins, the
// second is refused with update_vm_api's message (qemu-server src/PVE/API2/Qemu.pm,
// $load_and_check_config: "checksum mismatch (file change by other user?)").
func TestConfigDigestCompareAndSwap(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	vm := mustCreate(t, e.root, 140, minimalVM("cas"))
	digest := vm.VirtualMachineConfig.Digest
	if digest == "" {
		t.Fatal("no digest in the config")
	}
	path := "/nodes/pve/qemu/140/config"
	if err := e.root.Put(ctx, path, map[string]any{"description": "first", "digest": digest}, nil); err != nil {
		t.Fatalf("first writer: %v", err)
	}
	err := e.root.Put(ctx, path, map[string]any{"description": "second", "digest": digest}, nil)
	wantErr(t, "second writer", err, "500 checksum mismatch (file change by other user?)")
	var upid string
	err = e.root.Post(ctx, path, map[string]any{"description": "third", "digest": digest}, &upid)
	wantErr(t, "async writer", err, "500 checksum mismatch (file change by other user?)")
}

// TestConcurrentCreatesOfOneID: of many creates of one vmid at once exactly one is accepted;
// the others fail at once with "unable to create VM 140 - VM 140 already exists on node 'pve'".
// Source: qemu-server src/PVE/API2/Qemu.pm create_vm calls
// PVE::QemuConfig->create_and_lock_config before forking; pve-guest-common
// src/PVE/AbstractConfig.pm create_and_lock_config runs PVE::Cluster::check_vmid_unused and
// writes the "lock: create" config inside lock_config_full, so the check and the write are one
// step.
func TestConcurrentCreatesOfOneID(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	node, _ := e.root.Node(ctx, "pve")
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := node.NewVirtualMachine(ctx, 140, minimalVM("race")...)
			errs <- err
		}()
	}
	ok := 0
	for i := 0; i < n; i++ {
		err := <-errs
		if err == nil {
			ok++
			continue
		}
		wantErr(t, "losing create", err, "500 unable to create VM 140 - VM 140 already exists on node 'pve'")
	}
	if ok != 1 {
		t.Fatalf("%d creates accepted, want 1", ok)
	}
}
