package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/fleet"
	"github.com/aimachine/aimachine/provision/pve"
)

// fleetFlags are --parallel and --fail-fast of a command over several VMs.
type fleetFlags struct {
	parallel int
	failFast bool
}

func (ff *fleetFlags) add(fs *pflag.FlagSet) {
	fs.IntVar(&ff.parallel, "parallel", fleet.DefaultParallel, "with several VMs (--vm a,b or --all): work on at most `N` at once")
	fs.BoolVar(&ff.failFast, "fail-fast", false, "with several VMs: start no further VM once one failed (those running finish)")
}

// check refuses a --parallel below 1.
func (ff fleetFlags) check() error {
	if ff.parallel < 1 {
		return usageErrorf("the default is 4", "--parallel %d: want at least 1", ff.parallel)
	}
	return nil
}

func (ff fleetFlags) options() fleet.Options {
	return fleet.Options{Parallel: ff.parallel, FailFast: ff.failFast}
}

// placeFor resolves node: auto for the VMs (provision/fleet Place) and says where each went.
func placeFor(ctx context.Context, c *provision.Client, cat *catalog.Catalog, names []string, stderr io.Writer) (*catalog.Catalog, error) {
	placed, ps, err := fleet.Place(ctx, c.API(), cat, names)
	if err != nil {
		return nil, placementError(err)
	}
	for _, p := range ps {
		if p.Auto {
			fmt.Fprintf(stderr, "placement: %s on %s (%s)\n", p.VM, p.Node, p.Why)
		}
	}
	return placed, nil
}

func placementError(err error) error {
	if errors.Is(err, fleet.ErrNoFit) {
		return &provision.TaskError{Phase: provision.PhaseInfra, Task: "place the VMs (node: auto)", Err: err,
			Hint: "free a device of the mapping (stop a VM holding it and clear its onboot), add a device or node to the mapping, or lower the VM's cores/memory; nothing was created or changed"}
	}
	return err
}

// selectVMs loads the catalog's selection for --vm a,b / --all.
func selectVMs(cat *catalog.Catalog, f *infraFlags) ([]string, error) {
	names, err := fleet.Select(cat, f.vm, f.all)
	if err != nil {
		return nil, &usageError{msg: err.Error(), hint: "aimachine catalog validate lists the VMs"}
	}
	return names, nil
}

// runFleetDeploy deploys several VMs: placement first, then at most --parallel deploys at
// once, each line of progress prefixed with its VM, then the recap table on stdout.
func runFleetDeploy(ctx context.Context, f *deployFlags, stdout, stderr io.Writer) int {
	start := time.Now()
	cat, c, _, err := connect(ctx, &f.infraFlags, stderr)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	names, err := selectVMs(cat, &f.infraFlags)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	placed, err := placeFor(ctx, c, cat, names, stderr)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	fmt.Fprintf(stderr, "deploy %d VMs, at most %d at a time: reports in %s\n", len(names), f.fleet.parallel, f.reports)
	lines := fleet.NewLines(stderr, names)
	rs := fleet.Run(ctx, names, f.fleet.options(), func(ctx context.Context, vm string) fleet.Result {
		w := lines.For(vm)
		rep := &renderer{w: w, verbose: f.verbose, style: styleFor(stderr)}
		res, err := c.Deploy(ctx, placed, vm, f.options(rep))
		if err == nil && res != nil && res.GuestPhase {
			writeEvidence(ctx, c, placed, res, f.reports, w)
		}
		if res != nil && res.Runner != nil {
			_ = res.Runner.Close()
		}
		r := fleet.Result{Err: err}
		if vmc, e := placed.VM(vm); e == nil {
			r.Node = vmc.Node
		}
		if res != nil {
			r.Node, r.Changed = res.Node, res.Summary.Changed
			if res.RolledBack {
				r.Result = "rolled back"
			}
		}
		if err != nil {
			rep.fail(ctx, err)
			if r.Result == "" {
				r.Result = "failed"
			}
		}
		return r
	})
	return fleetRecap(f.json, "deploy", rs, start, stdout)
}

// fleetRecap prints the table (or JSON) and returns 1 when a VM failed.
func fleetRecap(asJSON bool, verb string, rs []fleet.Result, start time.Time, stdout io.Writer) int {
	if asJSON {
		out := jsonFleet{Type: "fleet", Command: verb, OK: fleet.Failures(rs) == 0, Results: []jsonFleetResult{}}
		for _, r := range rs {
			jr := jsonFleetResult{VM: r.VM, Node: r.Node, Result: r.Result, Changed: r.Changed, Seconds: r.Took.Seconds()}
			if r.Err != nil {
				jr.Error = errorJSON(r.Err)
			}
			out.Results = append(out.Results, jr)
		}
		writeJSON(stdout, out)
	} else {
		fleet.Table(stdout, rs, time.Since(start))
	}
	if fleet.Failures(rs) > 0 {
		return 1
	}
	return 0
}

// jsonFleet is the result of a command over several VMs with --json.
type jsonFleet struct {
	Type    string            `json:"type"` // "fleet"
	Command string            `json:"command"`
	OK      bool              `json:"ok"`
	Results []jsonFleetResult `json:"results"`
}

type jsonFleetResult struct {
	VM      string     `json:"vm"`
	Node    string     `json:"node,omitempty"`
	Result  string     `json:"result"`
	Changed int        `json:"changed"`
	Seconds float64    `json:"seconds"`
	Error   *jsonError `json:"error,omitempty"`
}

// runFleetPlan plans several VMs one after the other (reads only), placement included.
func runFleetPlan(ctx context.Context, f *planFlags, stdout, stderr io.Writer) int {
	cat, c, _, err := connect(ctx, &f.infraFlags, stderr)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	names, err := selectVMs(cat, &f.infraFlags)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	placed, ps, err := fleet.Place(ctx, c.API(), cat, names)
	if err != nil {
		return fail(ctx, stderr, placementError(err))
	}
	code, changes := 0, 0
	var plans []jsonPlan
	for i, vm := range names {
		if !f.json {
			fmt.Fprintf(stdout, "── %s ──\n", vm)
			if ps[i].Auto {
				fmt.Fprintf(stdout, "placement: %s\n", ps[i].Why)
			}
		}
		p, err := c.Plan(ctx, placed, vm)
		if err != nil {
			printErr(stderr, fmt.Errorf("%s: %w", vm, err))
			code = 1
			plans = append(plans, jsonPlan{VM: vm, Error: errorJSON(err), Infrastructure: []jsonPlanAction{}})
			continue
		}
		var gp *provision.GuestPlan
		if !f.infraOnly {
			gp, err = c.PlanGuest(ctx, placed, p, provision.SSHOptions{KnownHostsFile: f.h.knownHosts, KeyFile: f.h.sshKey, Jump: f.h.jump},
				provision.GuestOptions{Getenv: getenv})
			if err != nil {
				printErr(stderr, fmt.Errorf("%s: %w", vm, err))
				code = 1
				continue
			}
		}
		changes += p.Changes() + gp.Changes()
		if slices.ContainsFunc(p.Actions, func(a provision.Action) bool { return a.Kind == provision.ActionRefuse }) || p.Preflight != nil || gp.Failed() > 0 {
			code = 1
		}
		if f.json {
			jp := planJSON(p, gp)
			if ps[i].Auto {
				jp.Placement = ps[i].Why
			}
			plans = append(plans, jp)
		} else {
			printPlan(stdout, p, gp, styleFor(stdout))
			if p.Preflight != nil {
				fmt.Fprintln(stdout)
			}
		}
	}
	if f.json {
		writeJSON(stdout, plans)
	} else {
		fmt.Fprintf(stdout, "\n%d VMs: %d to change\n", len(names), changes)
	}
	if code == 0 && f.detailed && changes > 0 {
		return 2
	}
	return code
}

// runFleetVerify proves several VMs at once (read-only SSH), then the recap table.
func runFleetVerify(ctx context.Context, f infraFlags, h hostFlags, ff fleetFlags, asJSON bool, stdout, stderr io.Writer) int {
	start := time.Now()
	cat, err := catalog.LoadValid(f.catalog)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	names, err := selectVMs(cat, &f)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	lines := fleet.NewLines(stderr, names)
	rs := fleet.Run(ctx, names, ff.options(), func(ctx context.Context, vm string) fleet.Result {
		w := lines.For(vm)
		rep, err := provision.Verify(ctx, cat, vm, h.options())
		if err == nil && !rep.OK() {
			err = fmt.Errorf("%d of %d checks failed", len(rep.Failed()), len(rep.Checks))
			for _, c := range rep.Failed() {
				fmt.Fprintf(w, "%s %s: %s\n", styleFor(stderr).failed(), c.Name, c.Evidence)
			}
		}
		if err != nil {
			printErr(w, err)
			return fleet.Result{Err: err}
		}
		fmt.Fprintf(w, "%s all %d checks passed\n", styleFor(stderr).ok(), len(rep.Checks))
		return fleet.Result{}
	})
	return fleetRecap(asJSON, "verify", rs, start, stdout)
}

// runFleetDestroy deletes several VMs. With --all a VM that does not carry the ownership tag
// is left alone and reported as kept (it is not an error); absent VMs are "absent".
func runFleetDestroy(ctx context.Context, f *infraFlags, ff fleetFlags, knownHosts string, lease provision.LeaseOptions, stdout, stderr io.Writer) int {
	start := time.Now()
	cat, c, _, err := connect(ctx, f, stderr)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	names, err := selectVMs(cat, f)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	located, where, err := locate(ctx, c.API(), cat)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	lines := fleet.NewLines(stderr, names)
	rs := fleet.Run(ctx, names, ff.options(), func(ctx context.Context, vm string) fleet.Result {
		w := lines.For(vm)
		v, _ := located.VM(vm)
		node, exists := where[v.ID]
		if !exists {
			fmt.Fprintf(w, "✓ VM %d does not exist: nothing to delete\n", v.ID)
			return fleet.Result{Result: "absent"}
		}
		if f.all {
			cfg, err := c.API().VMConfig(ctx, node, v.ID)
			if err != nil {
				printErr(w, err)
				return fleet.Result{Node: node, Err: err}
			}
			if !slices.Contains(splitTagList(cfg["tags"]), provision.OwnerTag) {
				fmt.Fprintf(w, "↷ VM %d (%q) is not managed by aimachine (no %q tag): kept\n", v.ID, cfg["name"], provision.OwnerTag)
				return fleet.Result{Node: node, Result: "kept (not ours)"}
			}
		}
		rep := &renderer{w: w, verbose: f.verbose, style: styleFor(stderr)}
		res, err := c.Destroy(ctx, located, vm, provision.DestroyOptions{Reporter: rep, KnownHostsFile: knownHosts, Lease: lease})
		if err != nil {
			rep.fail(ctx, err)
			return fleet.Result{Node: node, Err: err}
		}
		r := fleet.Result{Node: node, Result: "deleted", Changed: res.Summary.Changed}
		if !res.Deleted {
			r.Result = "absent"
		}
		return r
	})
	return fleetRecap(false, "destroy", rs, start, stdout)
}

// locate gives node: auto VMs the node they exist on (reads /cluster/resources) and returns
// the ids that exist with their node. A node: auto VM that does not exist gets the first
// catalog node: the commands that use locate only read or delete what exists.
func locate(ctx context.Context, api pve.API, cat *catalog.Catalog) (*catalog.Catalog, map[int]string, error) {
	vms, err := api.Resources(ctx, "vm")
	if err != nil {
		return nil, nil, err
	}
	where := map[int]string{}
	for _, v := range vms {
		if v.Type == "qemu" {
			where[v.VMID] = v.Node
		}
	}
	out := *cat
	out.VMs = slices.Clone(cat.VMs)
	for i := range out.VMs {
		if out.VMs[i].Node != catalog.NodeAuto {
			continue
		}
		if n, ok := where[out.VMs[i].ID]; ok {
			out.VMs[i].Node = n
		} else if len(cat.Nodes) > 0 {
			out.VMs[i].Node = cat.Nodes[0].Name
		}
	}
	return &out, where, nil
}

// splitTagList splits a PVE tags value (";", ",", " " separated).
func splitTagList(v string) []string {
	var out []string
	cur := ""
	for _, r := range v {
		if r == ';' || r == ',' || r == ' ' {
			if cur != "" {
				out = append(out, cur)
			}
			cur = ""
			continue
		}
		cur += string(r)
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}
