//go:build reliability

package reliability

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/fakes/guest"
	"github.com/aimachine/aimachine/fakes/pve"
	"github.com/aimachine/aimachine/internal/toxic"
)

// State of VM 140 after the faulty run.
const (
	stateNone = "none" // no VM 140: never created, or rolled back
	stateKept = "kept" // VM 140 exists (it existed before, or a guest-phase failure keeps it)
)

// faultRow is one fault of the matrix: inject, run deploy, check exit code, message and the
// state left, clear the fault, then a re-run must converge and verify with nothing leaked.
type faultRow struct {
	name string
	// existing: VM 140 is deployed before the fault (the fault hits a re-run).
	existing bool
	inject   func(t *testing.T, h *harness)
	// clear undoes the fault (nil: it cleared itself, e.g. a counted fault).
	clear func(t *testing.T, h *harness)
	args  []string
	code  int
	// msg are substrings of stderr: what failed and why.
	msg []string
	// hint: stderr says what to do ("hint:").
	hint  bool
	state string
	// scale is the simulator's time scale (0: instant) for faults that last a simulated time.
	scale float64
	// logs are substrings of stderr of a run that succeeded anyway (the fault was handled).
	logs []string
	// served is how many injected API faults the simulator must have answered (the fault was met).
	served int
}

func api(r pve.FaultRule) func(*testing.T, *harness) {
	return func(t *testing.T, h *harness) { h.s.API().FailNext(r) }
}

func task(typ, exit string, n int) func(*testing.T, *harness) {
	return func(t *testing.T, h *harness) {
		h.s.API().FailTask(pve.TaskFault{Type: typ, ExitStatus: exit, Count: n})
	}
}

func gfault(f guest.Fault) func(*testing.T, *harness) {
	return func(t *testing.T, h *harness) {
		if _, err := h.s.Guests().InjectFault(f); err != nil {
			t.Fatal(err)
		}
	}
}

func clearGuest(t *testing.T, h *harness) { h.s.Guests().ClearFaults("") }

func clearAPI(t *testing.T, h *harness) { h.s.API().ClearFaults() }

func toxAPI(tx toxic.Toxic) func(*testing.T, *harness) {
	return func(t *testing.T, h *harness) {
		if err := h.api.Add(tx); err != nil {
			t.Fatal(err)
		}
	}
}

func toxJump(tx toxic.Toxic) func(*testing.T, *harness) {
	return func(t *testing.T, h *harness) {
		if err := h.jump.Add(tx); err != nil {
			t.Fatal(err)
		}
	}
}

func clearToxics(t *testing.T, h *harness) { h.api.Clear(); h.jump.Clear() }

func must(err error) func(t *testing.T) {
	return func(t *testing.T) {
		if err != nil {
			t.Fatal(err)
		}
	}
}

var gpu = pve.DefaultGPUID

// withVLLM turns vLLM on for VM 140 in the test catalog.
func withVLLM(s string) string {
	return strings.Replace(s, "    tags: [gpu, llm]\n", `    services:
      vllm:
        enabled: true
        version: "0.28.0"
        model: Qwen/Qwen2.5-3B-Instruct
        max_model_len: 8192
    tags: [gpu, llm]
`, 1)
}

// faultMatrix is the table RELIABILITY.md lists, row for row.
var faultMatrix = []faultRow{
	// --- Proxmox API answers (fakes/pve FailNext) ---
	{name: "api-500-got-timeout-once", inject: api(pve.FaultRule{Method: "GET", Path: "/cluster/resources", Status: 500, Reason: "got timeout"}), code: 0, served: 1},
	{name: "api-596-on-create", inject: api(pve.FaultRule{Method: "POST", Path: "/nodes/*/qemu", Status: 596, Reason: "Connection timed out"}), code: 0, served: 1},
	{name: "api-reset-on-start", inject: api(pve.FaultRule{Method: "POST", Path: "/nodes/*/qemu/*/status/start", Reset: true}), code: 0, served: 1},
	{name: "api-503-three-times", inject: api(pve.FaultRule{Path: "/nodes/*/qemu/*/config", Status: 503, Reason: "Service Unavailable", Count: 3}), code: 0, served: 3},
	{name: "api-401", inject: api(pve.FaultRule{Method: "GET", Path: "/cluster/resources", Status: 401, Count: 50}), clear: clearAPI,
		code: 1, msg: []string{"authentication failed"}, hint: true, state: stateNone},
	{name: "api-503-persistent", inject: api(pve.FaultRule{Method: "GET", Path: "/cluster/resources", Status: 503, Reason: "Service Unavailable", Count: 1000}), clear: clearAPI,
		code: 1, msg: []string{"look up VM 140", "503"}, hint: true, state: stateNone},
	{name: "api-latency", inject: func(t *testing.T, h *harness) { h.s.API().SetLatency(20 * time.Millisecond) }, clear: clearAPI, code: 0},
	{name: "api-500-on-lease-write", existing: true, inject: api(pve.FaultRule{Method: "PUT", Path: "/nodes/*/qemu/*/config", Status: 500, Reason: "got timeout"}), code: 0, served: 1},

	// --- PVE tasks (fakes/pve FailTask) ---
	{name: "task-qmcreate-fails", inject: task("qmcreate", "unable to create VM 140 - got timeout", 1),
		code: 1, msg: []string{"create VM 140", "qmcreate", "got timeout"}, state: stateNone},
	{name: "task-qmstart-fails", inject: task("qmstart", "start failed: QEMU exited with code 1", 1),
		code: 1, msg: []string{"start VM 140", "QEMU exited with code 1", "rolled back"}, state: stateNone},
	{name: "task-resize-fails", inject: task("resize", "zfs error: out of space", 1),
		code: 1, msg: []string{"resize scsi0 of VM 140", "out of space", "rolled back"}, state: stateNone},
	{name: "task-qmconfig-fails-on-converge", existing: true,
		inject: func(t *testing.T, h *harness) {
			// Drift (cores) so that the re-run posts a config change, and that task fails.
			h.s.API().FailTask(pve.TaskFault{Type: "qmconfig", ExitStatus: "unable to parse value of 'cores'"})
			h.catalog = h.writeCatalog("drift.yml", func(s string) string { return strings.Replace(s, "cores: 32", "cores: 30", 1) })
		},
		clear: func(t *testing.T, h *harness) { h.catalog = h.writeCatalog("catalog.yml", nil) },
		code:  1, msg: []string{"configure VM 140", "qmconfig"}, state: stateKept},

	// --- PCI, IOMMU, QEMU, locks (fakes/pve control) ---
	{name: "gpu-busy-before-preflight", inject: func(t *testing.T, h *harness) { must(h.s.API().MarkPCIBusy("pve", gpu, 141))(t) },
		clear: func(t *testing.T, h *harness) { h.s.API().ReleasePCI("pve", gpu) },
		code:  1, msg: []string{"preflight", "141"}, hint: true, state: stateNone},
	{name: "gpu-taken-after-preflight", inject: func(t *testing.T, h *harness) { must(h.s.API().MarkPCIBusyAfter("pve", gpu, 141, "qmcreate"))(t) },
		// VM 141 started and holds the GPU: the fault clears when it is stopped.
		clear: func(t *testing.T, h *harness) { must(h.s.API().KillQEMU(141))(t) },
		code:  1, msg: []string{"start VM 140", "141", "rolled back"}, hint: true, state: stateNone},
	{name: "vfio-bind-fails", inject: func(t *testing.T, h *harness) { must(h.s.API().SetPCIFault("pve", gpu, pve.PCIFaultVFIOBind))(t) },
		clear: func(t *testing.T, h *harness) { must(h.s.API().SetPCIFault("pve", gpu, ""))(t) },
		code:  1, msg: []string{"start VM 140", "VFIO", "rolled back"}, state: stateNone},
	{name: "iommu-off", inject: func(t *testing.T, h *harness) { must(h.s.API().SetIOMMU("pve", false))(t) },
		clear: func(t *testing.T, h *harness) { must(h.s.API().SetIOMMU("pve", true))(t) },
		code:  1, msg: []string{"preflight", "IOMMU"}, hint: true, state: stateNone},
	{name: "kvm-start-timeout", inject: func(t *testing.T, h *harness) { must(h.s.API().SetVMFault(140, pve.VMFaultKVMTimeout))(t) },
		code: 1, msg: []string{"start VM 140", "got timeout", "rolled back"}, state: stateNone},
	{name: "qemu-killed-after-deploy", existing: true, inject: func(t *testing.T, h *harness) { must(h.s.API().KillQEMU(140))(t) }, code: 0},
	{name: "vm-locked-backup", existing: true, args: []string{"--timeout", "1s"},
		inject: func(t *testing.T, h *harness) { must(h.s.API().SetLock(140, "backup"))(t) },
		clear:  func(t *testing.T, h *harness) { must(h.s.API().SetLock(140, ""))(t) },
		code:   1, msg: []string{"take the run lease on VM 140", "locked (backup)"}, hint: true, state: stateKept},
	{name: "leftover-lock-create", existing: true, args: []string{"--timeout", "1s"},
		inject: func(t *testing.T, h *harness) { must(h.s.API().SetLock(140, "create"))(t) },
		clear:  func(t *testing.T, h *harness) { must(h.s.API().SetLock(140, ""))(t) },
		code:   1, msg: []string{"locked (create)", "no create finished"}, hint: true, state: stateKept},
	{name: "gpu-busy-on-restart-of-stopped-vm", existing: true,
		inject: func(t *testing.T, h *harness) {
			must(h.s.API().KillQEMU(140))(t)
			h.s.API().ReleasePCI("pve", gpu)
			must(h.s.API().MarkPCIBusy("pve", gpu, 141))(t)
		},
		clear: func(t *testing.T, h *harness) { h.s.API().ReleasePCI("pve", gpu) },
		code:  1, msg: []string{"141"}, hint: true, state: stateKept},

	// --- the guest (fakes/guest faults) ---
	{name: "guest-agent-never-starts", args: []string{"--timeout", "2s"}, inject: gfault(guest.Fault{Kind: guest.FaultAgentNeverStarts}), clear: clearGuest,
		code: 1, msg: []string{"wait for the guest agent of VM 140", "rolled back"}, hint: true, state: stateNone},
	{name: "guest-slow-boot", inject: gfault(guest.Fault{Kind: guest.FaultSlowBoot, Duration: "3m"}), clear: clearGuest, code: 0},
	{name: "cloud-init-degraded", inject: gfault(guest.Fault{Kind: guest.FaultCloudInitDegraded}), clear: clearGuest, code: 0},
	{name: "cloud-init-crash", inject: gfault(guest.Fault{Kind: guest.FaultCloudInitCrash}), clear: clearGuest,
		code: 1, msg: []string{"wait for cloud-init in VM 140", "exited 1", "rolled back"}, hint: true, state: stateNone},
	// On a deployed VM that lost a base package: the re-run's apt waits for the lock that
	// unattended-upgrades holds (2 simulated minutes), then installs.
	{name: "dpkg-lock-held", scale: 0.01, existing: true, inject: func(t *testing.T, h *harness) {
		ctx := context.Background()
		if r, err := h.s.Control().GuestExec(ctx, 140, "root", "apt-get remove -y zstd"); err != nil || r.ExitCode != 0 {
			t.Fatalf("remove zstd: %+v %v", r, err)
		}
		gfault(guest.Fault{Kind: guest.FaultDpkgLock, VMID: 140, Duration: "2m"})(t, h)
	}, code: 0, logs: []string{"waiting for the apt/dpkg lock"}},
	{name: "apt-404-driver", inject: gfault(guest.Fault{Kind: guest.FaultApt404, Pattern: "nvidia-utils-*"}), clear: clearGuest,
		code: 1, msg: []string{"404"}, state: stateKept},
	{name: "apt-404-update", inject: gfault(guest.Fault{Kind: guest.FaultApt404, Pattern: "update"}), clear: clearGuest,
		code: 1, msg: []string{"404"}, state: stateKept},
	{name: "driver-conflict", inject: gfault(guest.Fault{Kind: guest.FaultDriverConflict}), clear: clearGuest,
		code: 1, msg: []string{"NVIDIA"}, state: stateKept},
	{name: "no-prebuilt-modules", inject: gfault(guest.Fault{Kind: guest.FaultNoPrebuiltModules}), clear: clearGuest, code: 0},
	{name: "dkms-build-fails", inject: func(t *testing.T, h *harness) {
		gfault(guest.Fault{Kind: guest.FaultNoPrebuiltModules})(t, h)
		gfault(guest.Fault{Kind: guest.FaultDKMSBuild})(t, h)
	}, clear: clearGuest, code: 1, msg: []string{"DKMS"}, state: stateKept},
	{name: "missing-kernel-headers", inject: func(t *testing.T, h *harness) {
		gfault(guest.Fault{Kind: guest.FaultNoPrebuiltModules})(t, h)
		gfault(guest.Fault{Kind: guest.FaultMissingHeaders})(t, h)
	}, clear: clearGuest, code: 1, msg: []string{"headers"}, state: stateKept},
	{name: "secure-boot", inject: gfault(guest.Fault{Kind: guest.FaultSecureBoot}), clear: clearGuest, code: 0},
	{name: "vllm-out-of-memory", inject: func(t *testing.T, h *harness) {
		h.catalog = h.writeCatalog("vllm.yml", withVLLM)
		gfault(guest.Fault{Kind: guest.FaultVLLMOOM})(t, h)
	}, clear: clearGuest, code: 1, msg: []string{"wait for vLLM to serve", "memory"}, hint: true, state: stateKept},
	{name: "ssh-drop-once", inject: gfault(guest.Fault{Kind: guest.FaultSSHDrop, Pattern: "apt-get", Count: 1}), code: 0},

	// --- the network (toxiproxy in front of the API and the jump host) ---
	{name: "net-api-latency", inject: toxAPI(toxic.Latency(15, 5)), clear: clearToxics, code: 0},
	{name: "net-api-slicer", inject: toxAPI(toxic.Slicer(64, 32, 50)), clear: clearToxics, code: 0},
	{name: "net-api-bandwidth", inject: toxAPI(toxic.Bandwidth(64)), clear: clearToxics, code: 0},
	{name: "net-api-reset-peer", args: []string{"--timeout", "2s"}, inject: toxAPI(toxic.ResetPeer(0)), clear: clearToxics,
		code: 1, msg: []string{"connection reset"}, hint: true, state: stateNone},
	// The login's answer cut off on every connection: retried (transient), then given up.
	{name: "net-api-cut-login-response", inject: toxAPI(toxic.CutAfter(1500)), clear: clearToxics,
		code: 1, msg: []string{"log in as root@pam", "unexpected EOF"}, hint: true, state: stateNone},
	// Every connection cut after 16 kB: later answers are cut mid-body and retried.
	{name: "net-api-cut-mid-response", inject: toxAPI(toxic.CutAfter(16000)), clear: clearToxics, code: 0},
	{name: "net-api-stall", args: []string{"--timeout", "2s"}, inject: toxAPI(toxic.Stall(0)), clear: clearToxics,
		code: 1, msg: []string{"log in as root@pam", "pveproxy is reachable"}, hint: true, state: stateNone},
	{name: "net-jump-latency", inject: toxJump(toxic.Latency(15, 5)), clear: clearToxics, code: 0},
	{name: "net-jump-slicer", inject: toxJump(toxic.Slicer(64, 32, 50)), clear: clearToxics, code: 0},
	{name: "net-jump-reset-peer", args: []string{"--timeout", "2s"}, inject: toxJump(toxic.ResetPeer(0)), clear: clearToxics,
		code: 1, msg: []string{"connect over SSH", "rolled back"}, state: stateNone},
	{name: "net-jump-stall", args: []string{"--timeout", "2s"}, inject: toxJump(toxic.Stall(0)), clear: clearToxics,
		code: 1, msg: []string{"connect over SSH", "rolled back"}, state: stateNone},
	// The login's connection reset once: retried like every later call, succeeds.
	{name: "api-reset-on-login-once", inject: api(pve.FaultRule{Method: "POST", Path: "/access/ticket", Reset: true}), code: 0, served: 1},
}

func TestFaultMatrix(t *testing.T) {
	if len(faultMatrix) < 30 {
		t.Fatalf("the matrix has %d rows, want at least 30", len(faultMatrix))
	}
	for _, row := range faultMatrix {
		t.Run(row.name, func(t *testing.T) {
			h := newHarness(t, hopts{proxied: true, scale: row.scale})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if row.existing {
				if r := h.deploy(ctx); r.code != 0 {
					t.Fatalf("deploy before the fault:\n%s", r)
				}
			}
			row.inject(t, h)
			r := h.deploy(ctx, row.args...)
			if r.code != row.code {
				t.Fatalf("exit %d, want %d:\n%s", r.code, row.code, r)
			}
			if got := h.s.API().Stats().Faults; got < row.served {
				t.Errorf("the simulator served %d injected API faults, want %d: the fault was never met", got, row.served)
			}
			for _, m := range row.logs {
				if !strings.Contains(r.stderr, m) {
					t.Errorf("stderr lacks %q (the fault was not met):\n%s", m, r)
				}
			}
			if r.code != 0 {
				if !strings.Contains(r.stderr, "✗ ") {
					t.Errorf("no ✗ line names the failed task:\n%s", r)
				}
				for _, m := range row.msg {
					if !strings.Contains(r.stderr, m) {
						t.Errorf("stderr lacks %q:\n%s", m, r)
					}
				}
				if row.hint && !strings.Contains(r.stderr, "hint:") {
					t.Errorf("stderr gives no hint:\n%s", r)
				}
				switch v := h.vm(140); row.state {
				case stateNone:
					if v != nil {
						t.Errorf("VM 140 left behind: %s %v", v.Status, v.Config["lock"])
					}
				case stateKept:
					if v == nil {
						t.Errorf("VM 140 is gone, want it kept")
					}
				}
				if strings.Contains(r.stderr, "rollback of VM 140 failed") {
					t.Errorf("the rollback failed:\n%s", r)
				}
			}
			if row.clear != nil {
				row.clear(t, h)
			}
			h.checkClean(t)
			h.converges(t, ctx)
		})
	}
}

// TestReliabilityDocListsEveryRow: RELIABILITY.md's matrix and faultMatrix name the same rows.
func TestReliabilityDocListsEveryRow(t *testing.T) {
	data, err := os.ReadFile("../../../RELIABILITY.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| \\d+ \\|.*\\| `([a-z0-9-]+)` \\|$").FindAllStringSubmatch(string(data), -1) {
		doc[m[1]] = true
	}
	rows := map[string]bool{}
	for _, r := range faultMatrix {
		rows[r.name] = true
		if !doc[r.name] {
			t.Errorf("row %s is not in RELIABILITY.md", r.name)
		}
	}
	for n := range doc {
		if !rows[n] {
			t.Errorf("RELIABILITY.md lists %s, which is not a row of the matrix", n)
		}
	}
	if len(doc) < 30 {
		t.Errorf("RELIABILITY.md lists %d faults, want at least 30", len(doc))
	}
}
