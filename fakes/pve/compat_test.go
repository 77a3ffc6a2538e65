package pve

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
	"golang.org/x/crypto/ssh"
)

func testKey(t *testing.T, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment
}

func vmOptions(t *testing.T, hostpci string, keys ...string) []proxmox.VirtualMachineOption {
	return []proxmox.VirtualMachineOption{
		{Name: "name", Value: "vm-llm-aimachine"},
		{Name: "machine", Value: "q35"},
		{Name: "cores", Value: 32},
		{Name: "sockets", Value: 1},
		{Name: "cpu", Value: "host"},
		{Name: "memory", Value: "51200"},
		{Name: "balloon", Value: 0},
		{Name: "scsihw", Value: "virtio-scsi-single"},
		{Name: "scsi0", Value: "local-lvm:0,import-from=" + DefaultCloudImage + ",iothread=1,discard=on"},
		{Name: "ide2", Value: "local-lvm:cloudinit"},
		{Name: "ciuser", Value: "ubuntu"},
		{Name: "sshkeys", Value: proxmox.EncodeSSHKeys(keys...)},
		{Name: "ipconfig0", Value: "ip=192.168.0.140/24,gw=192.168.0.1"},
		{Name: "cicustom", Value: "vendor=" + DefaultVendorSnippet},
		{Name: "agent", Value: "enabled=1"},
		{Name: "onboot", Value: 1},
		{Name: "net0", Value: "virtio,bridge=vmbr0,firewall=1"},
		{Name: "hostpci0", Value: hostpci},
	}
}

func TestCompatLifecycle(t *testing.T) {
	t.Run("root@pam ticket, raw hostpci", func(t *testing.T) { lifecycle(t, false) })
	t.Run("API token, PCI mapping", func(t *testing.T) { lifecycle(t, true) })
}

// lifecycle drives go-proxmox through a whole VM life: create (import + cloud-init + GPU), resize,
// start, agent, stop, delete.
func lifecycle(t *testing.T, asToken bool) {
	guests := NewStaticGuestFactory()
	e := newEnv(t, WithGuestFactory(guests))
	ctx := ctxT(t)
	c, hostpci, user := e.root, "0000:01:00,pcie=1,x-vga=1", "root@pam"
	if asToken {
		c, hostpci, user = e.token, "mapping=gpu0,pcie=1,x-vga=1", "root@pam!aimachine"
		cl, err := c.Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.NewPCIMapping(ctx, &proxmox.ClusterPCIMappingOptions{ID: "gpu0", Description: "RTX 5060 Ti",
			Map: []string{"node=pve,path=0000:01:00,id=10de:2d04,iommugroup=12"}}); err != nil {
			t.Fatalf("mapping: %v", err)
		}
		m, err := cl.PCIMapping(ctx, "gpu0")
		if err != nil || len(m.Map) != 1 || len(m.Digest) != 40 {
			t.Fatalf("mapping read: %+v %v", m, err)
		}
	}

	v, err := c.Version(ctx)
	if err != nil || v.Version != "8.4.1" || v.Release != "8.4" {
		t.Fatalf("version: %+v %v", v, err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Node != "pve" {
		t.Fatalf("nodes: %+v %v", nodes, err)
	}
	cl, err := c.Cluster(ctx)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	if id, err := cl.NextID(ctx); err != nil || id != 100 {
		t.Fatalf("nextid: %d %v", id, err)
	}
	if free, err := cl.CheckID(ctx, 140); err != nil || !free {
		t.Fatalf("checkid: %v %v", free, err)
	}
	node, err := c.Node(ctx, "pve")
	if err != nil || node.CPUInfo.CPUs != 64 {
		t.Fatalf("node: %+v %v", node, err)
	}
	devs, err := node.ListPCIDevices(ctx, nil)
	if err != nil {
		t.Fatalf("pci: %v", err)
	}
	var gpu *proxmox.PCIDevice
	for _, d := range devs {
		if d.ID == DefaultGPUID {
			gpu = d
		}
	}
	if gpu == nil || gpu.DeviceName != "GB206 [GeForce RTX 5060 Ti]" || gpu.IOMMUGroup != 12 {
		t.Fatalf("gpu: %+v", gpu)
	}

	isoStore, err := node.StorageISO(ctx)
	if err != nil || isoStore.Name != "local" {
		t.Fatalf("iso storage: %+v %v", isoStore, err)
	}
	iso, err := isoStore.ISO(ctx, "ubuntu-24.04.3-live-server-amd64.iso")
	if err != nil || iso.Size == 0 || iso.VolID != DefaultISO {
		t.Fatalf("iso: %+v %v", iso, err)
	}
	if _, err := isoStore.ISO(ctx, "missing.iso"); err == nil || err.Error() != "500 file_size_info on 'local:iso/missing.iso' failed" {
		t.Fatalf("missing iso: %v", err)
	}
	images, err := node.StorageImages(ctx)
	if err != nil || images.Name != "local-lvm" {
		t.Fatalf("images storage: %+v %v", images, err)
	}

	k1, k2 := testKey(t, "alice@laptop"), testKey(t, "bob@ci")
	task, err := node.NewVirtualMachine(ctx, 140, vmOptions(t, hostpci, k1, k2)...)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if task.Type != "qmcreate" || task.ID != "140" || task.User != user {
		t.Fatalf("create task: %+v", task)
	}
	if st := waitTask(t, ctx, task); st != "OK" {
		t.Fatalf("create exit %q", st)
	}
	if free, err := cl.CheckID(ctx, 140); err != nil || free {
		t.Fatalf("checkid after create: %v %v", free, err)
	}

	vm, err := node.VirtualMachine(ctx, 140)
	if err != nil {
		t.Fatalf("vm: %v", err)
	}
	cfg := vm.VirtualMachineConfig
	if int(cfg.Memory) != 51200 || cfg.Agent != "enabled=1" || !bool(cfg.OnBoot) || *cfg.Cores != 32 {
		t.Fatalf("config typing: memory=%v agent=%q onboot=%v cores=%v", cfg.Memory, cfg.Agent, cfg.OnBoot, *cfg.Cores)
	}
	if cfg.SCSIs["scsi0"] != "local-lvm:vm-140-disk-0,discard=on,iothread=1,size=3584M" {
		t.Fatalf("scsi0 %q", cfg.SCSIs["scsi0"])
	}
	if cfg.IDEs["ide2"] != "local-lvm:vm-140-cloudinit,media=cdrom" {
		t.Fatalf("ide2 %q", cfg.IDEs["ide2"])
	}
	if cfg.HostPCIs["hostpci0"] != hostpci {
		t.Fatalf("hostpci0 %q", cfg.HostPCIs["hostpci0"])
	}
	if !strings.HasPrefix(cfg.Nets["net0"], "virtio=BC:24:11:") || !strings.HasSuffix(cfg.Nets["net0"], ",bridge=vmbr0,firewall=1") {
		t.Fatalf("net0 %q", cfg.Nets["net0"])
	}
	if cfg.SSHKeys != proxmox.EncodeSSHKeys(k1, k2) {
		t.Fatalf("sshkeys not stored encoded: %q", cfg.SSHKeys)
	}
	if len(cfg.Digest) != 40 || cfg.Meta == "" || !strings.HasPrefix(cfg.SMBios1, "uuid=") || cfg.VMGenID == nil {
		t.Fatalf("digest/meta/smbios1/vmgenid: %q %q %q %v", cfg.Digest, cfg.Meta, cfg.SMBios1, cfg.VMGenID != nil)
	}
	if vm.Template || int(vm.VMID) != 140 || vm.Status != "stopped" {
		t.Fatalf("status: template=%v vmid=%v status=%q", vm.Template, vm.VMID, vm.Status)
	}

	rt, err := vm.ResizeDisk(ctx, "scsi0", "500G")
	if err != nil {
		t.Fatalf("resize: %v", err)
	}
	if rt.Type != "resize" {
		t.Fatalf("resize task type %q", rt.Type)
	}
	if st := waitTask(t, ctx, rt); st != "OK" {
		t.Fatalf("resize exit %q", st)
	}
	if err := vm.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if vm.VirtualMachineConfig.SCSIs["scsi0"] != "local-lvm:vm-140-disk-0,discard=on,iothread=1,size=500G" || vm.MaxDisk != 500<<30 {
		t.Fatalf("after resize: %q maxdisk=%d", vm.VirtualMachineConfig.SCSIs["scsi0"], vm.MaxDisk)
	}

	st, err := vm.Start(ctx)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if ex := waitTask(t, ctx, st); ex != "OK" {
		t.Fatalf("start exit %q", ex)
	}
	if err := vm.Ping(ctx); err != nil || !vm.IsRunning() {
		t.Fatalf("running: %v %q %q", err, vm.Status, vm.QMPStatus)
	}
	all, err := cl.Resources(ctx)
	if err != nil || len(all) < 4 {
		t.Fatalf("resources: %d %v", len(all), err)
	}
	vms, err := cl.Resources(ctx, "vm")
	if err != nil || len(vms) != 1 || vms[0].VMID != 140 || vms[0].Status != "running" || vms[0].Template != 0 {
		t.Fatalf("vm resources: %+v %v", vms, err)
	}
	list, err := node.VirtualMachines(ctx)
	if err != nil || len(list) != 1 || list[0].Template || list[0].Name != "vm-llm-aimachine" {
		t.Fatalf("qemu list: %+v %v", list, err)
	}
	if err := vm.WaitForAgent(ctx, 5); err != nil {
		t.Fatalf("agent: %v", err)
	}
	ifs, err := vm.AgentGetNetworkIFaces(ctx)
	if err != nil || len(ifs) != 1 || ifs[0].IPAddresses[0].IPAddress != "192.168.0.140" {
		t.Fatalf("ifaces: %+v %v", ifs, err)
	}
	pid, err := vm.AgentExec(ctx, []string{"cat", "/etc/ssh/ssh_host_ed25519_key.pub"}, "")
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	es, err := vm.AgentExecStatus(ctx, pid)
	if err != nil || es.Exited != 1 || es.ExitCode != 0 || es.OutData != guests.Guest(140).HostKey()+"\n" {
		t.Fatalf("exec-status: %+v %v", es, err)
	}
	boot := guests.Guest(140).BootInfo()
	if len(boot.GPUs) != 2 || boot.GPUs[0].ID != DefaultGPUID || boot.GPUs[1].ID != DefaultGPUAudioID ||
		boot.CloudInit.User != "ubuntu" || len(boot.CloudInit.SSHKeys) != 2 || boot.CloudInit.SSHKeys[1] != k2 ||
		boot.CloudInit.VendorData != DefaultVendorData || boot.CloudInit.Hostname != "vm-llm-aimachine" {
		t.Fatalf("boot info: %+v", boot)
	}

	// destroying a running VM fails on the call
	if _, err := vm.Delete(ctx, &proxmox.VirtualMachineDeleteOptions{Purge: true, DestroyUnreferencedDisks: true}); err == nil ||
		err.Error() != "500 VM 140 is running - destroy failed" {
		t.Fatalf("delete running: %v", err)
	}

	rb, err := vm.Reboot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, rb); ex != "OK" || rb.Type != "qmreboot" {
		t.Fatalf("reboot %s exit %q", rb.Type, ex)
	}
	if err := vm.WaitForAgent(ctx, 5); err != nil {
		t.Fatalf("agent after reboot: %v", err)
	}
	sd, err := vm.Shutdown(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, sd); ex != "OK" {
		t.Fatalf("shutdown exit %q", ex)
	}
	if ex := startExit(t, vm); ex != "OK" {
		t.Fatalf("second start %q", ex)
	}
	stop, err := vm.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, stop); ex != "OK" {
		t.Fatalf("stop exit %q", ex)
	}
	if _, err := vm.AgentOsInfo(ctx); err == nil || err.Error() != "500 VM 140 is not running" {
		t.Fatalf("agent on stopped VM: %v", err)
	}
	del, err := vm.Delete(ctx, &proxmox.VirtualMachineDeleteOptions{Purge: true, DestroyUnreferencedDisks: true})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if ex := waitTask(t, ctx, del); ex != "OK" {
		t.Fatalf("delete exit %q", ex)
	}
	if _, err := node.VirtualMachine(ctx, 140); err == nil ||
		err.Error() != "500 Configuration file 'nodes/pve/qemu-server/140.conf' does not exist" {
		t.Fatalf("after delete: %v", err)
	}
	_ = errors.New
	_ = time.Second
}
