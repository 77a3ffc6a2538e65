package steps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/fakes/simclient"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/fleet"
)

// fleetState is the World's part for features/fleet.feature: the steps do what `aimachine
// deploy --all` and `aimachine destroy --all --yes` do (cmd/aimachine/fleet.go), with the same
// provision/fleet calls: Place, then Run over provision's Deploy / Destroy.
type fleetState struct {
	fcat      *catalog.Catalog
	fplaced   []fleet.Placement
	fresults  []fleet.Result
	fmark     simclient.APIStats
	fdeployed int
}

// Paths of the fleet topology and catalog, from this file (the suite runs from the repository root).
func repoFile(rel string) string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", rel)
}

func (w *World) registerFleetSteps(sc *godog.ScenarioContext) {
	sc.Given(`^a four-node cluster with eight GPUs of two models and a VM that is not ours$`, w.aFourNodeCluster)
	sc.Given(`^the fleet catalog with eight GPU VMs whose node is chosen by the tool$`, w.theFleetCatalog)
	sc.Given(`^the QEMU of VM (\d+) will not come up$`, w.theQEMUWillNotComeUp)
	sc.When(`^the administrator deploys every VM of the fleet catalog in one command$`, w.deployTheFleet)
	sc.When(`^the administrator deploys every VM of the fleet catalog again$`, w.deployTheFleetAgain)
	sc.Then(`^all eight VMs are deployed and reported, two on each node$`, w.allEightDeployed)
	sc.Then(`^no GPU is given to two VMs$`, w.noGPUTwice)
	sc.Then(`^the status of every VM of the fleet is healthy$`, w.fleetHealthy)
	sc.Then(`^the re-run changed no VM and made no changing API call besides the run leases$`, w.fleetReRunChangedNothing)
	sc.Then(`^the deployment reports VM (\d+) failed and rolled back, and the other seven deployed$`, w.oneFailedSevenDeployed)
	sc.When(`^the administrator destroys every VM of the fleet catalog with --yes$`, w.destroyTheFleet)
	sc.Then(`^only the VM that is not ours is left on the cluster$`, w.onlyTheirsLeft)
}

func (w *World) aFourNodeCluster(ctx context.Context) error {
	if !w.t.simulated() {
		return errNoSimulator
	}
	// The topology file goes to the control API as it is (a user of the simulator has the file
	// and the control API, nothing else: fence_test.go).
	data, err := os.ReadFile(repoFile("fakes/sim/testdata/fleet-topology.yaml"))
	if err != nil {
		return err
	}
	return w.t.sim.Control().ResetTopology(ctx, data)
}

func (w *World) theFleetCatalog() error {
	data, err := os.ReadFile(repoFile("catalog/testdata/valid-fleet.yaml"))
	if err != nil {
		return err
	}
	cat, err := catalog.Parse(data, "catalog/testdata/valid-fleet.yaml")
	if err == nil {
		err = cat.Validate()
	}
	if err != nil {
		return err
	}
	// As for the sample catalog: the simulator's guests accept the tool key it generated.
	for i := range cat.VMs {
		cat.VMs[i].CloudInit.SSHKeys = []catalog.SSHKey{{Key: w.t.endpoint().SSHPublicKey}}
		if cat.VMs[i].Node != catalog.NodeAuto {
			return fmt.Errorf("%s: node %q, want auto", cat.VMs[i].Name, cat.VMs[i].Node)
		}
	}
	w.fcat = cat
	return nil
}

func (w *World) theQEMUWillNotComeUp(ctx context.Context, vmid int) error {
	return w.t.sim.Control().SetVMFault(ctx, vmid, "kvm-timeout")
}

// deployTheFleet is `aimachine deploy --all`: placement, then at most four deploys at once.
func (w *World) deployTheFleet(ctx context.Context) error {
	names, err := fleet.Select(w.fcat, "", true)
	if err != nil {
		return err
	}
	placed, ps, err := fleet.Place(ctx, w.client.API(), w.fcat, names)
	if err != nil {
		return err
	}
	w.fplaced = ps
	for _, p := range ps {
		w.logf("placement: %s on %s (%s)", p.VM, p.Node, p.Why)
	}
	w.fdeployed++
	w.fresults = fleet.Run(ctx, names, fleet.Options{Parallel: fleet.DefaultParallel}, func(ctx context.Context, vm string) fleet.Result {
		o := provision.DeployOptions{Reporter: w, SSH: w.sshOpts, AgentTimeout: 10 * time.Minute, Guest: provision.GuestOptions{ReportDir: reportsDir()}}
		res, err := w.client.Deploy(ctx, placed, vm, o)
		r := fleet.Result{Err: err}
		if res != nil {
			r.Node, r.Changed = res.Node, res.Summary.Changed
			if res.Runner != nil {
				_ = res.Runner.Close()
			}
			if res.RolledBack {
				r.Result = "rolled back"
			}
		}
		return r
	})
	var b strings.Builder
	fleet.Table(&b, w.fresults, 0)
	w.logf("fleet deploy %d:\n%s", w.fdeployed, b.String())
	return nil
}

func (w *World) deployTheFleetAgain(ctx context.Context) error {
	st, err := w.t.sim.Control().Stats(ctx)
	if err != nil {
		return err
	}
	w.fmark = st.API
	return w.deployTheFleet(ctx)
}

func (w *World) allEightDeployed() error {
	perNode := map[string]int{}
	for _, r := range w.fresults {
		if r.Err != nil {
			return fmt.Errorf("%s failed: %v", r.VM, r.Err)
		}
		perNode[r.Node]++
	}
	if len(w.fresults) != 8 || len(perNode) != 4 {
		return fmt.Errorf("%d VMs on nodes %v, want 8 on 4 nodes", len(w.fresults), perNode)
	}
	for n, c := range perNode {
		if c != 2 {
			return fmt.Errorf("node %s holds %d VMs, want 2 (nodes %v)", n, c, perNode)
		}
	}
	return nil
}

// noGPUTwice reads the simulator's PCI reservations: each of the eight VMs holds its own card.
func (w *World) noGPUTwice(ctx context.Context) error {
	var snap struct {
		Reservations map[string]int `json:"pci_reservations"`
	}
	if err := w.t.sim.Control().State(ctx, &snap); err != nil {
		return err
	}
	cards := map[int][]string{} // vmid -> "node 0000:01:00" (functions folded into their slot)
	for k, vmid := range snap.Reservations {
		node, fn, _ := strings.Cut(k, " ")
		slot := node + " " + strings.TrimSuffix(strings.TrimSuffix(fn, ".0"), ".1")
		if !slices.Contains(cards[vmid], slot) {
			cards[vmid] = append(cards[vmid], slot)
		}
	}
	holder := map[string]int{}
	for vmid, slots := range cards {
		if len(slots) != 1 {
			return fmt.Errorf("VM %d holds %v, want one card", vmid, slots)
		}
		if other, dup := holder[slots[0]]; dup {
			return fmt.Errorf("card %s is held by VM %d and VM %d", slots[0], other, vmid)
		}
		holder[slots[0]] = vmid
	}
	if len(holder) != 8 {
		return fmt.Errorf("%d cards held (%v), want 8", len(holder), holder)
	}
	return nil
}

// fleetHealthy is `aimachine status`: every VM runs, sees its card and serves vLLM and Ollama.
func (w *World) fleetHealthy(ctx context.Context) error {
	names, _ := fleet.Select(w.fcat, "", true)
	st, err := fleet.Status(ctx, w.client, w.fcat, names, fleet.StatusOptions{SSH: w.sshOpts})
	if err != nil {
		return err
	}
	for _, s := range st {
		w.logf("status %+v", s)
		if !s.Healthy() || s.VLLM != "ok" || s.Ollama != "ok" {
			return fmt.Errorf("%s is not healthy: %+v", s.VM, s)
		}
		vm, _ := w.fcat.VM(s.VM)
		if s.GPU != vm.GPU.Expect.Model {
			return fmt.Errorf("%s sees %q, want %q", s.VM, s.GPU, vm.GPU.Expect.Model)
		}
	}
	return nil
}

// fleetReRunChangedNothing: 0 changed tasks in every VM, and no mutating API call but the run
// lease's own writes (the synchronous config PUT: take and give back, two per VM; see
// changingCalls and provision/internal/lease).
func (w *World) fleetReRunChangedNothing(ctx context.Context) error {
	for _, r := range w.fresults {
		if r.Err != nil || r.Changed != 0 {
			return fmt.Errorf("re-run of %s: %d changed, %v", r.VM, r.Changed, r.Err)
		}
	}
	for _, p := range w.fplaced {
		if !p.Existing {
			return fmt.Errorf("re-run placed %s anew (%s), want it to stay where it is", p.VM, p.Why)
		}
	}
	st, err := w.t.sim.Control().Stats(ctx)
	if err != nil {
		return err
	}
	if d := changingCalls(st.API) - changingCalls(w.fmark); d != 0 {
		return fmt.Errorf("the re-run made %d changing API calls, want 0", d)
	}
	if l := st.API.ByRoute[leaseRoute] - w.fmark.ByRoute[leaseRoute]; l != 16 {
		return fmt.Errorf("the re-run made %d lease writes, want 16 (take and give back on each of 8 VMs)", l)
	}
	return nil
}

func (w *World) oneFailedSevenDeployed(vmid int) error {
	ok := 0
	for _, r := range w.fresults {
		vm, _ := w.fcat.VM(r.VM)
		switch {
		case vm.ID == vmid:
			if r.Err == nil || r.Result != "rolled back" || !strings.Contains(r.Err.Error(), "got timeout") {
				return fmt.Errorf("VM %d: %s, %v; want it failed on the start timeout and rolled back", vmid, r.Result, r.Err)
			}
		case r.Err != nil:
			return fmt.Errorf("%s failed too: %v", r.VM, r.Err)
		default:
			ok++
		}
	}
	if ok != 7 {
		return fmt.Errorf("%d VMs deployed, want 7", ok)
	}
	return nil
}

// destroyTheFleet is `aimachine destroy --all --yes` (cmd/aimachine/fleet.go runFleetDestroy):
// only VMs carrying the aimachine tag are deleted.
func (w *World) destroyTheFleet(ctx context.Context) error {
	names, _ := fleet.Select(w.fcat, "", true)
	res, err := w.client.API().Resources(ctx, "vm")
	if err != nil {
		return err
	}
	located := *w.fcat
	located.VMs = slices.Clone(w.fcat.VMs)
	for i := range located.VMs {
		located.VMs[i].Node = "pve1" // absent VMs: Destroy only looks them up
		for _, r := range res {
			if r.VMID == located.VMs[i].ID {
				located.VMs[i].Node = r.Node
			}
		}
	}
	w.fresults = fleet.Run(ctx, names, fleet.Options{}, func(ctx context.Context, vm string) fleet.Result {
		_, err := w.client.Destroy(ctx, &located, vm, provision.DestroyOptions{Reporter: w, KnownHostsFile: w.sshOpts.KnownHostsFile})
		return fleet.Result{Err: err}
	})
	return nil
}

func (w *World) onlyTheirsLeft(ctx context.Context) error {
	for _, r := range w.fresults {
		if r.Err != nil {
			return fmt.Errorf("destroy %s: %v", r.VM, r.Err)
		}
	}
	var snap struct {
		VMs []struct {
			VMID   int               `json:"vmid"`
			Config map[string]string `json:"config"`
		} `json:"vms"`
	}
	if err := w.t.sim.Control().State(ctx, &snap); err != nil {
		return err
	}
	if len(snap.VMs) != 1 || strings.Contains(snap.VMs[0].Config["tags"], provision.OwnerTag) {
		return fmt.Errorf("left on the cluster: %+v, want only the VM without the %s tag", snap.VMs, provision.OwnerTag)
	}
	return nil
}
