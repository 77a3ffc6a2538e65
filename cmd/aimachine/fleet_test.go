package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/docs/schema"
	"github.com/aimachine/aimachine/fakes/sim"
)

// onFleet starts the simulator on the four-node topology and points the CLI at it with the
// fleet catalog (catalog/testdata/valid-fleet.yaml, the simulator's key as cloud-init key).
func onFleet(t *testing.T) *sim.Sim {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{TimeScale: 0, TopologyFile: "../../fakes/sim/testdata/fleet-topology.yaml", StateDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	pointCLIAt(t, s, "../../catalog/testdata/valid-fleet.yaml", "fleet.yml")
	return s
}

func TestFleetCommands(t *testing.T) {
	s := onFleet(t)
	ctx := context.Background()
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		return code, out.String(), errb.String()
	}

	if code, _, errs := cli("deploy", "--all", "--parallel", "0"); code != 2 || !strings.Contains(errs, "--parallel 0: want at least 1") {
		t.Errorf("--parallel 0: exit %d, %s", code, errs)
	}
	if code, _, errs := cli("deploy", "--all", "gpu-5060-1"); code != 2 || !strings.Contains(errs, "--all and a VM name") {
		t.Errorf("--all with a name: exit %d, %s", code, errs)
	}
	code, out, errs := cli("plan", "--all", "--infra-only")
	if code != 0 || strings.Count(out, "placement: node: auto → ") != 8 || !strings.Contains(out, "8 VMs: 16 to change") {
		t.Fatalf("plan --all: exit %d\n%s\n%s", code, out, errs)
	}

	code, out, errs = cli("deploy", "--all", "--infra-only", "--parallel", "8")
	if code != 0 {
		t.Fatalf("deploy --all: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"VM          NODE  RESULT  CHANGED  TIME", "gpu-5060-1  pve1  ok", "gpu-4090-8  pve4  ok", "8 VMs: 8 ok, 0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("deploy recap lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "gpu-5060-3 │ ✓ ") {
		t.Errorf("progress lines do not name their VM:\n%s", errs)
	}

	code, out, errs = cli("status")
	if code != 1 || strings.Count(out, " running ") != 8 || strings.Count(out, "down  down") != 8 || !strings.Contains(out, "gpu-5060-1  201  running  pve1  192.168.0.201") {
		t.Errorf("status after an infra-only deploy (no driver, no services: not healthy): exit %d\n%s\n%s", code, out, errs)
	}

	// The run again: nothing changes, each VM stays where it is.
	before, err := s.Control().Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli("deploy", "--vm", "gpu-5060-1,gpu-4090-8", "--infra-only", "--json")
	if code != 0 || !strings.Contains(out, `"changed": 0`) || strings.Contains(out, `"changed": 1`) {
		t.Fatalf("re-run: exit %d\n%s\n%s", code, out, errs)
	}
	if err := schema.Validate("fleet-result.schema.json", []byte(out)); err != nil {
		t.Errorf("deploy --json: %v\n%s", err, out)
	}
	after, _ := s.Control().Stats(ctx)
	// Every mutating call but the run lease's own take and give-back (the synchronous config
	// PUT, the only thing aimachine sends with it: provision/internal/lease); see changing.
	lease := "PUT /nodes/{node}/qemu/{vmid}/config"
	d := (after.API.Mutating - after.API.ByRoute[lease]) - (before.API.Mutating - before.API.ByRoute[lease])
	if d != 0 {
		t.Errorf("re-run made %d changing API calls", d)
	}
	if l := after.API.ByRoute[lease] - before.API.ByRoute[lease]; l != 4 {
		t.Errorf("re-run made %d lease writes, want 4 (take and give back, two VMs)", l)
	}

	code, out, _ = cli("status", "--json")
	if err := schema.Validate("status.schema.json", []byte(out)); code != 1 || err != nil {
		t.Errorf("status --json: exit %d, %v\n%s", code, err, out)
	}

	// verify over two VMs: infrastructure only, so no driver: both fail, each on its own lines.
	code, out, errs = cli("verify", "--vm", "gpu-5060-1,gpu-4090-8")
	if code != 1 || !strings.Contains(out, "2 VMs: 0 ok, 2 failed") || !strings.Contains(errs, "gpu-4090-8 │ ✗ ") {
		t.Errorf("verify of two VMs without a driver: exit %d\n%s\n%s", code, out, errs)
	}

	// destroy --all needs --yes, then deletes our eight and keeps VM 900.
	if code, _, errs = cli("destroy", "--all"); code != 2 || !strings.Contains(errs, "needs --yes") {
		t.Fatalf("destroy --all without --yes: %d %s", code, errs)
	}
	code, out, errs = cli("destroy", "--all", "--yes")
	if code != 0 || strings.Count(out, " deleted ") != 8 {
		t.Fatalf("destroy --all --yes: exit %d\n%s\n%s", code, out, errs)
	}
	var snap struct {
		VMs []struct{ VMID int } `json:"vms"`
	}
	if err := s.Control().State(ctx, &snap); err != nil || len(snap.VMs) != 1 || snap.VMs[0].VMID != 900 {
		t.Fatalf("after destroy --all: %+v, %v", snap, err)
	}

	// One VM fails: the other is deployed, the recap names both, exit 1.
	if err := s.Control().SetVMFault(ctx, 203, "kvm-timeout"); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli("deploy", "--vm", "gpu-5060-1,gpu-5060-3", "--infra-only")
	if code != 1 || !strings.Contains(out, "gpu-5060-3  pve3  rolled back") || !strings.Contains(out, "gpu-5060-1  pve1  ok") || !strings.Contains(out, "2 VMs: 1 ok, 1 failed") {
		t.Errorf("deploy with one failing VM: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "gpu-5060-3 │ ✗ ") {
		t.Errorf("the failure is not reported on the VM's lines:\n%s", errs)
	}
}
