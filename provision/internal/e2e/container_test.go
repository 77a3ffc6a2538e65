package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/fakes/container"
	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/fakes/sim/simtest"
	"github.com/aimachine/aimachine/fakes/simclient"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/pve"
)

// One pvesim container per test binary, reset through its control API between cases.
var (
	ctrOnce sync.Once
	ctrSim  *container.Sim
	ctrErr  error
	ctrSkip string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if ctrSim != nil {
		if err := ctrSim.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the simulator container:", err)
		}
	}
	os.Exit(code)
}

// containerSim returns the shared simulator container, reset to its start. Without Docker the
// test is skipped, except under CI=true where that is a failure.
func containerSim(t *testing.T) *container.Sim {
	t.Helper()
	ctrOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		if ctrSkip, ctrErr = noDocker(container.DockerAvailable(ctx), os.Getenv("CI")); ctrSkip != "" || ctrErr != nil {
			return
		}
		ctrSim, ctrErr = container.Start(ctx, container.Options{TimeScale: 0, AuthDelay: 0})
	})
	if ctrSkip != "" {
		t.Skip(ctrSkip)
	}
	if ctrErr != nil {
		t.Fatalf("start the simulator container: %v", ctrErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ctrSim.Control().Reset(ctx); err != nil {
		t.Fatalf("reset the simulator container: %v", err)
	}
	return ctrSim
}

// noDocker decides what a missing Docker engine means: a skip reason locally, an error under
// CI=true (CI must run the container target).
func noDocker(dockerErr error, ci string) (skip string, err error) {
	switch {
	case dockerErr == nil:
		return "", nil
	case ci == "true":
		return "", fmt.Errorf("CI=true needs Docker for the container target: %w", dockerErr)
	default:
		return "container target skipped: " + dockerErr.Error(), nil
	}
}

func TestNoDockerSkipsLocallyAndFailsUnderCI(t *testing.T) {
	down := errors.New("docker is not available: dial unix /var/run/docker.sock: connect: no such file")
	if skip, err := noDocker(down, ""); skip == "" || err != nil {
		t.Fatalf("locally: skip=%q err=%v, want a skip", skip, err)
	}
	if skip, err := noDocker(down, "true"); skip != "" || err == nil || !strings.Contains(err.Error(), "CI=true") || !errors.Is(err, down) {
		t.Fatalf("under CI=true: skip=%q err=%v, want a failure naming CI", skip, err)
	}
	if skip, err := noDocker(nil, "true"); skip != "" || err != nil {
		t.Fatalf("with Docker: skip=%q err=%v", skip, err)
	}
}

// ctrCase is one case against the container: the public provision API connected through the
// endpoint's env (as the CLI would), go-proxmox as root@pam to set up and read back, and the
// control API.
type ctrCase struct {
	t   *testing.T
	s   *container.Sim
	e   sim.Endpoint
	c   *provision.Client
	gp  *proxmox.Client
	cat *catalog.Catalog
	ctx context.Context
	ssh provision.SSHOptions // one known_hosts per case: a re-run finds the key it pinned
}

func newCtrCase(t *testing.T, tokenOnly bool) *ctrCase {
	t.Helper()
	s := containerSim(t)
	e := s.Info()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	env := e.Env()
	if tokenOnly {
		delete(env, provision.EnvUsername)
		delete(env, provision.EnvPassword)
	}
	o, err := provision.ConnOptionsFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !o.Simulator || (tokenOnly && (o.APIToken == "" || o.Username != "")) {
		t.Fatalf("connection options from the container's env: simulator=%v token=%v user=%q", o.Simulator, o.APIToken != "", o.Username)
	}
	c, err := provision.Connect(ctx, o)
	if err != nil {
		t.Fatalf("connect to the container: %v", err)
	}
	gp, err := simtest.Client(e, simtest.RootTicket)
	if err != nil {
		t.Fatal(err)
	}
	return &ctrCase{t: t, s: s, e: e, c: c, gp: gp, cat: testCatalog(t, e), ctx: ctx, ssh: sshOptions(t, e)}
}

func (k *ctrCase) opts() provision.DeployOptions {
	return provision.DeployOptions{InfraOnly: true, SSH: k.ssh, AgentTimeout: 20 * time.Second, CloudInitTimeout: 20 * time.Second}
}

func (k *ctrCase) vm() *catalog.VM {
	vm, err := k.cat.VM("vm-llm-aimachine")
	if err != nil {
		k.t.Fatal(err)
	}
	return vm
}

func (k *ctrCase) stats() simclient.APIStats {
	k.t.Helper()
	st, err := k.s.Control().Stats(k.ctx)
	if err != nil {
		k.t.Fatalf("simulator stats: %v", err)
	}
	return st.API
}

// mutating counts the mutating API calls other than the run lease's own writes (the only
// synchronous config PUTs aimachine sends; provision/internal/lease).
func (k *ctrCase) mutating() int {
	st := k.stats()
	return st.Mutating - st.ByRoute["PUT /nodes/{node}/qemu/{vmid}/config"]
}

// mutatingCalls lists the mutating requests since the reset, for failure messages.
func (k *ctrCase) mutatingCalls() []string {
	rs, err := k.s.Control().Requests(k.ctx)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, r := range rs {
		if r.Class == "mutating" {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

// vmids lists the cluster's VMs through go-proxmox (GET /cluster/resources?type=vm).
func (k *ctrCase) vmids() []int {
	k.t.Helper()
	cl, err := k.gp.Cluster(k.ctx)
	if err != nil {
		k.t.Fatalf("go-proxmox cluster: %v", err)
	}
	rs, err := cl.Resources(k.ctx, "vm")
	if err != nil {
		k.t.Fatalf("go-proxmox cluster resources: %v", err)
	}
	var ids []int
	for _, r := range rs {
		ids = append(ids, int(r.VMID))
	}
	slices.Sort(ids)
	return ids
}

func (k *ctrCase) has(vmid int) bool { return slices.Contains(k.vmids(), vmid) }

// createVM creates (and optionally starts) a VM that aimachine does not manage, through
// go-proxmox as root@pam: no aimachine tag, no run marker.
func (k *ctrCase) createVM(vmid int, start bool, opts ...proxmox.VirtualMachineOption) {
	k.t.Helper()
	node, err := k.gp.Node(k.ctx, "pve")
	if err != nil {
		k.t.Fatal(err)
	}
	task, err := node.NewVirtualMachine(k.ctx, vmid, opts...)
	if err != nil {
		k.t.Fatalf("go-proxmox create VM %d: %v", vmid, err)
	}
	waitTask(k.t, k.ctx, task)
	if !start {
		return
	}
	v, err := node.VirtualMachine(k.ctx, vmid)
	if err != nil {
		k.t.Fatal(err)
	}
	task, err = v.Start(k.ctx)
	if err != nil {
		k.t.Fatalf("go-proxmox start VM %d: %v", vmid, err)
	}
	waitTask(k.t, k.ctx, task)
}

func waitTask(t *testing.T, ctx context.Context, task *proxmox.Task) {
	t.Helper()
	if err := task.Wait(ctx, 50*time.Millisecond, time.Minute); err != nil {
		t.Fatalf("task %s: %v", task.UPID, err)
	}
	if !task.IsSuccessful {
		t.Fatalf("task %s ended %q", task.UPID, task.ExitStatus)
	}
}

// TestContainerDeployLifecycle: deploy creates VM 140 with every catalog setting (read back
// with go-proxmox), a second deploy and a plan make no mutating call, destroy removes it.
func TestContainerDeployLifecycle(t *testing.T) {
	k := newCtrCase(t, false)

	p, err := k.c.Plan(k.ctx, k.cat, "vm-llm-aimachine")
	if err != nil {
		t.Fatalf("plan before deploy: %v", err)
	}
	if p.Exists || p.Changes() == 0 || p.Actions[0].Kind != provision.ActionCreate {
		t.Fatalf("plan before deploy:\n%s", p)
	}
	if m := k.mutating(); m != 0 {
		t.Fatalf("plan before deploy made %d mutating calls: %v", m, k.mutatingCalls())
	}

	res, err := k.c.Deploy(k.ctx, k.cat, "vm-llm-aimachine", k.opts())
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if !res.Created || res.VMID != 140 || res.Node != "pve" || res.IP != "192.168.0.140" || res.Summary.Changed == 0 {
		t.Fatalf("first deploy result %+v", res)
	}

	node, err := k.gp.Node(k.ctx, "pve")
	if err != nil {
		t.Fatal(err)
	}
	vm, err := node.VirtualMachine(k.ctx, 140)
	if err != nil {
		t.Fatalf("go-proxmox reads VM 140: %v", err)
	}
	if !vm.IsRunning() {
		t.Errorf("VM 140 status %q, want running", vm.Status)
	}
	c := vm.VirtualMachineConfig
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for _, ch := range []struct{ what, got, want string }{
		{"name", c.Name, "vm-llm-aimachine"},
		{"machine", c.Machine, "q35"},
		{"bios", deref(c.Bios), "ovmf"},
		{"cpu", c.CPU, "host"},
		{"memory", fmt.Sprint(int(c.Memory)), "51200"},
		{"hostpci0", c.HostPCIs["hostpci0"], "0000:01:00,pcie=1,rombar=1"},
		{"ciuser", c.CIUser, "ubuntu"},
		{"ipconfig0", c.IPConfigs["ipconfig0"], "ip=192.168.0.140/24,gw=192.168.0.1"},
		{"nameserver", c.Nameserver, "192.168.0.1"},
		{"cicustom", c.CICustom, "vendor=local:snippets/aimachine-vendor.yaml"},
		{"agent", c.Agent, "enabled=1"},
		{"serial0", c.Serials["serial0"], "socket"},
		{"vga", c.VGA, "serial0"},
		{"scsihw", deref(c.SCSIHW), "virtio-scsi-single"},
	} {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.what, ch.got, ch.want)
		}
	}
	if c.Cores == nil || *c.Cores != 32 {
		t.Errorf("cores = %v, want 32", c.Cores)
	}
	// go-proxmox cannot tell balloon 0 from absent: read it raw through provision's API.
	if raw, err := k.c.API().VMConfig(k.ctx, "pve", 140); err != nil || raw["balloon"] != "0" {
		t.Errorf("balloon = %q (%v), want 0", raw["balloon"], err)
	}
	if !bool(c.OnBoot) {
		t.Error("onboot is not set")
	}
	if !strings.Contains(c.SCSIs["scsi0"], "size=500G") {
		t.Errorf("scsi0 = %q, want the cloud image resized to 500G", c.SCSIs["scsi0"])
	}
	if !strings.Contains(c.EFIDisk0, "efitype=4m") {
		t.Errorf("efidisk0 = %q", c.EFIDisk0)
	}
	if !strings.Contains(c.IDEs["ide2"], "cloudinit") {
		t.Errorf("ide2 = %q, want the cloud-init drive", c.IDEs["ide2"])
	}
	if n := c.Nets["net0"]; !strings.Contains(n, "virtio") || !strings.Contains(n, "bridge=vmbr0") {
		t.Errorf("net0 = %q", n)
	}
	if keys, err := url.QueryUnescape(c.SSHKeys); err != nil || !strings.Contains(keys, k.e.SSHPublicKey) {
		t.Errorf("sshkeys = %q (%v), want the simulator's tool key", c.SSHKeys, err)
	}
	tags := strings.FieldsFunc(c.Tags, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
	slices.Sort(tags)
	if strings.Join(tags, ";") != "aimachine;gpu;llm" {
		t.Errorf("tags = %q, want aimachine;gpu;llm", c.Tags)
	}
	if !strings.Contains(c.Description, "aimachine: managed; run="+res.RunID) {
		t.Errorf("description = %q, want the run marker", c.Description)
	}

	before := k.mutating()
	res, err = k.c.Deploy(k.ctx, k.cat, "vm-llm-aimachine", k.opts())
	if err != nil || res.Created || res.Summary.Changed != 0 {
		t.Fatalf("second deploy: %+v %v", res, err)
	}
	if d := k.mutating() - before; d != 0 {
		t.Fatalf("second deploy made %d mutating API calls: %v", d, k.mutatingCalls())
	}

	before = k.mutating()
	p, err = k.c.Plan(k.ctx, k.cat, "vm-llm-aimachine")
	if err != nil || !p.Exists || !p.Owned || p.Changes() != 0 {
		t.Fatalf("plan after deploy (%v):\n%s", err, p)
	}
	if d := k.mutating() - before; d != 0 {
		t.Fatalf("plan made %d mutating API calls: %v", d, k.mutatingCalls())
	}

	dr, err := k.c.Destroy(k.ctx, k.cat, "vm-llm-aimachine", provision.DestroyOptions{KnownHostsFile: k.ssh.KnownHostsFile})
	if err != nil || !dr.Deleted {
		t.Fatalf("destroy: %+v %v", dr, err)
	}
	if ids := k.vmids(); len(ids) != 0 {
		t.Fatalf("VMs left after destroy: %v", ids)
	}
}

// TestContainerFailures: each failure the rules name, against the container, with its error
// text and hint; nothing is left where the rules say rollback, and preflight refusals make
// no mutating call.
func TestContainerFailures(t *testing.T) {
	gpuHolder := func(k *ctrCase) {
		k.createVM(141, true,
			proxmox.VirtualMachineOption{Name: "name", Value: "other-gpu-vm"},
			proxmox.VirtualMachineOption{Name: "machine", Value: "q35"},
			proxmox.VirtualMachineOption{Name: "memory", Value: 4096},
			proxmox.VirtualMachineOption{Name: "cores", Value: 2},
			proxmox.VirtualMachineOption{Name: "scsi0", Value: "local-lvm:32"},
			proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1"},
		)
	}
	tests := []struct {
		name      string
		tokenOnly bool
		setup     func(k *ctrCase)
		skipPre   bool
		want      error
		inErr     string
		inHint    string
		rollback  bool  // VM 140 was created by this run, then deleted
		left      []int // the VMs the cluster must hold afterwards
	}{
		{name: "GPU busy (running VM 141, preflight)", setup: gpuHolder,
			want: pve.ErrPCIBusy, inErr: "already in use by VMID '141'", inHint: "stop VM 141", left: []int{141}},
		{name: "GPU busy (PVE's start task)", skipPre: true, setup: func(k *ctrCase) {
			if err := k.s.Control().MarkPCIBusy(k.ctx, "pve", "0000:01:00.0", 141); err != nil {
				k.t.Fatal(err)
			}
		}, want: pve.ErrPCIBusy, inErr: "already in use by VMID '141'", inHint: "stop VM 141", rollback: true},
		{name: "GPU missing (preflight)", setup: func(k *ctrCase) {
			k.vm().GPU.PCIAddress = "0000:99:00"
		}, want: pve.ErrPCIMissing, inErr: "0000:99:00", inHint: "lspci"},
		{name: "GPU missing (PVE's start task)", skipPre: true, setup: func(k *ctrCase) {
			k.vm().GPU.PCIAddress = "0000:99:00"
		}, want: pve.ErrPCIMissing, inErr: "no PCI device found for '0000:99:00'", inHint: "lspci", rollback: true},
		{name: "IOMMU off (preflight)", setup: func(k *ctrCase) {
			if err := k.s.Control().SetIOMMU(k.ctx, "pve", false); err != nil {
				k.t.Fatal(err)
			}
		}, want: pve.ErrNoIOMMU, inErr: "IOMMU", inHint: "intel_iommu=on"},
		{name: "IOMMU off (PVE's start task)", skipPre: true, setup: func(k *ctrCase) {
			if err := k.s.Control().SetIOMMU(k.ctx, "pve", false); err != nil {
				k.t.Fatal(err)
			}
		}, want: pve.ErrNoIOMMU, inErr: "IOMMU not present", inHint: "amd_iommu=on", rollback: true},
		{name: "raw hostpci with an API token", tokenOnly: true,
			want: pve.ErrRootOnlyHostPCI, inErr: "root@pam", inHint: "PCI mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newCtrCase(t, tt.tokenOnly)
			if tt.setup != nil {
				tt.setup(k)
			}
			before := k.mutating()
			o := k.opts()
			o.SkipGPUPreflight = tt.skipPre
			res, err := k.c.Deploy(k.ctx, k.cat, "vm-llm-aimachine", o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var te *provision.TaskError
			if !errors.As(err, &te) {
				t.Fatalf("err %T is not a *provision.TaskError", err)
			}
			if !strings.Contains(err.Error(), tt.inErr) || !strings.Contains(te.Hint, tt.inHint) {
				t.Fatalf("err = %q, hint %q; want %q in the error and %q in the hint", err, te.Hint, tt.inErr, tt.inHint)
			}
			if tt.rollback {
				if res == nil || !res.Created || !res.RolledBack || !strings.Contains(err.Error(), "rolled back") {
					t.Fatalf("want a reported rollback: %+v err=%v", res, err)
				}
				if !strings.Contains(te.Log, "TASK ERROR") {
					t.Errorf("want the start task's log tail, got %q", te.Log)
				}
			} else if d := k.mutating() - before; d != 0 {
				t.Fatalf("a refusal before any change made %d mutating calls: %v", d, k.mutatingCalls())
			}
			if ids := k.vmids(); !slices.Equal(ids, tt.left) {
				t.Fatalf("the cluster holds VMs %v, want %v", ids, tt.left)
			}
		})
	}
}

// TestContainerVMThatIsNotOursIsNeverTouched: VM 140 created by someone else (go-proxmox, no
// aimachine tag or marker) is refused by deploy and destroy without a single mutating call.
func TestContainerVMThatIsNotOursIsNeverTouched(t *testing.T) {
	k := newCtrCase(t, false)
	k.createVM(140, false,
		proxmox.VirtualMachineOption{Name: "name", Value: "someone-elses"},
		proxmox.VirtualMachineOption{Name: "memory", Value: 4096},
		proxmox.VirtualMachineOption{Name: "cores", Value: 2},
		proxmox.VirtualMachineOption{Name: "ostype", Value: "l26"},
		proxmox.VirtualMachineOption{Name: "scsi0", Value: "local-lvm:32"},
	)
	before := k.mutating()
	_, err := k.c.Deploy(k.ctx, k.cat, "vm-llm-aimachine", k.opts())
	var te *provision.TaskError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "not managed by aimachine") || te.Hint == "" {
		t.Fatalf("deploy err = %v, want a refusal with a hint", err)
	}
	_, err = k.c.Destroy(k.ctx, k.cat, "vm-llm-aimachine", provision.DestroyOptions{KnownHostsFile: k.ssh.KnownHostsFile})
	if err == nil || !strings.Contains(err.Error(), "not managed by aimachine") {
		t.Fatalf("destroy err = %v, want a refusal", err)
	}
	if d := k.mutating() - before; d != 0 {
		t.Fatalf("%d mutating calls on a foreign VM: %v", d, k.mutatingCalls())
	}
	cfg, err := k.c.API().VMConfig(k.ctx, "pve", 140)
	if err != nil || cfg["name"] != "someone-elses" {
		t.Fatalf("the foreign VM changed: %v %v", cfg, err)
	}
}

// TestContainerThreeTransientFaultsInOneRun: a 500 "got timeout", a 596 and a connection reset
// in one deploy are retried; the VM is created once and kept.
func TestContainerThreeTransientFaultsInOneRun(t *testing.T) {
	k := newCtrCase(t, false)
	faults := []simclient.APIFault{
		{Method: "POST", Path: "/nodes/*/qemu", Status: 500, Reason: "got timeout"},
		{Method: "PUT", Path: "/nodes/*/qemu/*/resize", Status: 596, Reason: "Connection timed out"},
		{Method: "POST", Path: "/nodes/*/qemu/*/status/start", Reset: true},
	}
	for _, f := range faults {
		if err := k.s.Control().InjectAPIFault(k.ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	res, err := k.c.Deploy(k.ctx, k.cat, "vm-llm-aimachine", k.opts())
	if err != nil {
		t.Fatalf("deploy through 3 transient faults: %v", err)
	}
	if !res.Created || res.RolledBack {
		t.Fatalf("result %+v", res)
	}
	st := k.stats()
	if st.Faults != len(faults) {
		t.Fatalf("%d faults were served, want %d", st.Faults, len(faults))
	}
	// One faulted create, then one after checking that the VM is absent.
	if n := st.ByPath["POST /nodes/pve/qemu"]; n != 2 {
		t.Errorf("create posted %d times, want 2", n)
	}
	if ids := k.vmids(); !slices.Equal(ids, []int{140}) {
		t.Fatalf("the cluster holds VMs %v, want [140]", ids)
	}
}
