package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/internal/tasks"
)

const testAPIKey = "sk-aimachine-test-key-123"

func guestTestVM() (*catalog.Catalog, *catalog.VM) {
	c := &catalog.Catalog{VMs: []catalog.VM{{
		ID: 140, Name: "vm-llm-aimachine", Network: catalog.VMNetwork{IP: "192.168.0.140"},
		GPU:       &catalog.GPU{Enabled: true, PCIAddress: "0000:01:00", Expect: catalog.GPUExpect{Model: "NVIDIA GeForce RTX 5060 Ti", PCIID: "10de:2d04", MemoryMiB: 16311}},
		CloudInit: catalog.CloudInit{User: "ubuntu"},
		Services: catalog.Services{
			VLLM:   &catalog.VLLM{Enabled: true, Version: "0.9.2", Model: "Qwen/Qwen2.5-3B-Instruct", APIKeyEnv: "AIMACHINE_TEST_VLLM_KEY", MaxModelLen: 8192},
			Ollama: &catalog.Ollama{Enabled: true},
		},
	}}}
	c.ApplyDefaults()
	return c, &c.VMs[0]
}

func guestTestOpts(t *testing.T, rep Reporter) GuestOptions {
	return GuestOptions{
		Reporter: rep, ReportDir: t.TempDir(), RunID: "run1",
		Getenv:       func(k string) string { return map[string]string{"AIMACHINE_TEST_VLLM_KEY": testAPIKey}[k] },
		PollInterval: time.Millisecond, AptLockTimeout: 5 * time.Second, ReadyTimeout: 2 * time.Second,
	}
}

func TestGuestPhaseFreshThenIdempotent(t *testing.T) {
	c, vm := guestTestVM()
	g := newScriptedGuest()
	var events []Event
	opts := guestTestOpts(t, ReporterFunc(func(e Event) { events = append(events, e) }))
	sum, err := RunGuestPhase(context.Background(), g, c, vm, opts)
	if err != nil {
		t.Fatalf("fresh run: %v", err)
	}
	if sum.Changed == 0 || sum.Failed != 0 {
		t.Fatalf("fresh run recap %+v", sum)
	}
	for _, e := range events {
		if strings.Contains(e.Message, testAPIKey) {
			t.Fatalf("API key in an event: %+v", e)
		}
	}
	// The newest -open driver was chosen (595-open over 580-server-open; 610 is closed).
	if !g.pkgs["nvidia-headless-no-dkms-595-open"] || !g.pkgs["nvidia-utils-595"] || g.pkgs["nvidia-headless-no-dkms-610"] {
		t.Fatalf("driver packages %v", g.pkgs)
	}
	if g.modes["/etc/vllm/vllm.env"] != 0o600 || !strings.Contains(g.files["/etc/vllm/vllm.env"], testAPIKey) {
		t.Fatal("env file")
	}
	rep, err := VerifyGuest(context.Background(), g, vm, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify failed: %+v", rep.Failed())
	}
	if rep.Sessions > 2 {
		t.Fatalf("verify used %d sessions, want a batched 2", rep.Sessions)
	}

	vpid, opid := g.svc("vllm").pid, g.svc("ollama").pid
	before := g.Stats()
	sum, err = RunGuestPhase(context.Background(), g, c, vm, opts)
	if err != nil {
		t.Fatal(err)
	}
	after := g.Stats()
	if sum.Changed != 0 || sum.OK == 0 {
		t.Fatalf("second run recap %+v", sum)
	}
	if after.Sessions-before.Sessions != 1 || after.Connections != before.Connections {
		t.Fatalf("second run used %d sessions and %d new connections, want 1 and 0", after.Sessions-before.Sessions, after.Connections-before.Connections)
	}
	if g.svc("vllm").pid != vpid || g.svc("ollama").pid != opid {
		t.Fatal("a service was restarted by the idempotent run")
	}
}

// A failed DKMS build and its resume (dpkg's half-configured nvidia-dkms, the re-run's
// dpkg --configure -a) are tested against fakes/guest in
// internal/guestsimtest.TestSimulatedGuestDKMSBuildFailureThenResume: the scripted guest here
// recognises the tool's command strings and would only echo the tool's own assumptions.

func TestGuestPhaseFaults(t *testing.T) {
	cases := []struct {
		name     string
		inject   func(*scriptedGuest)
		clear    func(*scriptedGuest)
		failTask string
		hint     string
	}{
		{"secure boot on: signed prebuilt modules work", func(g *scriptedGuest) { g.secureBoot = true }, nil, "", ""},
		{"secure boot on and only DKMS: refused", func(g *scriptedGuest) { g.secureBoot, g.noPrebuilt = true, true }, func(g *scriptedGuest) { g.secureBoot = false }, "install the NVIDIA open driver", "signed prebuilt"},
		{"dpkg lock held for a while", func(g *scriptedGuest) { g.aptLock = 2 }, nil, "", ""},
		{"ssh drop mid-command", func(g *scriptedGuest) { g.dropOn = "pip install" }, nil, "", ""},
		{"no AVX", func(g *scriptedGuest) { g.noAVX = true }, func(g *scriptedGuest) { g.noAVX = false }, "check the CPU exposes AVX", "cpu: host"},
		{"vLLM OOM", func(g *scriptedGuest) { g.vllmOOM = true }, func(g *scriptedGuest) { g.vllmOOM = false; g.start("vllm") }, "wait for vLLM to serve Qwen/Qwen2.5-3B-Instruct", "gpu_memory_utilization"},
		{"dpkg lock held too long", func(g *scriptedGuest) { g.aptLock = 1 << 30 }, func(g *scriptedGuest) { g.aptLock = 0 }, "install base packages", "unattended-upgrades"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, vm := guestTestVM()
			g := newScriptedGuest()
			tc.inject(g)
			opts := guestTestOpts(t, nil)
			if tc.failTask == "dpkg lock held too long" {
				opts.AptLockTimeout = 50 * time.Millisecond
			}
			if tc.failTask == "install base packages" {
				opts.AptLockTimeout = 50 * time.Millisecond
			}
			_, err := RunGuestPhase(context.Background(), g, c, vm, opts)
			if tc.failTask == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var te *TaskError
			if !errors.As(err, &te) || te.Task != tc.failTask || !strings.Contains(te.Hint, tc.hint) {
				t.Fatalf("want failure of %q with hint %q, got %v", tc.failTask, tc.hint, err)
			}
			if _, err := g.Run(context.Background(), "echo still reachable"); err != nil && !strings.Contains(err.Error(), "unknown command") {
				t.Fatalf("guest not reachable after the failure: %v", err)
			}
			tc.clear(g)
			opts.RunID = "rerun"
			if _, err := RunGuestPhase(context.Background(), g, c, vm, opts); err != nil {
				t.Fatalf("re-run after clearing: %v", err)
			}
		})
	}
}

func TestGuestPhaseMissingAPIKey(t *testing.T) {
	c, vm := guestTestVM()
	opts := guestTestOpts(t, nil)
	opts.Getenv = func(string) string { return "" }
	g := newScriptedGuest()
	_, err := RunGuestPhase(context.Background(), g, c, vm, opts)
	if !errors.Is(err, ErrMissingAPIKey) || !strings.Contains(err.Error(), "AIMACHINE_TEST_VLLM_KEY") {
		t.Fatalf("got %v", err)
	}
	if g.Stats().Sessions != 0 {
		t.Fatal("ran commands without the key")
	}
}

// A catalog change rewrites the unit and restarts vLLM once; an interrupted run (unit written,
// restart not reached) is finished by the next run.
func TestGuestPhaseConfigChangeRestartsOnce(t *testing.T) {
	c, vm := guestTestVM()
	g := newScriptedGuest()
	opts := guestTestOpts(t, nil)
	if _, err := RunGuestPhase(context.Background(), g, c, vm, opts); err != nil {
		t.Fatal(err)
	}
	pid, opid := g.svc("vllm").pid, g.svc("ollama").pid
	vm.Services.VLLM.GPUMemoryUtilization = 0.5
	sum, err := RunGuestPhase(context.Background(), g, c, vm, opts)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Changed != 2 || g.svc("vllm").pid == pid || g.svc("ollama").pid != opid {
		t.Fatalf("recap %+v: want the unit and the service changed, vLLM restarted, Ollama untouched", sum)
	}
	if !strings.Contains(g.files["/etc/systemd/system/vllm.service"], "--gpu-memory-utilization 0.50") {
		t.Fatal("unit not rewritten")
	}
	// Interrupted: the unit is rewritten but the run dies before the restart.
	vm.Services.VLLM.GPUMemoryUtilization = 0.55
	g.dropOn = "systemctl enable vllm"
	g.svc("vllm") // keep
	pid = g.svc("vllm").pid
	_, _ = RunGuestPhase(context.Background(), g, c, vm, opts) // recovers by itself (reconnect + retry)
	if g.svc("vllm").pid == pid {
		t.Fatal("vLLM still runs the old configuration")
	}
	sum, err = RunGuestPhase(context.Background(), g, c, vm, opts)
	if err != nil || sum.Changed != 0 {
		t.Fatalf("converged run: %+v %v", sum, err)
	}
}

// nouveau holds the GPU: the driver task reboots once, waits for SSH on a new boot id and
// loads the module.
func TestGuestPhaseRebootsOnlyWhenNeeded(t *testing.T) {
	c, vm := guestTestVM()
	g := newScriptedGuest()
	g.nouveau = true
	if _, err := RunGuestPhase(context.Background(), g, c, vm, guestTestOpts(t, nil)); err != nil {
		t.Fatal(err)
	}
	if g.bootID != 2 || g.Stats().Reconnects != 1 {
		t.Fatalf("boot %d, stats %+v: want exactly one reboot and reconnect", g.bootID, g.Stats())
	}
	g2 := newScriptedGuest()
	if _, err := RunGuestPhase(context.Background(), g2, c, vm, guestTestOpts(t, nil)); err != nil {
		t.Fatal(err)
	}
	if g2.bootID != 1 {
		t.Fatal("rebooted although modprobe works")
	}
}

func TestGuestPhaseNamesTheChosenDriver(t *testing.T) {
	c, vm := guestTestVM()
	sum, err := RunGuestPhase(context.Background(), newScriptedGuest(), c, vm, guestTestOpts(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range sum.Tasks {
		if e.Task == "install the NVIDIA open driver" {
			if !strings.Contains(e.Message, "nvidia-headless-no-dkms-595-open with linux-modules-nvidia-595-open-generic and nvidia-utils-595, confirmed by dpkg-query") {
				t.Fatalf("message %q", e.Message)
			}
			return
		}
	}
	t.Fatal("no driver task")
}

// The proof that ends a deploy is one task: ok with "N/N checks passed" on a good guest;
// failed, naming each failed check, when the GPU stack is broken.
func TestProofIsOneTaskNamingTheFailedChecks(t *testing.T) {
	c, vm := guestTestVM()
	g := newScriptedGuest()
	var events []Event
	opts := guestTestOpts(t, ReporterFunc(func(e Event) {
		if e.Task == ProofTask && e.Status != "" {
			events = append(events, e)
		}
	}))
	if _, err := RunGuestPhase(context.Background(), g, c, vm, opts); err != nil {
		t.Fatalf("fresh run: %v", err)
	}
	var sum Summary
	prove := func() (VerifyReport, error) {
		p, _ := guestParams(vm, opts)
		return proveGuest(context.Background(), tasks.NewHost(g, p), vm, opts, &sum)
	}
	rep, err := prove()
	n := len(rep.Checks)
	if err != nil || n == 0 || len(events) != 1 || events[0].Status != StatusOK || events[0].Message != fmt.Sprintf("%d/%d checks passed", n, n) || sum.OK != 1 || sum.Changed != 0 {
		t.Fatalf("good guest: %v, events %+v, summary %+v", err, events, sum)
	}

	g.mu.Lock()
	delete(g.loaded, "nvidia")
	g.mu.Unlock()
	events, sum = nil, Summary{}
	rep, err = prove()
	var te *TaskError
	if !errors.As(err, &te) || te.Task != ProofTask || te.Phase != PhaseGuest || len(rep.Failed()) == 0 || sum.Failed != 1 {
		t.Fatalf("broken driver: want a failed proof task, got %v (summary %+v)", err, sum)
	}
	for _, f := range rep.Failed() {
		if !strings.Contains(te.Err.Error(), f.Name) || !strings.Contains(events[0].Message, f.Name) {
			t.Fatalf("the failure must name %q: %v / %q", f.Name, te.Err, events[0].Message)
		}
	}
}

// A service the catalog turns off is reported as a skipped task, with the reason, and not installed.
func TestDisabledServiceIsReportedSkipped(t *testing.T) {
	c, vm := guestTestVM()
	vm.Services.Ollama.Enabled = false
	g := newScriptedGuest()
	var skipped []Event
	opts := guestTestOpts(t, ReporterFunc(func(e Event) {
		if e.Status == StatusSkipped {
			skipped = append(skipped, e)
		}
	}))
	sum, err := RunGuestPhase(context.Background(), g, c, vm, opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(skipped) != 1 || skipped[0].Task != "install Ollama" || !strings.Contains(skipped[0].Message, "disabled in the catalog") {
		t.Fatalf("want one skipped 'install Ollama', got %+v", skipped)
	}
	if g.ollama || sum.Changed == 0 {
		t.Fatalf("Ollama installed although disabled (ollama=%v), recap %+v", g.ollama, sum)
	}
}

// On a converged guest the deploy's guest phase is one exec session: the facts pass also
// gathers the proof and the evidence facts, so the proof and BuildEvidence open none. A run
// that changed something observes the machine again for its proof (one more session).
func TestConvergedGuestPhaseIsOneSession(t *testing.T) {
	c, vm := guestTestVM()
	g := newScriptedGuest()
	opts := guestTestOpts(t, nil)
	sum, h, err := runGuestPhase(context.Background(), g, vm, opts, true)
	if err != nil || sum.Changed == 0 {
		t.Fatalf("fresh run: %v, %+v", err, sum)
	}
	before := g.Stats().Sessions
	rep, err := proveGuest(context.Background(), h, vm, opts, &sum)
	if err != nil || !rep.OK() || rep.Sessions != 1 || g.Stats().Sessions-before != 1 {
		t.Fatalf("proof after changes: %v, ok %v, %d sessions (want 1: the machine is observed again)", err, rep.OK(), rep.Sessions)
	}

	before = g.Stats().Sessions
	sum, h, err = runGuestPhase(context.Background(), g, vm, opts, true)
	if err != nil || sum.Changed != 0 {
		t.Fatalf("converged run: %v, %+v", err, sum)
	}
	rep, err = proveGuest(context.Background(), h, vm, opts, &sum)
	if err != nil || !rep.OK() || rep.Sessions != 0 {
		t.Fatalf("converged proof: %v, ok %v, %d sessions (want 0: the facts pass is the proof)", err, rep.OK(), rep.Sessions)
	}
	ev, err := (*Client)(nil).BuildEvidence(context.Background(), c, &DeployResult{Name: vm.Name}, rep, g)
	if err != nil || len(ev.Checks) != len(rep.Checks) {
		t.Fatalf("evidence from the proof: %v, %+v", err, ev)
	}
	if n := g.Stats().Sessions - before; n != 1 {
		t.Fatalf("a converged guest phase with its proof and evidence used %d exec sessions, want 1", n)
	}
}
