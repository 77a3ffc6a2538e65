package provision

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luthermonson/go-proxmox"

	"github.com/aimachine/aimachine/catalog"
	fakepve "github.com/aimachine/aimachine/fakes/pve"
	"github.com/aimachine/aimachine/provision/internal/retry"
	"github.com/aimachine/aimachine/provision/pve"
)

const vm140 = "vm-llm-aimachine"

// env is one fake Proxmox host and a client connected to it.
type env struct {
	t      *testing.T
	srv    *fakepve.Server
	ts     *httptest.Server
	guests *testGuests
	cat    *catalog.Catalog
	kh     string
	c      *Client
	logs   *syncBuffer
	mu     sync.Mutex
	events []Event
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type envOption func(*envConfig)

type envConfig struct {
	topo  fakepve.Topology
	token bool
	// timeScale is the fake's time scale (0: tasks end at once).
	timeScale float64
}

func withToken() envOption { return func(c *envConfig) { c.token = true } }
func withTopology(f func(*fakepve.Topology)) envOption {
	return func(c *envConfig) { f(&c.topo) }
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	cfg := envConfig{topo: fakepve.DefaultTopology()}
	for _, o := range opts {
		o(&cfg)
	}
	guests := newTestGuests()
	srv := fakepve.New(fakepve.WithTopology(cfg.topo), fakepve.WithAuthDelay(0), fakepve.WithTimeScale(cfg.timeScale), fakepve.WithGuestFactory(guests))
	ts := srv.StartTLS()
	t.Cleanup(ts.Close)
	cat, err := catalog.LoadValid("testdata/catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, ts: ts, guests: guests, cat: cat, kh: filepath.Join(t.TempDir(), "known_hosts"), logs: &syncBuffer{}}
	o := e.connOptions(cfg.token)
	e.c, err = Connect(context.Background(), o)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return e
}

func (e *env) connOptions(token bool) ConnOptions {
	o := ConnOptions{
		Endpoint:    e.ts.URL + "/",
		Fingerprint: e.srv.Fingerprint(),
		Logger:      slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backoff:     retry.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond},
	}
	if token {
		o.APIToken = fakepve.DefaultTokenID + "=" + fakepve.DefaultTokenSecret
	} else {
		o.Username, o.Password = "root@pam", fakepve.DefaultRootPassword
	}
	return o
}

func (e *env) opts() DeployOptions {
	return DeployOptions{
		InfraOnly: true,
		Reporter: ReporterFunc(func(ev Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		}),
		SSH:          SSHOptions{KnownHostsFile: e.kh},
		AgentTimeout: 10 * time.Second, CloudInitTimeout: 10 * time.Second,
	}
}

func (e *env) deploy(vm string) (*DeployResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.c.Deploy(ctx, e.cat, vm, e.opts())
}

func (e *env) mustDeploy(vm string) *DeployResult {
	e.t.Helper()
	res, err := e.deploy(vm)
	if err != nil {
		e.t.Fatalf("deploy %s: %v", vm, err)
	}
	return res
}

// gp is go-proxmox on the fake, as root@pam, to check what the library did.
func (e *env) gp() *proxmox.Client {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.srv.CertPool()}}, Timeout: 10 * time.Second}
	return proxmox.NewClient(e.ts.URL+"/api2/json", proxmox.WithHTTPClient(hc),
		proxmox.WithCredentials(&proxmox.Credentials{Username: "root@pam", Password: fakepve.DefaultRootPassword}))
}

func (e *env) vmExists(vmid int) bool {
	e.t.Helper()
	_, err := e.c.api.VMConfig(context.Background(), "pve", vmid)
	if errors.Is(err, pve.ErrNotFound) {
		return false
	}
	if err != nil {
		e.t.Fatalf("read VM %d: %v", vmid, err)
	}
	return true
}

// mutating and stats read the fake's counters: it records a request before answering it.
// mutating counts the mutating API calls other than the run lease's own writes (leaseWrites).
func (e *env) mutating() int { return e.srv.Stats().Mutating - e.leaseWrites() }

// leaseWrites counts the run lease's config writes: PUT config with only a description (and
// its digest), taking or giving back the lease (provision/internal/lease).
func (e *env) leaseWrites() int {
	n := 0
	for _, r := range e.srv.Requests() {
		if isLeaseWrite(r) {
			n++
		}
	}
	return n
}

func isLeaseWrite(r fakepve.RequestRecord) bool {
	if r.Method != "PUT" || !strings.HasSuffix(r.Path, "/config") {
		return false
	}
	for k := range r.Params {
		if k != "description" && k != "digest" {
			return false
		}
	}
	return r.Params["digest"] != nil
}

func (e *env) stats() fakepve.Stats { return e.srv.Stats() }

func TestDeployCreatesVM140WithEveryCatalogSetting(t *testing.T) {
	e := newEnv(t)
	res := e.mustDeploy(vm140)
	if !res.Created || res.VMID != 140 || res.Node != "pve" || res.IP != "192.168.0.140" {
		t.Fatalf("result = %+v", res)
	}

	ctx := context.Background()
	node, err := e.gp().Node(ctx, "pve")
	if err != nil {
		t.Fatal(err)
	}
	vm, err := node.VirtualMachine(ctx, 140)
	if err != nil {
		t.Fatalf("go-proxmox reads VM 140: %v", err)
	}
	if !vm.IsRunning() {
		t.Errorf("VM 140 status %q, want running", vm.Status)
	}
	c := vm.VirtualMachineConfig
	checks := []struct{ what, got, want string }{
		{"name", c.Name, vm140},
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
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.what, ch.got, ch.want)
		}
	}
	if c.Cores == nil || *c.Cores != 32 {
		t.Errorf("cores = %v, want 32", c.Cores)
	}
	// go-proxmox cannot tell balloon 0 from absent: read it raw.
	if raw, err := e.c.api.VMConfig(ctx, "pve", 140); err != nil || raw["balloon"] != "0" {
		t.Errorf("balloon = %q (%v), want 0 (all RAM pinned for passthrough)", raw["balloon"], err)
	}
	if !bool(c.OnBoot) {
		t.Error("onboot is not set")
	}
	if !strings.Contains(c.SCSIs["scsi0"], "size=500G") {
		t.Errorf("scsi0 = %q, want the imported cloud image resized to 500G", c.SCSIs["scsi0"])
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
	if got := decodeKeys(c.SSHKeys); len(got) != 1 || !strings.Contains(got[0], "aimachine-testdata") {
		t.Errorf("sshkeys decode to %q", got)
	}
	if tags := splitTags(c.Tags); strings.Join(tags, ";") != "aimachine;gpu;llm" {
		t.Errorf("tags = %q, want aimachine;gpu;llm", c.Tags)
	}
	if !strings.Contains(c.Description, "aimachine: managed; run="+res.RunID) || !strings.Contains(c.Description, "GPU-passthrough LLM server") {
		t.Errorf("description = %q, want the catalog text and the run marker", c.Description)
	}
	kh, err := os.ReadFile(e.kh)
	if err != nil || !strings.HasPrefix(string(kh), "192.168.0.140 ssh-ed25519 ") {
		t.Errorf("known_hosts = %q (%v), want the guest's key pinned under 192.168.0.140", kh, err)
	}
	if res.Summary.Changed == 0 || res.Summary.Failed != 0 {
		t.Errorf("summary = %+v", res.Summary)
	}
}

func TestSecondDeployMakesNoMutatingCall(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	before, leases := e.mutating(), e.leaseWrites()
	res := e.mustDeploy(vm140)
	if d := e.mutating() - before; d != 0 {
		t.Fatalf("second deploy made %d mutating API calls, want 0: %v", d, mutatingCalls(e.srv.Requests()))
	}
	if d := e.leaseWrites() - leases; d != 2 {
		t.Fatalf("second deploy made %d lease writes, want 2 (take, give back)", d)
	}
	if res.Created || res.Summary.Changed != 0 {
		t.Fatalf("second deploy: created=%v summary=%+v", res.Created, res.Summary)
	}
}

func mutatingCalls(rs []fakepve.RequestRecord) []string {
	var out []string
	for _, r := range rs {
		if r.Class == fakepve.ClassMutating && !isLeaseWrite(r) {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

func TestPlanMakesNoMutatingCall(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, err := e.c.Plan(ctx, e.cat, vm140)
	if err != nil {
		t.Fatal(err)
	}
	if p.Exists || p.Changes() != 2 || p.Actions[0].Kind != ActionCreate || p.Preflight != nil {
		t.Fatalf("plan before deploy:\n%s", p)
	}
	if m := e.mutating(); m != 0 {
		t.Fatalf("plan made %d mutating calls", m)
	}
	e.mustDeploy(vm140)
	before := e.mutating()
	p, err = e.c.Plan(ctx, e.cat, vm140)
	if err != nil {
		t.Fatal(err)
	}
	if p.Changes() != 0 || p.Actions[0].Kind != ActionNone {
		t.Fatalf("plan after deploy:\n%s", p)
	}
	if d := e.mutating() - before; d != 0 {
		t.Fatalf("plan made %d mutating calls", d)
	}
}

func TestDestroyRemovesOnlyOurVM(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	res, err := e.c.Destroy(context.Background(), e.cat, vm140, DestroyOptions{KnownHostsFile: e.kh})
	if err != nil || !res.Deleted {
		t.Fatalf("destroy: %+v %v", res, err)
	}
	if e.vmExists(140) {
		t.Fatal("VM 140 still exists")
	}
	if hasPinned(e.kh, "192.168.0.140:22") {
		t.Error("the pinned host key of the deleted VM is still in known_hosts")
	}
	res, err = e.c.Destroy(context.Background(), e.cat, vm140, DestroyOptions{KnownHostsFile: e.kh})
	if err != nil || res.Deleted {
		t.Fatalf("destroy of a missing VM: %+v %v", res, err)
	}
}

func foreignVM140(t *fakepve.Topology) {
	t.VMs = append(t.VMs, fakepve.VMSpec{Node: "pve", VMID: 140, Running: false, Config: map[string]string{
		"name": "someone-elses", "memory": "4096", "cores": "2", "ostype": "l26", "scsi0": "local-lvm:vm-140-disk-0,size=32G",
	}})
}

func TestVMThatIsNotOursIsNeverTouched(t *testing.T) {
	e := newEnv(t, withTopology(foreignVM140))
	_, err := e.deploy(vm140)
	var te *TaskError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "not managed by aimachine") || te.Hint == "" {
		t.Fatalf("err = %v, want a refusal with a hint", err)
	}
	_, err = e.c.Destroy(context.Background(), e.cat, vm140, DestroyOptions{KnownHostsFile: e.kh})
	if err == nil || !strings.Contains(err.Error(), "not managed by aimachine") {
		t.Fatalf("destroy err = %v, want a refusal", err)
	}
	if m := e.mutating(); m != 0 {
		t.Fatalf("%d mutating calls on a foreign VM: %v", m, mutatingCalls(e.srv.Requests()))
	}
	cfg, _ := e.c.api.VMConfig(context.Background(), "pve", 140)
	if cfg["name"] != "someone-elses" {
		t.Fatalf("foreign VM changed: %v", cfg)
	}
}

// gpuHolder adds VM 141, running with the GPU.
func gpuHolder(onboot bool) func(*fakepve.Topology) {
	return func(t *fakepve.Topology) {
		cfg := map[string]string{"name": "other-gpu-vm", "memory": "4096", "cores": "2", "machine": "q35",
			"hostpci0": "0000:01:00,pcie=1", "scsi0": "local-lvm:vm-141-disk-0,size=32G"}
		if onboot {
			cfg["onboot"] = "1"
		}
		t.VMs = append(t.VMs, fakepve.VMSpec{Node: "pve", VMID: 141, Running: !onboot, Config: cfg})
	}
}

func TestGPUFailures(t *testing.T) {
	tests := []struct {
		name     string
		opts     []envOption
		setup    func(e *env)
		skipPre  bool
		want     error
		inErr    string
		inHint   string
		rollback bool // the VM was created, then deleted
	}{
		{name: "busy (running VM 141, preflight)", opts: []envOption{withTopology(gpuHolder(false))},
			want: pve.ErrPCIBusy, inErr: "already in use by VMID '141'", inHint: "stop VM 141"},
		{name: "busy (VM 141 starts on boot, preflight)", opts: []envOption{withTopology(gpuHolder(true))},
			want: pve.ErrPCIBusy, inErr: "starts on boot", inHint: "stop VM 141"},
		{name: "busy (PVE's start task)", skipPre: true, setup: func(e *env) {
			if err := e.srv.MarkPCIBusy("pve", fakepve.DefaultGPUID, 141); err != nil {
				e.t.Fatal(err)
			}
		}, want: pve.ErrPCIBusy, inErr: "already in use by VMID '141'", inHint: "stop VM 141", rollback: true},
		{name: "missing (preflight)", setup: func(e *env) { e.vm().GPU.PCIAddress = "0000:99:00" },
			want: pve.ErrPCIMissing, inErr: "0000:99:00", inHint: "lspci"},
		{name: "missing (PVE's start task)", skipPre: true, setup: func(e *env) { e.vm().GPU.PCIAddress = "0000:99:00" },
			want: pve.ErrPCIMissing, inErr: "no PCI device found for '0000:99:00'", inHint: "lspci", rollback: true},
		{name: "IOMMU off (preflight)", setup: func(e *env) {
			if err := e.srv.SetIOMMU("pve", false); err != nil {
				e.t.Fatal(err)
			}
		}, want: pve.ErrNoIOMMU, inErr: "IOMMU", inHint: "intel_iommu=on"},
		{name: "IOMMU off (PVE's start task)", skipPre: true, setup: func(e *env) {
			if err := e.srv.SetIOMMU("pve", false); err != nil {
				e.t.Fatal(err)
			}
		}, want: pve.ErrNoIOMMU, inErr: "IOMMU not present", inHint: "amd_iommu=on", rollback: true},
		{name: "raw hostpci with an API token", opts: []envOption{withToken()},
			want: pve.ErrRootOnlyHostPCI, inErr: "root@pam", inHint: "PCI mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts...)
			if tt.setup != nil {
				tt.setup(e)
			}
			o := e.opts()
			o.SkipGPUPreflight = tt.skipPre
			res, err := e.c.Deploy(context.Background(), e.cat, vm140, o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var te *TaskError
			if !errors.As(err, &te) {
				t.Fatalf("err %T is not a *TaskError", err)
			}
			if !strings.Contains(err.Error(), tt.inErr) || !strings.Contains(te.Hint, tt.inHint) {
				t.Fatalf("err = %q, hint %q; want %q in the error and %q in the hint", err, te.Hint, tt.inErr, tt.inHint)
			}
			if e.vmExists(140) {
				t.Fatal("a partial VM 140 remains")
			}
			if tt.rollback {
				if !res.Created || !res.RolledBack || !strings.Contains(err.Error(), "rolled back") {
					t.Fatalf("want a reported rollback: created=%v rolledBack=%v err=%v", res.Created, res.RolledBack, err)
				}
				if te.Log == "" || !strings.Contains(te.Log, "TASK ERROR") {
					t.Errorf("want the start task's log tail, got %q", te.Log)
				}
			} else if m := e.mutating(); m != 0 {
				t.Fatalf("preflight failure after %d mutating calls: %v", m, mutatingCalls(e.srv.Requests()))
			}
		})
	}
}

func (e *env) vm() *catalog.VM {
	vm, err := e.cat.VM(vm140)
	if err != nil {
		e.t.Fatal(err)
	}
	return vm
}

func TestKeepOnFailureKeepsTheVM(t *testing.T) {
	e := newEnv(t)
	if err := e.srv.MarkPCIBusy("pve", fakepve.DefaultGPUID, 141); err != nil {
		t.Fatal(err)
	}
	o := e.opts()
	o.SkipGPUPreflight, o.KeepOnFailure = true, true
	_, err := e.c.Deploy(context.Background(), e.cat, vm140, o)
	if !errors.Is(err, pve.ErrPCIBusy) || !strings.Contains(err.Error(), "kept") {
		t.Fatalf("err = %v", err)
	}
	if !e.vmExists(140) {
		t.Fatal("--keep-on-failure deleted the VM")
	}
	// A re-run after the GPU is freed converges.
	e.srv.ReleasePCI("pve", fakepve.DefaultGPUID)
	e.mustDeploy(vm140)
}

func TestTransientAPIFaultsAreRetried(t *testing.T) {
	tests := []struct {
		name  string
		rules []fakepve.FaultRule
	}{
		{"500 got timeout on the create POST", []fakepve.FaultRule{{Method: "POST", Path: "/nodes/*/qemu", Status: 500, Reason: "got timeout"}}},
		{"503 on a config read", []fakepve.FaultRule{{Method: "GET", Path: "/nodes/*/qemu/*/config", Status: 503, Reason: "Service Unavailable"}}},
		{"connection reset on start", []fakepve.FaultRule{{Method: "POST", Path: "/nodes/*/qemu/*/status/start", Reset: true}}},
		{"596 on the resize", []fakepve.FaultRule{{Method: "PUT", Path: "/nodes/*/qemu/*/resize", Status: 596, Reason: "Connection timed out"}}},
		{"502 on a task status poll", []fakepve.FaultRule{{Method: "GET", Path: "/nodes/*/tasks/*/status", Status: 502, Reason: "Bad Gateway"}}},
		{"lock timeout on the agent ping", []fakepve.FaultRule{{Method: "POST", Path: "/nodes/*/qemu/*/agent/ping", Status: 500,
			Reason: "can't lock file '/var/lock/qemu-server/lock-140.conf' - got timeout"}}},
		{"three faults in one run", []fakepve.FaultRule{
			{Method: "POST", Path: "/nodes/*/qemu", Status: 500, Reason: "got timeout"},
			{Method: "GET", Path: "/nodes/*/qemu/*/config", Status: 503, Reason: "Service Unavailable"},
			{Method: "POST", Path: "/nodes/*/qemu/*/status/start", Reset: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			for _, r := range tt.rules {
				e.srv.FailNext(r)
			}
			res := e.mustDeploy(vm140)
			if !res.Created || res.RolledBack {
				t.Fatalf("result %+v", res)
			}
			st := e.stats()
			if st.Faults != len(tt.rules) {
				t.Fatalf("%d faults were served, want %d", st.Faults, len(tt.rules))
			}
			creates := st.ByPath["POST /nodes/pve/qemu"]
			want := 1
			if tt.rules[0].Path == "/nodes/*/qemu" {
				want = 2 // one fault, then one post after checking that the VM is absent
			}
			if creates != want {
				t.Errorf("create posted %d times, want %d", creates, want)
			}
			if !e.vmExists(140) {
				t.Fatal("VM 140 missing")
			}
		})
	}
}

func TestNonTransientErrorsAreNotRetried(t *testing.T) {
	e := newEnv(t)
	e.srv.FailNext(fakepve.FaultRule{Method: "POST", Path: "/nodes/*/qemu", Status: 403, Reason: "Permission check failed (/vms/140, VM.Allocate)"})
	_, err := e.deploy(vm140)
	if !errors.Is(err, pve.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if n := e.stats().ByPath["POST /nodes/pve/qemu"]; n != 1 {
		t.Fatalf("create posted %d times after a 403, want 1; requests: %+v", n, e.srv.Requests())
	}
}

func TestDriftGetsTheMinimalConfigChange(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	ctx := context.Background()
	if _, err := e.c.api.UpdateConfig(ctx, "pve", 140, pve.Params{"onboot": 0, "tags": "aimachine;gpu"}, nil); err != nil {
		t.Fatal(err)
	}
	n := len(e.srv.Requests())
	res := e.mustDeploy(vm140)
	var posts []fakepve.RequestRecord
	for _, r := range e.srv.Requests()[n:] {
		if r.Class == fakepve.ClassMutating && !isLeaseWrite(r) {
			posts = append(posts, r)
		}
	}
	if len(posts) != 1 || posts[0].Path != "/nodes/pve/qemu/140/config" {
		t.Fatalf("mutating calls = %v, want one config update", mutatingCalls(posts))
	}
	var keys []string
	for k := range posts[0].Params {
		keys = append(keys, k)
	}
	if strings.Join(sortStrings(keys), ",") != "onboot,tags" {
		t.Fatalf("config update sent %v, want only onboot and tags", keys)
	}
	if res.Summary.Changed != 1 {
		t.Fatalf("summary = %+v", res.Summary)
	}
	// Converged: the next run changes nothing.
	before := e.mutating()
	e.mustDeploy(vm140)
	if d := e.mutating() - before; d != 0 {
		t.Fatalf("after convergence %d mutating calls", d)
	}
}

func TestColdChangeOnRunningVMIsReportedPending(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	e.vm().Cores = 16
	p, err := e.c.Plan(context.Background(), e.cat, vm140)
	if err != nil {
		t.Fatal(err)
	}
	if p.Changes() != 1 || len(p.Actions[0].Pending) != 1 || p.Actions[0].Pending[0] != "cores" {
		t.Fatalf("plan:\n%s", p)
	}
	e.events = nil
	e.mustDeploy(vm140)
	found := false
	for _, ev := range e.events {
		if ev.Status == StatusChanged && strings.Contains(ev.Message, "pending until VM 140 is rebooted: cores") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no 'pending until reboot' message in %+v", e.events)
	}
	// PVE returns pending values in GET config: the next run has nothing to do.
	before := e.mutating()
	e.mustDeploy(vm140)
	if d := e.mutating() - before; d != 0 {
		t.Fatalf("after a pending change %d mutating calls: %v", d, mutatingCalls(e.srv.Requests()))
	}
}

func TestHostKeyMismatchIsRefused(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	// The VM is re-created behind the tool's back: a new guest with a new host key.
	ctx := context.Background()
	if _, err := e.c.api.StopVM(ctx, "pve", 140); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.api.DeleteVM(ctx, "pve", 140); err != nil {
		t.Fatal(err)
	}
	_, err := e.deploy(vm140)
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("err = %v, want ErrHostKeyMismatch", err)
	}
	var te *TaskError
	if !errors.As(err, &te) || !strings.Contains(te.Hint, "--replace-host-key") {
		t.Fatalf("hint = %q", te.Hint)
	}
	o := e.opts()
	o.SSH.ReplaceHostKey = true
	if _, err := e.c.Deploy(ctx, e.cat, vm140, o); err != nil {
		t.Fatalf("deploy --replace-host-key: %v", err)
	}
	data, _ := os.ReadFile(e.kh)
	if n := strings.Count(string(data), "192.168.0.140 "); n != 1 {
		t.Fatalf("known_hosts has %d lines for the guest:\n%s", n, data)
	}
}

func TestCloudInitFailureRollsBack(t *testing.T) {
	e := newEnv(t)
	e.guests.cloudInitExit = 1
	res, err := e.deploy(vm140)
	if err == nil || !strings.Contains(err.Error(), "cloud-init status exited 1") || !res.RolledBack {
		t.Fatalf("err = %v, rolledBack = %v", err, res.RolledBack)
	}
	if e.vmExists(140) {
		t.Fatal("VM left behind")
	}
	e.guests.cloudInitExit = 2 // done with recoverable errors
	e.mustDeploy(vm140)
}

func TestCancelDuringAWaitRollsBackCleanly(t *testing.T) {
	e := newEnv(t)
	e.guests.noAgent = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := e.opts()
	o.Reporter = ReporterFunc(func(ev Event) {
		if strings.HasPrefix(ev.Task, "wait for the guest agent") && ev.Message != "" {
			cancel() // Ctrl-C while waiting
		}
	})
	res, err := e.c.Deploy(ctx, e.cat, vm140, o)
	if !errors.Is(err, context.Canceled) || !res.RolledBack {
		t.Fatalf("err = %v, rolledBack = %v", err, res.RolledBack)
	}
	if e.vmExists(140) {
		t.Fatal("VM left behind after Ctrl-C")
	}
	e.guests.noAgent = false
	e.mustDeploy(vm140) // a re-run converges
}

func TestSecretsNeverAppear(t *testing.T) {
	secrets := []string{fakepve.DefaultTokenSecret, fakepve.DefaultRootPassword}
	var out bytes.Buffer
	record := func(s string) { out.WriteString(s + "\n") }

	// A token run that fails (raw hostpci), a password run that succeeds, a bad token.
	for _, token := range []bool{true, false} {
		var opts []envOption
		if token {
			opts = append(opts, withToken())
		}
		e := newEnv(t, opts...)
		o := e.opts()
		o.Reporter = ReporterFunc(func(ev Event) { record(ev.Task + " " + ev.Message) })
		_, err := e.c.Deploy(context.Background(), e.cat, vm140, o)
		if err != nil {
			record(err.Error())
		}
		record(e.logs.String())
		malformed := e.connOptions(true)
		malformed.APIToken = "root@pam=" + fakepve.DefaultTokenSecret // no !TOKENID
		if _, err := Connect(context.Background(), malformed); err == nil {
			t.Fatal("a malformed token was accepted")
		} else {
			record(err.Error())
		}
		bad := e.connOptions(token)
		bad.APIToken = fakepve.DefaultTokenID + "=" + fakepve.DefaultTokenSecret + "x"
		bad.Password = fakepve.DefaultRootPassword + "x"
		if _, err := Connect(context.Background(), bad); err == nil {
			t.Fatal("connect with wrong credentials succeeded")
		} else {
			record(err.Error())
		}
	}
	if _, err := ConnOptionsFromEnv(func(k string) string {
		if k == EnvAPIToken {
			return "garbage" + fakepve.DefaultTokenSecret
		}
		return ""
	}); err != nil {
		record(err.Error())
	}
	if !strings.Contains(out.String(), "DEBUG") {
		t.Fatal("the debug log was not captured: the test would prove nothing")
	}
	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Fatalf("secret %q appears in output/logs/errors", s)
		}
	}
}

func TestConnOptionsFromEnvNamesMissingVariables(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "missing environment: PROXMOX_VE_ENDPOINT, PROXMOX_VE_API_TOKEN (or PROXMOX_VE_USERNAME and PROXMOX_VE_PASSWORD)"},
		{map[string]string{EnvEndpoint: "https://pve:8006/"}, "missing environment: PROXMOX_VE_API_TOKEN (or PROXMOX_VE_USERNAME and PROXMOX_VE_PASSWORD)"},
		{map[string]string{EnvEndpoint: "https://pve:8006/", EnvUsername: "root@pam"}, "missing environment: PROXMOX_VE_PASSWORD"},
		{map[string]string{EnvAPIToken: "root@pam!a=b"}, "missing environment: PROXMOX_VE_ENDPOINT"},
		{map[string]string{EnvEndpoint: "https://pve:8006/", EnvAPIToken: "root@pam!a=b"}, ""},
	}
	for _, tt := range tests {
		_, err := ConnOptionsFromEnv(func(k string) string { return tt.env[k] })
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tt.want == "") != (got == "") || !strings.HasPrefix(got, tt.want) {
			t.Errorf("env %v: err = %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestAPIURLAndSimulatorLoopbackGuard(t *testing.T) {
	for in, want := range map[string]string{
		"https://pve:8006/":          "https://pve:8006/api2/json",
		"https://pve:8006":           "https://pve:8006/api2/json",
		"https://pve:8006/api2/json": "https://pve:8006/api2/json",
	} {
		if got, err := apiURL(in); err != nil || got != want {
			t.Errorf("apiURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := Connect(context.Background(), ConnOptions{Endpoint: "https://192.168.0.10:8006/", APIToken: "root@pam!a=b", Simulator: true})
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("simulator mode dialled a real address: %v", err)
	}
}

func TestTLSIsVerified(t *testing.T) {
	e := newEnv(t)
	o := e.connOptions(false)
	o.Fingerprint = ""
	if _, err := Connect(context.Background(), o); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an unverified certificate was accepted: %v", err)
	}
	o.Fingerprint = strings.Repeat("AB:", 31) + "AB"
	if _, err := Connect(context.Background(), o); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("a wrong fingerprint was accepted: %v", err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, e.srv.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	o.Fingerprint, o.CAFile = "", ca
	if _, err := Connect(context.Background(), o); err != nil {
		t.Fatalf("CA file: %v", err)
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// The fake's built-in guest starts the agent only when cloud-init installs it (the vendor
// snippet): the noble cloud image has none.
func TestBuiltInGuestNeedsTheVendorSnippetForTheAgent(t *testing.T) {
	srv := fakepve.New(fakepve.WithAuthDelay(0), fakepve.WithTimeScale(0), fakepve.WithGuestFactory(fakepve.NewStaticGuestFactory()))
	ts := srv.StartTLS()
	defer ts.Close()
	cat, err := catalog.LoadValid("testdata/catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, ts: ts, cat: cat, kh: filepath.Join(t.TempDir(), "known_hosts"), logs: &syncBuffer{}}
	if e.c, err = Connect(context.Background(), e.connOptions(true)); err != nil {
		t.Fatal(err)
	}
	res := e.mustDeploy("vm-dns")
	if !res.Created || !hasPinned(e.kh, "192.168.0.101:22") {
		t.Fatalf("vm-dns: %+v", res)
	}

	vm, _ := cat.VM("vm-dns")
	vm.Image.VendorData = ""
	if _, err := e.c.Destroy(context.Background(), cat, "vm-dns", DestroyOptions{KnownHostsFile: e.kh}); err != nil {
		t.Fatal(err)
	}
	o := e.opts()
	o.AgentTimeout = 200 * time.Millisecond
	res, err = e.c.Deploy(context.Background(), cat, "vm-dns", o)
	var te *TaskError
	if !errors.As(err, &te) || !strings.Contains(te.Task, "wait for the guest agent") || !strings.Contains(te.Hint, "vendor_data") {
		t.Fatalf("err = %v", err)
	}
	if !res.RolledBack || e.vmExists(101) {
		t.Fatal("the VM whose agent never came up was not rolled back")
	}
}

func TestRollbackFailureIsJoinedToTheCause(t *testing.T) {
	e := newEnv(t)
	if err := e.srv.MarkPCIBusy("pve", fakepve.DefaultGPUID, 141); err != nil {
		t.Fatal(err)
	}
	e.srv.FailNext(fakepve.FaultRule{Method: "DELETE", Path: "/nodes/*/qemu/*", Status: 500, Reason: "can't remove VM 140 - protection mode enabled"})
	o := e.opts()
	o.SkipGPUPreflight = true
	res, err := e.c.Deploy(context.Background(), e.cat, vm140, o)
	if !errors.Is(err, pve.ErrPCIBusy) {
		t.Fatalf("the cause was lost: %v", err)
	}
	if !strings.Contains(err.Error(), "rollback of VM 140 failed") || !strings.Contains(err.Error(), "protection mode enabled") || res.RolledBack {
		t.Fatalf("the rollback failure was dropped: %v", err)
	}
	if !e.vmExists(140) {
		t.Fatal("the VM is gone although its delete failed?")
	}
}

func withGPUMapping(t *fakepve.Topology) {
	t.Mappings = append(t.Mappings, fakepve.PCIMappingSpec{ID: "gpu0", Description: "RTX 5060 Ti",
		Map: []string{"node=pve,path=0000:01:00,id=10de:2d04,iommugroup=12"}})
}

func TestGPUThroughAClusterMappingWorksWithAToken(t *testing.T) {
	e := newEnv(t, withToken(), withTopology(withGPUMapping))
	g := e.vm().GPU
	g.PCIAddress, g.Mapping = "", "gpu0"
	e.mustDeploy(vm140)
	cfg, err := e.c.api.VMConfig(context.Background(), "pve", 140)
	if err != nil || cfg["hostpci0"] != "mapping=gpu0,pcie=1,rombar=1" {
		t.Fatalf("hostpci0 = %q (%v)", cfg["hostpci0"], err)
	}

	e2 := newEnv(t, withToken())
	g = e2.vm().GPU
	g.PCIAddress, g.Mapping = "", "gpu0"
	_, err = e2.deploy(vm140)
	if !errors.Is(err, pve.ErrPCIMissing) || !strings.Contains(err.Error(), `PCI mapping "gpu0" does not exist`) {
		t.Fatalf("missing mapping: %v", err)
	}
}

func TestStoppedVMIsStartedAndGrownDiskResized(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	ctx := context.Background()
	if _, err := e.c.api.StopVM(ctx, "pve", 140); err != nil {
		t.Fatal(err)
	}
	e.vm().Disk.SizeGB = 600
	n := len(e.srv.Requests())
	res := e.mustDeploy(vm140)
	var calls []string
	for _, r := range e.srv.Requests()[n:] {
		if r.Class == fakepve.ClassMutating && !isLeaseWrite(r) {
			calls = append(calls, r.Method+" "+r.Path)
		}
	}
	want := []string{"PUT /nodes/pve/qemu/140/resize", "POST /nodes/pve/qemu/140/status/start", "POST /nodes/pve/qemu/140/agent/exec"}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("mutating calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	if res.Created || res.Summary.Changed != 2 {
		t.Fatalf("summary %+v", res.Summary)
	}
	cfg, _ := e.c.api.VMConfig(ctx, "pve", 140)
	if gb, _ := diskSizeGB(cfg["scsi0"]); gb != 600 {
		t.Fatalf("scsi0 = %q", cfg["scsi0"])
	}
}

// With a username and password the client logs in before its first call: pveproxy answers
// an unauthenticated request with a delayed (about 3 s) "401 No ticket", so no request may
// go out without a ticket.
func TestPasswordLoginSendsNoUnauthenticatedRequest(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	st := e.stats()
	if st.ByStatus[401] != 0 {
		t.Fatalf("the fake answered %d requests with 401 (an unauthenticated request went out): %v", st.ByStatus[401], st.ByStatus)
	}
	rs := e.srv.Requests()
	if len(rs) == 0 || rs[0].Method != "POST" || !strings.HasSuffix(rs[0].Path, "/access/ticket") {
		t.Fatalf("the first request must be the login (POST /access/ticket), got %+v", rs[:min(len(rs), 1)])
	}
	if n := st.ByRoute["POST /access/ticket"]; n != 1 {
		t.Fatalf("want exactly 1 login, got %d (%v)", n, st.ByRoute)
	}
}

// TestConvergedRunRoundTripBudget pins how many API requests a converged deploy and a plan make:
// every extra round trip costs a real host (and an operator's wait) on each re-run.
func TestConvergedRunRoundTripBudget(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	// measured (see the log line); raise only with a reason. A deploy: 2 reads (the config on
	// the catalog's node, the status: no cluster listing), then the run lease (one PUT to take
	// it with the digest just read; one GET and one PUT to give it back).
	const deployBudget, planBudget = 5, 2
	before := e.stats().Total
	e.mustDeploy(vm140)
	deployReqs := e.stats().Total - before
	before = e.stats().Total
	if _, err := e.c.Plan(context.Background(), e.cat, vm140); err != nil {
		t.Fatal(err)
	}
	planReqs := e.stats().Total - before
	t.Logf("converged deploy: %d API requests; plan: %d", deployReqs, planReqs)
	if deployReqs > deployBudget {
		t.Errorf("converged deploy made %d API requests, budget %d: %v", deployReqs, deployBudget, e.srv.Requests()[len(e.srv.Requests())-deployReqs-planReqs:])
	}
	if planReqs > planBudget {
		t.Errorf("plan made %d API requests, budget %d", planReqs, planBudget)
	}
	for _, r := range e.srv.Requests()[len(e.srv.Requests())-deployReqs-planReqs:] {
		if r.Path == "/cluster/resources" {
			t.Errorf("a re-run listed the cluster (%s %s?%s): the config on the catalog's node answers whether the VM is there", r.Method, r.Path, r.Query)
		}
	}
}

// The VM's config is read on the catalog's node first; when the catalog names a node the
// cluster does not know (PVE: 500 "hostname lookup 'x' failed", pve-http-server) or the VM is
// not there, /cluster/resources still finds it on the node where it is, and says so.
func TestInspectFindsTheVMOnAnotherNode(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	e.addCatalogNode("pve-other") // the catalog knows it; the cluster does not
	e.vm().Node = "pve-other"
	_, err := e.c.Plan(context.Background(), e.cat, vm140)
	if err == nil || !strings.Contains(err.Error(), `VM 140 exists on node "pve", the catalog places it on "pve-other"`) {
		t.Fatalf("plan with the VM on another node: %v", err)
	}
	var sawConfig, sawListing bool
	for _, r := range e.srv.Requests() {
		sawConfig = sawConfig || r.Path == "/nodes/pve-other/qemu/140/config"
		sawListing = sawListing || (sawConfig && r.Path == "/cluster/resources")
	}
	if !sawConfig || !sawListing {
		t.Fatalf("want the config read on pve-other, then the cluster listing: config %v, listing %v", sawConfig, sawListing)
	}
}

// addCatalogNode declares a node in the catalog (a VM's node must be one of them), with the
// storages of the catalog's first node.
func (e *env) addCatalogNode(name string) {
	n := e.cat.Nodes[0]
	n.Name = name
	e.cat.Nodes = append(e.cat.Nodes, n)
}

// A node the cluster does not know, with no VM anywhere: the listing says the VM is absent and
// the preflight names the node (not the raw "hostname lookup" text).
func TestInspectUnknownNodeIsThePreflightsToName(t *testing.T) {
	e := newEnv(t)
	e.addCatalogNode("pve-typo")
	e.vm().Node = "pve-typo"
	_, err := e.deploy(vm140)
	if err == nil || !strings.Contains(err.Error(), `node "pve-typo" is not in the cluster`) || strings.Contains(err.Error(), "hostname lookup") {
		t.Fatalf("deploy to an unknown node: %v", err)
	}
}

// A disk larger than the catalog's is kept, never shrunk: plan says so as deploy does, and it
// is not a change.
func TestPlanShowsTheDiskShrinkRefusal(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	e.vm().Disk.SizeGB = 100 // the catalog now asks for less than the VM's 500G disk
	p, err := e.c.Plan(context.Background(), e.cat, vm140)
	if err != nil {
		t.Fatal(err)
	}
	var keep *Action
	for i := range p.Actions {
		if p.Actions[i].Kind == ActionKeep {
			keep = &p.Actions[i]
		}
	}
	if keep == nil || !strings.Contains(keep.Summary, "scsi0 is 500G, larger than the catalog's 100G (disks never shrink)") || p.Changes() != 0 {
		t.Fatalf("plan %s", p)
	}
	res := e.mustDeploy(vm140)
	for _, ev := range res.Summary.Tasks {
		if strings.HasPrefix(ev.Task, "resize scsi0") && (ev.Status != StatusOK || !strings.Contains(ev.Message, "disks never shrink")) {
			t.Fatalf("deploy reports %+v", ev)
		}
	}
}

// A program calling the library directly gets the catalog validated as the CLI does: an
// invalid value is refused before any request (the values reach the API and the guest).
func TestDeployValidatesTheCatalog(t *testing.T) {
	e := newEnv(t)
	e.vm().Cores = -4
	before := e.stats().Total
	_, err := e.deploy(vm140)
	var te *TaskError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "the catalog is not valid") || !strings.Contains(err.Error(), "cores") {
		t.Fatalf("deploy with cores -4: %v", err)
	}
	if _, err := e.c.Plan(context.Background(), e.cat, vm140); err == nil {
		t.Fatal("plan accepted an invalid catalog")
	}
	if n := e.stats().Total - before; n != 0 {
		t.Fatalf("%d API requests sent for an invalid catalog", n)
	}
}
