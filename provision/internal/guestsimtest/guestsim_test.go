package guestsimtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/aimachine/aimachine/catalog"
	fakeguest "github.com/aimachine/aimachine/fakes/guest"
	fakepve "github.com/aimachine/aimachine/fakes/pve"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/guest/guesttest"
)

const apiKey = "sk-sim-key-0123456789"

type host struct{}

func (host) GuestPoweredOff(int)                 {}
func (host) Scale(d time.Duration) time.Duration { return 0 }

type world struct {
	boot    fakepve.BootInfo
	f       *fakeguest.Factory
	g       *fakeguest.Guest
	cat     *catalog.Catalog
	vm      *catalog.VM
	cfg     guest.Config
	reports string
}

func start(t testing.TB) *world { return startCPU(t, "") }

// reboot power-cycles the guest with another CPU type (a catalog cpu change applied by PVE).
func (w *world) reboot(t *testing.T, cpu string) {
	t.Helper()
	w.boot.CPU = cpu
	if err := w.g.PowerOff(true); err != nil {
		t.Fatal(err)
	}
	if err := w.g.PowerOn(context.Background(), w.boot); err != nil {
		t.Fatal(err)
	}
}

func startCPU(t testing.TB, cpu string) *world {
	t.Helper()
	if cpu == "" {
		cpu = "host"
	}
	dir := t.TempDir()
	signer, keyFile := guesttest.ClientKey(t, dir)
	f := fakeguest.NewFactory(fakeguest.WithTimeScale(0), fakeguest.WithStateDir(t.TempDir()))
	t.Cleanup(func() { f.Close() })
	pg, err := f.NewGuest(fakepve.VMIdentity{Node: "pve", VMID: 140, Incarnation: "1"}, host{})
	if err != nil {
		t.Fatal(err)
	}
	g := pg.(*fakeguest.Guest)
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	boot := fakepve.BootInfo{
		Name: "vm-llm-aimachine", Machine: "q35", BIOS: "ovmf", CPU: cpu, Cores: 32, MemoryMiB: 51200,
		GPUs: []fakepve.PCIDevice{
			{ID: "0000:01:00.0", Class: "0x030000", Vendor: "0x10de", Device: "0x2d04", MemoryMiB: 16311, Model: "NVIDIA GeForce RTX 5060 Ti"},
			{ID: "0000:01:00.1", Class: "0x040300", Vendor: "0x10de", Device: "0x22eb"},
		},
		CloudInit: fakepve.CloudInitData{Hostname: "vm-llm-aimachine", User: "ubuntu", SSHKeys: []string{pub}, IPConfig0: "ip=192.168.0.140/24,gw=192.168.0.1"},
		Config:    map[string]string{"net0": "virtio=BC:24:11:00:01:40,bridge=vmbr0"},
	}
	if err = g.PowerOn(context.Background(), boot); err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(dir, "known_hosts")
	for deadline := time.Now().Add(30 * time.Second); len(g.HostKeys()) == 0 || g.State() != fakeguest.PowerRunning; {
		if time.Now().After(deadline) {
			t.Fatal("simulated guest did not boot")
		}
		time.Sleep(10 * time.Millisecond) // test harness: the simulated boot
	}
	var lines []string
	for _, k := range g.HostKeys() {
		lines = append(lines, knownhosts.Line([]string{knownhosts.Normalize("192.168.0.140:22")}, k))
	}
	bastion := guesttest.New(t, signer.PublicKey(), nil)
	bastion.Dialer = f.DialGuest
	baddr := bastion.Start("")
	lines = append(lines, knownhosts.Line([]string{knownhosts.Normalize(baddr)}, bastion.Signer.PublicKey()))
	if err := os.WriteFile(kh, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &catalog.Catalog{VMs: []catalog.VM{{
		ID: 140, Name: "vm-llm-aimachine", Network: catalog.VMNetwork{IP: "192.168.0.140"},
		GPU:       &catalog.GPU{Enabled: true, PCIAddress: "0000:01:00", Expect: catalog.GPUExpect{Model: "NVIDIA GeForce RTX 5060 Ti", PCIID: "10de:2d04", MemoryMiB: 16311}},
		CloudInit: catalog.CloudInit{User: "ubuntu"},
		Services: catalog.Services{
			VLLM:   &catalog.VLLM{Enabled: true, Version: "0.9.2", Model: "Qwen/Qwen2.5-3B-Instruct", APIKeyEnv: "SIM_VLLM_KEY", MaxModelLen: 8192},
			Ollama: &catalog.Ollama{Enabled: true, Models: []string{"qwen2.5:0.5b"}},
		},
	}}}
	c.ApplyDefaults()
	cfg := guest.Config{Addr: "192.168.0.140:22", User: "ubuntu", KeyFile: keyFile, KnownHostsFile: kh, LoopbackOnly: true,
		Jump: &guest.Jump{Addr: baddr, User: "root"}, Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	return &world{boot: boot, f: f, g: g, cat: c, vm: &c.VMs[0], cfg: cfg, reports: t.TempDir()}
}

func (w *world) dial(t testing.TB) guest.Runner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		r, err := guest.Dial(ctx, w.cfg)
		if err == nil {
			return r
		}
		if errors.Is(err, guest.ErrHostKey) || ctx.Err() != nil {
			t.Fatalf("dial: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // test harness: the simulated boot
	}
}

func (w *world) opts(run string, rep provision.Reporter) provision.GuestOptions {
	return provision.GuestOptions{Reporter: rep, ReportDir: w.reports, RunID: run,
		Getenv:       func(k string) string { return map[string]string{"SIM_VLLM_KEY": apiKey}[k] },
		PollInterval: 10 * time.Millisecond, AptLockTimeout: 20 * time.Second, ReadyTimeout: 20 * time.Second, RebootTimeout: 60 * time.Second}
}

func TestSimulatedGuestFreshThenIdempotent(t *testing.T) {
	w := start(t)
	r := w.dial(t)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log []string
	rep := provision.ReporterFunc(func(e provision.Event) {
		log = append(log, string(e.Status)+" "+e.Task+": "+e.Message)
	})
	sum, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("fresh", rep))
	if err != nil {
		t.Logf("events:\n%s", strings.Join(log, "\n"))
		b, _ := os.ReadFile(filepath.Join(w.reports, "vm-llm-aimachine-fresh", "transcript.log"))
		t.Logf("transcript tail:\n%s", guest.Tail(string(b), 80))
		var te *provision.TaskError
		if errors.As(err, &te) {
			t.Logf("task log:\n%s", te.Log)
		}
		t.Fatalf("fresh run: %v", err)
	}
	t.Logf("fresh run: %d changed, %d ok; stats %+v", sum.Changed, sum.OK, r.Stats())
	state := w.state(t, r)
	rep2, err := provision.VerifyGuest(ctx, r, w.vm, w.opts("verify", nil))
	if err != nil {
		t.Fatal(err)
	}
	if after := w.state(t, r); after != state {
		t.Errorf("verify changed the guest (it must be read-only):\nbefore %s\nafter  %s", state, after)
	}
	for _, c := range rep2.Checks {
		t.Logf("verify %v %s: %s", c.Pass, c.Name, strings.ReplaceAll(c.Evidence, "\n", " | "))
	}
	if !rep2.OK() {
		t.Fatalf("verify failed: %d checks", len(rep2.Failed()))
	}
	w.checkVLLMDefaults(t, r, rep2, strings.Join(log, "\n"))
	r.Close()

	r2 := w.dial(t)
	defer r2.Close()
	before := w.services(t, r2)
	s0 := r2.Stats()
	sum, err = provision.RunGuestPhase(ctx, r2, w.cat, w.vm, w.opts("second", nil))
	if err != nil {
		t.Fatal(err)
	}
	st := r2.Stats()
	st.Sessions -= s0.Sessions
	t.Logf("second run: %d changed, %d ok; stats %+v", sum.Changed, sum.OK, st)
	if sum.Changed != 0 || st.Connections != 1 || st.Sessions > 5 {
		t.Fatalf("second run: %d changed, %+v", sum.Changed, st)
	}
	if after := w.services(t, r2); after != before {
		t.Fatalf("services restarted by the idempotent run:\nbefore %s\nafter  %s", before, after)
	}
}

// checkVLLMDefaults proves the catalog defaults took effect: vLLM answers on the VM's IP and,
// through the vllm-loopback.socket proxy, on 127.0.0.1; /v1/models needs the API key (401
// without it), which the tool sent (the verify check passed) but never printed.
func (w *world) checkVLLMDefaults(t *testing.T, r guest.Runner, rep provision.VerifyReport, events string) {
	t.Helper()
	for _, name := range []string{"vLLM /health answers 200 on 192.168.0.140:8000", "vLLM /health answers 200 on 127.0.0.1:8000", "vLLM /v1/models lists Qwen/Qwen2.5-3B-Instruct"} {
		if c, ok := rep.Check(name); !ok || !c.Pass {
			t.Errorf("verify check %q: present %v, %+v", name, ok, c)
		}
	}
	ctx := context.Background()
	res, err := r.Run(ctx, "systemctl is-active vllm-loopback.socket; stat -c '%a %U' /etc/vllm/vllm.env; curl -s -o /dev/null -w '%{http_code}\\n' http://192.168.0.140:8000/v1/models; curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:8000/v1/models")
	if err != nil {
		t.Fatalf("probe vLLM: %v", err)
	}
	if got, want := strings.Fields(res.Stdout), []string{"active", "600", "root", "401", "401"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("loopback socket / env file mode / /v1/models without a key: got %q, want %q", got, want)
	}
	tr, err := os.ReadFile(filepath.Join(w.reports, "vm-llm-aimachine-fresh", "transcript.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(tr), apiKey) || strings.Contains(events, apiKey) {
		t.Errorf("the API key appears in the transcript or the events")
	}
	if !strings.Contains(string(tr), "--header @/etc/vllm/auth.header") {
		t.Errorf("the transcript shows no curl --header @/etc/vllm/auth.header (the key read from a 0600 file)")
	}
}

// state is what a change on the guest would show: the services' PIDs and start times, dpkg's
// package states and the size and mtime of the files the tool writes.
func (w *world) state(t *testing.T, r guest.Runner) string {
	t.Helper()
	res, err := r.Run(context.Background(), "dpkg-query -W -f='${Package} ${Status}\\n'; stat -c '%n %s %Y' /etc/systemd/system/vllm.service /etc/vllm/vllm.env /etc/systemd/system/ollama.service.d/override.conf /etc/modules-load.d/nvidia-uvm.conf")
	if err != nil {
		t.Fatalf("read the guest state: %v", err)
	}
	if !strings.Contains(res.Stdout, "/etc/vllm/vllm.env ") || !strings.Contains(res.Stdout, "install ok installed") {
		t.Fatalf("the guest state probe read nothing useful:\n%s", res.Stdout)
	}
	return w.services(t, r) + "\n" + res.Stdout
}

// services reads MainPID and ActiveEnterTimestamp of both services.
func (w *world) services(t *testing.T, r guest.Runner) string {
	t.Helper()
	res, err := r.Run(context.Background(), "systemctl show vllm.service -p MainPID -p ActiveEnterTimestamp; systemctl show ollama.service -p MainPID -p ActiveEnterTimestamp")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(strings.TrimSpace(res.Stdout), "\n", " ")
}

// Each injected guest fault gives the documented behaviour, and a re-run after clearing it
// succeeds (scenario 8's contract: stop at the failed task, show the log, VM stays reachable).
func TestSimulatedGuestFaults(t *testing.T) {
	cases := []struct {
		name     string
		fault    fakeguest.Fault
		cpu      string // boot CPU type (kvm64 hides AVX)
		setup    func(o *provision.GuestOptions)
		failTask string // "" = the run succeeds despite the fault
		logHas   string
		hintHas  string
		// reconnects is how many times the runner must have reconnected.
		reconnects int
	}{
		{name: "secure boot on: signed prebuilt modules load", fault: fakeguest.Fault{Kind: fakeguest.FaultSecureBoot}},
		{name: "dpkg lock held for two apt runs", fault: fakeguest.Fault{Kind: fakeguest.FaultDpkgLock, Count: 2}},
		{name: "dpkg lock held too long", fault: fakeguest.Fault{Kind: fakeguest.FaultDpkgLock},
			setup: func(o *provision.GuestOptions) { o.AptLockTimeout = 300 * time.Millisecond }, failTask: "install base packages", hintHas: "unattended-upgrades"},
		{name: "apt 404 on update", fault: fakeguest.Fault{Kind: fakeguest.FaultApt404, Pattern: "update"}, failTask: "install base packages", logHas: "404", hintHas: "404"},
		{name: "apt 404 on the CUDA toolkit", fault: fakeguest.Fault{Kind: fakeguest.FaultApt404, Pattern: "cuda-toolkit-*"}, failTask: "install the CUDA toolkit 12.8", logHas: "404"},
		{name: "ssh drop mid-command", fault: fakeguest.Fault{Kind: fakeguest.FaultSSHDrop, Pattern: "pip install"}, reconnects: 1},
		{name: "vLLM out of memory", fault: fakeguest.Fault{Kind: fakeguest.FaultVLLMOOM}, failTask: "wait for vLLM to serve Qwen/Qwen2.5-3B-Instruct", logHas: "memory", hintHas: "VRAM"},
		{name: "no AVX (cpu kvm64)", cpu: "kvm64", failTask: "check the CPU exposes AVX", hintHas: "cpu: host"},
		{name: "DKMS build failure with prebuilt modules available: DKMS is never used", fault: fakeguest.Fault{Kind: fakeguest.FaultDKMSBuild}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := startCPU(t, tc.cpu)
			if tc.fault.Kind != "" {
				tc.fault.VMID = 140
				if _, err := w.f.InjectFault(tc.fault); err != nil {
					t.Fatal(err)
				}
			}
			r := w.dial(t)
			defer r.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			opts := w.opts("faulty", nil)
			if tc.setup != nil {
				tc.setup(&opts)
			}
			_, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, opts)
			if tc.failTask == "" {
				if err != nil {
					t.Fatalf("run with the fault: %v", err)
				}
				if st := r.Stats(); st.Reconnects != tc.reconnects {
					t.Fatalf("reconnects %d, want %d", st.Reconnects, tc.reconnects)
				}
			} else {
				var te *provision.TaskError
				if !errors.As(err, &te) {
					t.Fatalf("want a *TaskError from %q, got %v", tc.failTask, err)
				}
				t.Logf("failure: %v\nlog:\n%s", te, te.Log)
				if te.Task != tc.failTask || !strings.Contains(te.Log, tc.logHas) || !strings.Contains(te.Hint, tc.hintHas) {
					t.Fatalf("want task %q (log %q, hint %q), got task %q", tc.failTask, tc.logHas, tc.hintHas, te.Task)
				}
				if _, err := os.Stat(filepath.Join(w.reports, "vm-llm-aimachine-faulty", "failure.txt")); err != nil {
					t.Fatalf("no log bundle: %v", err)
				}
				// The VM stays up and reachable over the same connection or a new one.
				if _, err := r.Run(ctx, "true"); err != nil {
					r.Close()
					r = w.dial(t)
				}
				w.f.ClearFaults(tc.fault.Kind)
				if tc.cpu != "" {
					w.reboot(t, "host")
					r.Close()
					r = w.dial(t)
				}
				if _, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("rerun", nil)); err != nil {
					t.Fatalf("re-run after clearing the fault: %v", err)
				}
			}
			rep, err := provision.VerifyGuest(ctx, r, w.vm, w.opts("verify", nil))
			if err != nil || !rep.OK() {
				t.Fatalf("verify after the run: %v %+v", err, rep.Failed())
			}
		})
	}
}
