package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/fleet"
)

type planFlags struct {
	infraFlags
	h         hostFlags
	infraOnly bool
	detailed  bool
	json      bool
}

func newPlanCmd(a *app) *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan [VM] [flags]",
		Short: "show what deploy would change, on Proxmox VE and in the guest (reads only)",
		Long: `Reads the cluster and prints what deploy would do, changing nothing:

  + create    ~ change (config keys, disk growth, start)    - config key removed
  ! refused or kept as it is (a VM that is not ours, a disk larger than the catalog's)

When the VM runs and its SSH host key is pinned, plan also runs every guest task's read-only
check over SSH and lists the tasks deploy would apply (--infra-only skips that). A preflight
that deploy would fail at (GPU missing or busy, no IOMMU, ...) is shown and exits 1.

Exit status: 0 the plan can be applied, 1 an error or a plan deploy would refuse, 2 a usage
error. With --detailed-exitcode: 0 no changes, 1 an error, 2 changes (as terraform plan).
Proxmox access comes from PROXMOX_VE_*; --json prints the plan as one JSON object (docs/json.md).`,
		Example: `  aimachine plan vm-llm-aimachine
  aimachine plan vm-llm-aimachine --detailed-exitcode || [ $? -eq 2 ] && echo "changes pending"
  aimachine plan --vm 140 --json | jq '.changes.total'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.resolve(args); err != nil {
				return err
			}
			if f.multi() {
				return exitOf(runFleetPlan(cmd.Context(), &f, a.stdout, a.stderr))
			}
			return exitOf(runPlan(cmd.Context(), &f, a.stdout, a.stderr))
		},
	}
	fs := cmd.Flags()
	f.addFlags(cmd)
	f.h.addSSH(fs)
	fs.BoolVar(&f.infraOnly, "infra-only", false, "plan the infrastructure only (no SSH to the guest)")
	fs.BoolVar(&f.detailed, "detailed-exitcode", false, "exit 0 when nothing would change, 2 when something would, 1 on an error")
	fs.BoolVar(&f.json, "json", false, "print the plan as JSON on stdout (docs/json.md)")
	return cmd
}

// runPlan prints the plan on stdout.
func runPlan(ctx context.Context, f *planFlags, stdout, stderr io.Writer) int {
	var dialing *provision.GuestDial
	if !f.infraOnly {
		dialing = startGuestDial(ctx, &f.infraFlags, f.h)
		defer dialing.Close()
	}
	cat, c, _, err := connect(ctx, &f.infraFlags, stderr)
	if err != nil {
		return planFailed(ctx, f, stdout, stderr, err)
	}
	placed, ps, err := fleet.Place(ctx, c.API(), cat, []string{f.vm})
	if err != nil {
		return planFailed(ctx, f, stdout, stderr, placementError(err))
	}
	cat = placed
	p, err := c.Plan(ctx, cat, f.vm)
	if err != nil {
		return planFailed(ctx, f, stdout, stderr, err)
	}
	var gp *provision.GuestPlan
	if !f.infraOnly {
		gp, err = c.PlanGuest(ctx, cat, p, provision.SSHOptions{KnownHostsFile: f.h.knownHosts, KeyFile: f.h.sshKey, Jump: f.h.jump, Dialing: dialing},
			provision.GuestOptions{Getenv: getenv})
		if err != nil {
			return planFailed(ctx, f, stdout, stderr, err)
		}
	}
	refused := false
	for _, a := range p.Actions {
		refused = refused || a.Kind == provision.ActionRefuse
	}
	if f.json {
		jp := planJSON(p, gp)
		if ps[0].Auto {
			jp.Placement = ps[0].Why
		}
		writeJSON(stdout, jp)
	} else {
		if ps[0].Auto {
			fmt.Fprintf(stdout, "placement: %s\n", ps[0].Why)
		}
		printPlan(stdout, p, gp, styleFor(stdout))
	}
	switch {
	case refused:
		return 1
	case p.Preflight != nil:
		printErr(stderr, p.Preflight)
		return 1
	case gp.Failed() > 0:
		fmt.Fprintf(stderr, "%s %d guest %s failed: deploy would stop there\n", styleFor(stderr).failed(), gp.Failed(), plural(gp.Failed(), "check", "checks"))
		return 1
	case f.detailed && p.Changes()+gp.Changes() > 0:
		return 2
	}
	return 0
}

func planFailed(ctx context.Context, f *planFlags, stdout, stderr io.Writer, err error) int {
	if f.json {
		writeJSON(stdout, jsonPlan{VM: f.vm, Error: errorJSON(err), Infrastructure: []jsonPlanAction{}})
	}
	return fail(ctx, stderr, err)
}

// symbol is the diff mark of an action kind.
func symbol(kind string) string {
	switch kind {
	case provision.ActionCreate:
		return "+"
	case provision.ActionNone:
		return "="
	case provision.ActionRefuse, provision.ActionKeep:
		return "!"
	}
	return "~"
}

func diffSymbol(d provision.KeyDiff) string {
	switch {
	case d.Deleted:
		return "-"
	case d.Old == "":
		return "+"
	}
	return "~"
}

func printPlan(w io.Writer, p *provision.Plan, gp *provision.GuestPlan, st style) {
	paint := func(sym string) string {
		switch sym {
		case "+":
			return st.paint("32", sym)
		case "-", "!":
			return st.paint("31", sym)
		case "~":
			return st.paint("33", sym)
		}
		return sym
	}
	fmt.Fprintf(w, "VM %d %q on node %q\n\nInfrastructure:\n", p.VMID, p.VM, p.Node)
	for _, a := range p.Actions {
		fmt.Fprintf(w, "  %s %-9s %s\n", paint(symbol(a.Kind)), a.Kind, a.Summary)
		for _, d := range a.Diff {
			switch sym := diffSymbol(d); sym {
			case "-":
				fmt.Fprintf(w, "      %s %s (was %q)\n", paint(sym), d.Key, d.Old)
			case "+":
				fmt.Fprintf(w, "      %s %s = %q\n", paint(sym), d.Key, d.New)
			default:
				fmt.Fprintf(w, "      %s %s: %q → %q\n", paint(sym), d.Key, d.Old, d.New)
			}
		}
		if len(a.Pending) > 0 {
			fmt.Fprintf(w, "      pending until reboot: %s\n", strings.Join(a.Pending, ", "))
		}
	}
	if p.Preflight != nil {
		fmt.Fprintf(w, "  %s preflight would fail: %v\n", paint("!"), p.Preflight)
	}
	if gp != nil {
		fmt.Fprintln(w, "\nGuest phase:")
		switch {
		case !gp.Checked:
			fmt.Fprintf(w, "  not examined: %s\n", gp.Reason)
		default:
			for _, t := range gp.Tasks {
				why := ""
				if t.Why != "" {
					why = ": " + t.Why
				}
				switch {
				case t.Err != "":
					fmt.Fprintf(w, "  %s %s: check failed, deploy would stop here: %s\n", paint("!"), t.Task, t.Err)
				case t.Change:
					fmt.Fprintf(w, "  %s %s: not in place, deploy applies it%s\n", paint("~"), t.Task, why)
				case t.Wait:
					fmt.Fprintf(w, "  … %s: deploy would wait for it%s\n", t.Task, why)
				default:
					fmt.Fprintf(w, "  = %s%s\n", t.Task, why)
				}
			}
		}
	}
	n, g := p.Changes(), gp.Changes()
	fmt.Fprintf(w, "\n%d to change", n+g)
	if gp != nil {
		fmt.Fprintf(w, " (infrastructure %d, guest %d)", n, g)
	}
	fmt.Fprintln(w)
}

// jsonPlan is plan --json.
type jsonPlan struct {
	VM             string           `json:"vm"`
	VMID           int              `json:"vmid,omitempty"`
	Node           string           `json:"node,omitempty"`
	Placement      string           `json:"placement,omitempty"` // node: auto: the choice and why
	Exists         bool             `json:"exists"`
	Owned          bool             `json:"owned"`
	Running        bool             `json:"running"`
	Infrastructure []jsonPlanAction `json:"infrastructure"`
	Guest          *jsonGuestPlan   `json:"guest,omitempty"`
	Preflight      *jsonError       `json:"preflight_error,omitempty"`
	Changes        jsonPlanChanges  `json:"changes"`
	Error          *jsonError       `json:"error,omitempty"`
}

type jsonPlanChanges struct {
	Infrastructure int `json:"infrastructure"`
	Guest          int `json:"guest"`
	Total          int `json:"total"`
}

type jsonPlanAction struct {
	Action  string        `json:"action"`
	Symbol  string        `json:"symbol"`
	Summary string        `json:"summary"`
	Keys    []jsonKeyDiff `json:"keys,omitempty"`
	Pending []string      `json:"pending_until_reboot,omitempty"`
}

type jsonKeyDiff struct {
	Key    string `json:"key"`
	Symbol string `json:"symbol"`
	Old    string `json:"old,omitempty"`
	New    string `json:"new,omitempty"`
}

type jsonGuestPlan struct {
	Checked bool            `json:"checked"`
	Reason  string          `json:"reason,omitempty"`
	Unknown bool            `json:"unknown"`
	Tasks   []jsonGuestTask `json:"tasks"`
}

type jsonGuestTask struct {
	Task   string `json:"task"`
	Change bool   `json:"change"`
	Wait   bool   `json:"wait"`
	Why    string `json:"why,omitempty"`
	Error  string `json:"error,omitempty"`
}

func planJSON(p *provision.Plan, gp *provision.GuestPlan) jsonPlan {
	out := jsonPlan{VM: p.VM, VMID: p.VMID, Node: p.Node, Exists: p.Exists, Owned: p.Owned, Running: p.Running,
		Infrastructure: []jsonPlanAction{}, Preflight: errorJSON(p.Preflight)}
	for _, a := range p.Actions {
		ja := jsonPlanAction{Action: a.Kind, Symbol: symbol(a.Kind), Summary: a.Summary, Pending: a.Pending}
		for _, d := range a.Diff {
			ja.Keys = append(ja.Keys, jsonKeyDiff{Key: d.Key, Symbol: diffSymbol(d), Old: d.Old, New: d.New})
		}
		out.Infrastructure = append(out.Infrastructure, ja)
	}
	if gp != nil {
		jg := &jsonGuestPlan{Checked: gp.Checked, Reason: gp.Reason, Unknown: gp.Unknown, Tasks: []jsonGuestTask{}}
		for _, t := range gp.Tasks {
			jg.Tasks = append(jg.Tasks, jsonGuestTask{Task: t.Task, Change: t.Change, Wait: t.Wait, Why: t.Why, Error: t.Err})
		}
		out.Guest = jg
	}
	out.Changes = jsonPlanChanges{Infrastructure: p.Changes(), Guest: gp.Changes(), Total: p.Changes() + gp.Changes()}
	return out
}
