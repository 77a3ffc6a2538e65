package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/pve"
)

// startSim starts the simulator (instant time) and returns it with a client connected
// through the env file's variables, exactly as the CLI would.
func startSim(t *testing.T) (*sim.Sim, *provision.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{TimeScale: 0})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	env := s.Info().Env()
	o, err := provision.ConnOptionsFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !o.Simulator {
		t.Fatal("the simulator's env must set AIMACHINE_SIMULATOR=1")
	}
	c, err := provision.Connect(ctx, o)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return s, c
}

// testCatalog is the test catalog with the simulator's tool key as the cloud-init key.
func testCatalog(t *testing.T, e sim.Endpoint) *catalog.Catalog {
	t.Helper()
	data, err := os.ReadFile("../../testdata/catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data),
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyBEct9p+/3BQlA0E/FkkGXIOT1/sePYm3vsIcQTqBH aimachine-testdata", e.SSHPublicKey)
	cat, err := catalog.Parse([]byte(text), "catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Validate(); err != nil {
		t.Fatal(err)
	}
	return cat
}

func sshOptions(t *testing.T, e sim.Endpoint) provision.SSHOptions {
	// A private copy of the simulator's known_hosts (it pins the jump host).
	kh := filepath.Join(t.TempDir(), "known_hosts")
	data, err := os.ReadFile(e.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kh, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return provision.SSHOptions{KnownHostsFile: kh, KeyFile: e.SSHKeyFile, Jump: e.JumpHost(), Timeout: 20 * time.Second}
}

func TestDeployPinsTheHostKeyAndReachesTheGuestOverSSH(t *testing.T) {
	s, c := startSim(t)
	e := s.Info()
	cat := testCatalog(t, e)
	o := provision.DeployOptions{InfraOnly: true, SSH: sshOptions(t, e), AgentTimeout: 20 * time.Second, CloudInitTimeout: 20 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	res, err := c.Deploy(ctx, cat, "vm-llm-aimachine", o)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if !res.Created || !res.SSH.LoopbackOnly || res.SSH.Jump == nil {
		t.Fatalf("result %+v", res)
	}
	// The key pinned through the guest agent is the one the guest's sshd presents:
	// guest.Dial refuses anything else.
	r, err := c.ConnectGuest(ctx, cat, "vm-llm-aimachine", o.SSH)
	if err != nil {
		t.Fatalf("SSH through the jump host: %v", err)
	}
	out, err := r.Run(ctx, "echo reached")
	r.Close()
	if err != nil || strings.TrimSpace(out.Stdout) != "reached" {
		t.Fatalf("command over SSH: %q %v", out.Stdout, err)
	}

	// The run lease's writes (synchronous config PUT, provision/internal/lease) are not changes.
	changing := func() int {
		st := s.API().Stats()
		return st.Mutating - st.ByRoute["PUT /nodes/{node}/qemu/{vmid}/config"]
	}
	before := changing()
	res, err = c.Deploy(ctx, cat, "vm-llm-aimachine", o)
	if err != nil || res.Created || res.Summary.Changed != 0 {
		t.Fatalf("second deploy: %+v %v", res, err)
	}
	if d := changing() - before; d != 0 {
		t.Fatalf("second deploy made %d mutating API calls", d)
	}
}

// The full deploy hands the SSH connection to the guest phase; whatever the guest phase
// does, the infrastructure part must have succeeded and its failures must be guest ones.
func TestFullDeployHandsSSHToTheGuestPhase(t *testing.T) {
	s, c := startSim(t)
	e := s.Info()
	cat := testCatalog(t, e)
	var sshOK bool
	o := provision.DeployOptions{SSH: sshOptions(t, e), AgentTimeout: 20 * time.Second, CloudInitTimeout: 20 * time.Second,
		Guest: provision.GuestOptions{ReportDir: t.TempDir()},
		Reporter: provision.ReporterFunc(func(ev provision.Event) {
			if strings.HasPrefix(ev.Task, "connect over SSH") && ev.Status == provision.StatusOK {
				sshOK = true
			}
		})}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := c.Deploy(ctx, cat, "vm-llm-aimachine", o)
	if res != nil && res.Runner != nil {
		res.Runner.Close()
	}
	if !sshOK {
		t.Fatalf("SSH was not reached: %v", err)
	}
	var te *provision.TaskError
	if err != nil && (!errors.As(err, &te) || te.Phase == provision.PhaseInfra) {
		t.Fatalf("an infrastructure failure after SSH: %v", err)
	}
	if err != nil {
		t.Logf("guest phase failed (not this package's concern): %v", err)
	} else if !res.GuestPhase {
		t.Fatal("the guest phase did not run")
	}
	if res.RolledBack || !res.Created {
		t.Fatalf("created=%v rolledBack=%v: guest failures must keep the VM", res.Created, res.RolledBack)
	}
}

// wrongKeyCatalog is the test catalog as shipped: its cloud-init key is not the simulator's
// client key, so the guest refuses aimachine's SSH login.
func wrongKeyCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Load("../../testdata/catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// An SSH login the guest refuses right after this run created the VM is an infrastructure
// failure: the VM is rolled back (or kept with KeepOnFailure), and the hint names the key.
func TestSSHAuthFailureAfterCreateRollsBack(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "rollback", true: "keep-on-failure"}[keep], func(t *testing.T) {
			s, c := startSim(t)
			e := s.Info()
			cat := wrongKeyCatalog(t)
			o := provision.DeployOptions{SSH: sshOptions(t, e), KeepOnFailure: keep, AgentTimeout: 20 * time.Second, CloudInitTimeout: 20 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			khBefore, _ := os.ReadFile(o.SSH.KnownHostsFile)
			res, err := c.Deploy(ctx, cat, "vm-llm-aimachine", o)
			var te *provision.TaskError
			if err == nil || !errors.As(err, &te) {
				t.Fatalf("deploy with a foreign cloud-init key: %v", err)
			}
			if te.Phase != provision.PhaseInfra || !strings.HasPrefix(te.Task, "connect over SSH") ||
				!strings.Contains(te.Hint, "cloud_init.ssh_keys must contain the public key") || !strings.Contains(te.Hint, "--ssh-key") {
				t.Fatalf("want an SSH task error with the key hint, got phase=%q task=%q hint=%q", te.Phase, te.Task, te.Hint)
			}
			_, cerr := c.API().VMConfig(ctx, res.Node, 140)
			if keep {
				if cerr != nil || res.RolledBack || !strings.Contains(err.Error(), "kept") {
					t.Fatalf("KeepOnFailure: VM 140 must stay and the error say so: config err=%v rolledBack=%v: %v", cerr, res.RolledBack, err)
				}
				return
			}
			if !errors.Is(cerr, pve.ErrNotFound) || !res.RolledBack || !strings.Contains(err.Error(), "rolled back") {
				t.Fatalf("VM 140 must be gone after the rollback: config err=%v rolledBack=%v: %v", cerr, res.RolledBack, err)
			}
			// The rollback took back the host key it pinned: known_hosts is byte for byte as before.
			if khAfter, _ := os.ReadFile(o.SSH.KnownHostsFile); string(khAfter) != string(khBefore) {
				t.Fatalf("known_hosts after the rollback:\n%s\nwant as before:\n%s", khAfter, khBefore)
			}
			// The next deploy with the right key pins the new VM's key without --replace-host-key.
			o.InfraOnly = true
			if _, err := c.Deploy(ctx, testCatalog(t, e), "vm-llm-aimachine", o); err != nil {
				t.Fatalf("deploy with the right key after the rollback: %v", err)
			}
		})
	}
}

// A VM that existed before this run is never rolled back for an SSH failure; the error says so.
func TestSSHAuthFailureKeepsAnExistingVM(t *testing.T) {
	s, c := startSim(t)
	e := s.Info()
	o := provision.DeployOptions{InfraOnly: true, SSH: sshOptions(t, e), AgentTimeout: 20 * time.Second, CloudInitTimeout: 20 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Deploy(ctx, wrongKeyCatalog(t), "vm-llm-aimachine", o); err != nil {
		t.Fatalf("infra-only deploy: %v", err)
	}
	o.InfraOnly = false
	res, err := c.Deploy(ctx, wrongKeyCatalog(t), "vm-llm-aimachine", o)
	if err == nil || res.Created || res.RolledBack || !strings.Contains(err.Error(), "kept: it existed before this run") {
		t.Fatalf("want the existing VM kept and said so: %+v %v", res, err)
	}
	if _, cerr := c.API().VMConfig(ctx, res.Node, 140); cerr != nil {
		t.Fatalf("VM 140 must still exist: %v", cerr)
	}
}

// A fresh deploy ends with every proof green, reported as one task; the converged re-run
// still makes one SSH connection, changes nothing, and the proof is not a change.
func TestDeployEndsWithTheGPUProof(t *testing.T) {
	s, c := startSim(t)
	e := s.Info()
	cat := testCatalog(t, e)
	var proofs []provision.Event
	o := provision.DeployOptions{SSH: sshOptions(t, e), AgentTimeout: 20 * time.Second, CloudInitTimeout: 20 * time.Second,
		Guest: provision.GuestOptions{ReportDir: t.TempDir()},
		Reporter: provision.ReporterFunc(func(ev provision.Event) {
			if ev.Task == provision.ProofTask && ev.Status != "" {
				proofs = append(proofs, ev)
			}
		})}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := c.Deploy(ctx, cat, "vm-llm-aimachine", o)
	if res != nil && res.Runner != nil {
		res.Runner.Close()
	}
	if err != nil {
		t.Fatalf("fresh deploy: %v", err)
	}
	n := len(res.Proof.Checks)
	if len(proofs) != 1 || proofs[0].Status != provision.StatusOK || proofs[0].Message != fmt.Sprintf("%d/%d checks passed", n, n) || n == 0 || !res.Proof.OK() {
		t.Fatalf("want one green proof task, got %+v (%d checks, ok=%v)", proofs, n, res.Proof.OK())
	}

	proofs = nil
	res, err = c.Deploy(ctx, cat, "vm-llm-aimachine", o)
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	st := res.Runner.Stats()
	res.Runner.Close()
	t.Logf("converged re-run: %d changed, %d ok, SSH %+v", res.Summary.Changed, res.Summary.OK, st)
	if res.Summary.Changed != 0 || st.Connections != 1 || len(proofs) != 1 || proofs[0].Status != provision.StatusOK {
		t.Fatalf("re-run: %d changed, %d SSH connections, proof %+v", res.Summary.Changed, st.Connections, proofs)
	}
	if st.Sessions != 1 {
		t.Fatalf("converged re-run used %d SSH sessions, want 1 (the facts pass is also the proof)", st.Sessions)
	}
}

// A guest task that runs longer than the heartbeat interval reports heartbeats: elapsed time,
// and what it waits for. The simulator's time scale shrinks every simulated duration, and the
// interval shrinks with it (10s × scale), so the check counts events, it does not time them.
func TestLongGuestTasksReportHeartbeats(t *testing.T) {
	const scale = 0.01
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{TimeScale: scale})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	env := s.Info().Env()
	co, err := provision.ConnOptionsFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c, err := provision.Connect(ctx, co)
	if err != nil {
		t.Fatal(err)
	}
	e := s.Info()
	every := time.Duration(float64(provision.DefaultHeartbeat) * scale)
	var mu sync.Mutex
	var events []provision.Event
	o := provision.DeployOptions{SSH: sshOptions(t, e), Heartbeat: every, Guest: provision.GuestOptions{ReportDir: t.TempDir()},
		Reporter: provision.ReporterFunc(func(ev provision.Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		})}
	res, err := c.Deploy(ctx, testCatalog(t, e), "vm-llm-aimachine", o)
	if res != nil && res.Runner != nil {
		res.Runner.Close()
	}
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	open := map[string]bool{}
	beats := map[string]int{}
	commandNamed, limitNamed, guestLimit := false, false, false
	for _, ev := range events {
		key := ev.Phase + ": " + ev.Task
		switch {
		case ev.Heartbeat:
			if !open[key] {
				t.Errorf("heartbeat of %q outside its run", key)
			}
			guestLimit = guestLimit || (ev.Phase == provision.PhaseGuest && ev.Limit > 0)
			if ev.Elapsed < every || ev.Message == "" {
				t.Errorf("heartbeat %+v: want elapsed ≥ %s and what it waits for", ev, every)
			}
			beats[key]++
			commandNamed = commandNamed || (ev.Phase == provision.PhaseGuest && strings.Contains(ev.Message, "now running `"))
			limitNamed = limitNamed || (strings.HasPrefix(ev.Task, "wait for the guest agent") && ev.Limit == 10*time.Minute)
		case ev.Status == "":
			open[key] = true
		default:
			delete(open, key)
		}
	}
	t.Logf("heartbeats: %v", beats)
	guestBeats := 0
	for k, n := range beats {
		if strings.HasPrefix(k, provision.PhaseGuest+": ") {
			guestBeats += n
		}
	}
	if guestBeats == 0 {
		t.Fatalf("no heartbeat from a guest task (time scale %g, interval %s)", scale, every)
	}
	if !guestLimit {
		t.Error("no guest heartbeat carries the bound of its wait (the apt lock wait: 10m)")
	}
	if !commandNamed {
		t.Error("no guest heartbeat names the command it waits for")
	}
	if beats[provision.PhaseInfra+": wait for the guest agent of VM 140"] > 0 && !limitNamed {
		t.Error("the guest agent wait's heartbeats do not carry its 10m limit")
	}
}
