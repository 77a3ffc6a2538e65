package fleet_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/fleet"
)

// Deploy the fleet in full (guest phase included), then Status: every VM exists, runs, on
// the node placement chose, its GPU model and driver seen, vLLM and Ollama healthy, the last
// run from the reports dir; a VM not deployed reads as absent and is not probed.
func TestStatusAfterAFleetDeploy(t *testing.T) {
	s, c := startFleet(t, 0)
	ctx := context.Background()
	cat := loadFleet(t, s, nil)
	names := []string{"gpu-5060-1", "gpu-5060-2", "gpu-4090-7"}
	placed, ps, err := fleet.Place(ctx, c.API(), cat, names)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := s.Info()
	sshOpts := provision.SSHOptions{KnownHostsFile: filepath.Join(dir, "known_hosts"), KeyFile: e.SSHKeyFile, Jump: e.JumpHost()}
	copyFile(t, e.KnownHostsFile, sshOpts.KnownHostsFile)
	reports := filepath.Join(dir, "reports")
	rs := fleet.Run(ctx, names, fleet.Options{}, func(ctx context.Context, vm string) fleet.Result {
		res, err := c.Deploy(ctx, placed, vm, provision.DeployOptions{SSH: sshOpts, Guest: provision.GuestOptions{ReportDir: reports}})
		if err == nil {
			ev, eerr := c.BuildEvidence(ctx, placed, res, res.Proof, res.Runner)
			if eerr == nil {
				_, eerr = ev.Write(reports)
			}
			if eerr != nil {
				t.Errorf("evidence of %s: %v", vm, eerr)
			}
		}
		if res != nil && res.Runner != nil {
			res.Runner.Close()
		}
		return fleet.Result{Err: err}
	})
	if fleet.Failures(rs) != 0 {
		t.Fatalf("deploy: %+v", rs)
	}
	all, _ := fleet.Select(cat, "", true)
	st, err := fleet.Status(ctx, c, cat, all, fleet.StatusOptions{SSH: sshOpts, ReportDir: reports})
	if err != nil {
		t.Fatal(err)
	}
	where := map[string]string{}
	for _, p := range ps {
		where[p.VM] = p.Node
	}
	for _, x := range st {
		switch want, deployed := where[x.VM]; {
		case deployed:
			if !x.Healthy() || !x.Owned || x.Node != want || x.Driver == "" || x.VLLM != "ok" || x.Ollama != "ok" || x.LastResult != "ok" || x.LastRun == "" {
				t.Errorf("%+v: want it healthy on %s with its last run", x, want)
			}
			if (x.VM == "gpu-4090-7") != (x.GPU == "NVIDIA GeForce RTX 4090") {
				t.Errorf("%s sees GPU %q", x.VM, x.GPU)
			}
		default:
			if x.Exists || x.Running || x.GPU != "" || x.VLLM != "" {
				t.Errorf("%+v: want absent, not probed", x)
			}
		}
	}
}
