package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	fakepve "github.com/aimachine/aimachine/fakes/pve"
	"github.com/aimachine/aimachine/provision"
)

// TestConvergedDeployRoundTripBudget pins, with counters (never timings), what a converged
// re-run costs on the network; cmd/aimachine's BenchmarkRoundTrips (make bench) measures the
// same with latency. The API side: the three reads, the lease taken with one PUT, the config
// read again and the version read while SSH dials (both off the critical path), and the lease
// given back with one PUT at the end. The guest side: one SSH connection through the jump host
// and one exec session, which gathers the facts, the proof and the evidence. Connect with a
// password sends the login and nothing else.
func TestConvergedDeployRoundTripBudget(t *testing.T) {
	s, c := startSim(t)
	e := s.Info()
	cat := testCatalog(t, e)
	o := provision.DeployOptions{SSH: sshOptions(t, e), AgentTimeout: 20 * time.Second, CloudInitTimeout: 20 * time.Second,
		Guest: provision.GuestOptions{ReportDir: t.TempDir()}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := c.Deploy(ctx, cat, "vm-llm-aimachine", o)
	if res != nil && res.Runner != nil {
		res.Runner.Close()
	}
	if err != nil {
		t.Fatalf("fresh deploy: %v", err)
	}

	// Connect: one request (the login) with a username and password.
	env := e.Env()
	co, err := provision.ConnOptionsFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	n := len(s.API().Requests())
	if c, err = provision.Connect(ctx, co); err != nil {
		t.Fatal(err)
	}
	if got := routes(s.API().Requests()[n:]); strings.Join(got, ", ") != "POST /access/ticket" {
		t.Fatalf("Connect sent %v, want only the login", got)
	}

	jumpBefore := s.JumpStats().Connections
	n = len(s.API().Requests())
	res, err = c.Deploy(ctx, cat, "vm-llm-aimachine", o)
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	defer res.Runner.Close()
	ev, err := c.BuildEvidence(ctx, cat, res, res.Proof, res.Runner)
	if err != nil || ev.PVEVersion == "" || ev.GuestKernel == "" {
		t.Fatalf("evidence: %v %+v", err, ev)
	}
	got := routes(s.API().Requests()[n:])
	want := []string{
		// The config on the catalog's node answers whether the VM is there: no cluster listing.
		"GET /nodes/pve/qemu/140/config", "GET /nodes/pve/qemu/140/status/current",
		"PUT /nodes/pve/qemu/140/config", // take the lease (with the digest just read)
		"GET /nodes/pve/qemu/140/config", // the release's digest, read in the background
		"GET /version",                   // the evidence's, read in the background
		"PUT /nodes/pve/qemu/140/config", // give the lease back: one request
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("converged re-run and its evidence sent:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	st := res.Runner.Stats()
	if res.Summary.Changed != 0 || st.Connections != 1 || st.JumpConnections != 1 || st.Sessions != 1 || s.JumpStats().Connections-jumpBefore != 1 {
		t.Fatalf("converged re-run: %d changed, SSH %+v, jump host saw %d connections; want 0 changed, 1 connection (1 to the jump host), 1 exec session",
			res.Summary.Changed, st, s.JumpStats().Connections-jumpBefore)
	}
	if res.Proof.Sessions != 0 || !res.Proof.OK() {
		t.Fatalf("the proof opened %d sessions (want 0: the facts pass is the proof), ok=%v", res.Proof.Sessions, res.Proof.OK())
	}

	// verify: one connection, one exec session.
	vr, err := provision.Verify(ctx, cat, "vm-llm-aimachine", provision.HostOptions{KeyFile: e.SSHKeyFile, KnownHostsFile: o.SSH.KnownHostsFile, Jump: e.JumpHost(), LoopbackOnly: ptr(true)})
	if err != nil || !vr.OK() || vr.Sessions != 1 {
		t.Fatalf("verify: %v, ok=%v, %d sessions (want 1)", err, vr.OK(), vr.Sessions)
	}
}

func ptr[T any](v T) *T { return &v }

func routes(rs []fakepve.RequestRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}
