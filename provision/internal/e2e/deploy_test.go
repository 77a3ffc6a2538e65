package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/provision"
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

	before := s.API().Stats().Mutating
	res, err = c.Deploy(ctx, cat, "vm-llm-aimachine", o)
	if err != nil || res.Created || res.Summary.Changed != 0 {
		t.Fatalf("second deploy: %+v %v", res, err)
	}
	if d := s.API().Stats().Mutating - before; d != 0 {
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
