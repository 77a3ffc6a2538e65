package provision

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/engine"
	"github.com/aimachine/aimachine/provision/internal/lease"
	"github.com/aimachine/aimachine/provision/internal/tasks"
)

// Action kinds of a Plan.
const (
	ActionCreate    = "create"
	ActionResize    = "resize"
	ActionConfigure = "configure"
	ActionStart     = "start"
	ActionNone      = "none"
	ActionRefuse    = "refuse"
	// ActionKeep is something deploy leaves as it is although the catalog differs (a disk
	// larger than the catalog's: disks never shrink). Not a change.
	ActionKeep = "keep"
)

// Plan is what Deploy would do to the infrastructure, computed with reads only.
type Plan struct {
	VM      string
	VMID    int
	Node    string
	Exists  bool
	Owned   bool
	Running bool
	Actions []Action
	// Preflight is the preflight failure Deploy would stop at (nil when the checks pass or
	// are not needed).
	Preflight error
	// LeasedBy names the run that holds the VM's run lease now ("" when none): a deploy
	// started now would be refused unless that lease ends, expires or is forced.
	LeasedBy string
}

// Action is one planned change.
type Action struct {
	Kind    string
	Summary string
	// Keys are the config keys a configure action changes, with old → new in Changes.
	Keys    []string
	Changes []string
	// Pending are keys that take effect only after a reboot of the running VM.
	Pending []string
	// Diff is the configure action's key changes, structured: Old "" is a key added, Deleted
	// a key removed.
	Diff []KeyDiff
}

// KeyDiff is one config key deploy would set or delete.
type KeyDiff struct {
	Key, Old, New string
	Deleted       bool
}

// Changes counts the mutating actions.
func (p *Plan) Changes() int {
	n := 0
	for _, a := range p.Actions {
		if a.Kind != ActionNone && a.Kind != ActionRefuse && a.Kind != ActionKeep {
			n++
		}
	}
	return n
}

// String renders the plan for people.
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "VM %d %q on node %q:\n", p.VMID, p.VM, p.Node)
	for _, a := range p.Actions {
		fmt.Fprintf(&b, "  %-9s %s\n", a.Kind, a.Summary)
		for _, c := range a.Changes {
			fmt.Fprintf(&b, "            %s\n", c)
		}
		if len(a.Pending) > 0 {
			fmt.Fprintf(&b, "            pending until reboot: %s\n", strings.Join(a.Pending, ", "))
		}
	}
	if p.Preflight != nil {
		fmt.Fprintf(&b, "  preflight would fail: %v\n", p.Preflight)
	}
	if p.LeasedBy != "" {
		fmt.Fprintf(&b, "  in use: %s\n", p.LeasedBy)
	}
	fmt.Fprintf(&b, "%d to change\n", p.Changes())
	return b.String()
}

// Plan reads the cluster and says what Deploy would do for the catalog VM vmName. It makes
// no mutating API call (no agent call either).
func (c *Client) Plan(ctx context.Context, cat *catalog.Catalog, vmName string) (*Plan, error) {
	r, err := c.newRun(cat, vmName, "plan", nil)
	if err != nil {
		return nil, err
	}
	s := r.spec
	p := &Plan{VM: s.vm.Name, VMID: s.vmid, Node: s.node}
	st, err := r.inspect(ctx)
	if err != nil {
		return nil, err
	}
	p.Exists, p.Owned = st.exists, st.owned
	if !st.exists {
		p.Actions = append(p.Actions,
			Action{Kind: ActionCreate, Summary: fmt.Sprintf("VM %d %q: %d cores, %d MiB, %s %dG from %s, %s", s.vmid, s.vm.Name,
				s.vm.Cores, s.vm.MemoryMB, s.vm.Disk.Storage, s.diskGB, cmp.Or(s.image, s.iso), gpuSummary(s))},
			Action{Kind: ActionStart, Summary: fmt.Sprintf("VM %d, wait for the guest agent and cloud-init, pin the SSH host key", s.vmid)})
		p.Preflight = asPreflight(r.preflight(ctx, true, true))
		return p, nil
	}
	if !st.owned {
		p.Actions = append(p.Actions, Action{Kind: ActionRefuse, Summary: notOurs(s.vmid, st.cfg).Error()})
		return p, nil
	}
	p.Running = st.status.Running()
	if l, ok := lease.Parse(st.cfg["description"]); ok {
		p.LeasedBy = fmt.Sprintf("%s, lease until %s", l, l.Expires.UTC().Format(time.RFC3339))
	}
	if len(st.changes) > 0 {
		a := Action{Kind: ActionConfigure, Summary: fmt.Sprintf("VM %d: %d config keys", s.vmid, len(st.changes))}
		for _, ch := range st.changes {
			a.Keys = append(a.Keys, ch.Key)
			a.Diff = append(a.Diff, KeyDiff{Key: ch.Key, Old: ch.Have, New: ch.Want, Deleted: ch.Delete})
			if ch.Delete {
				a.Changes = append(a.Changes, fmt.Sprintf("%s: %q → (deleted)", ch.Key, ch.Have))
			} else {
				a.Changes = append(a.Changes, fmt.Sprintf("%s: %q → %q", ch.Key, ch.Have, ch.Want))
			}
			if ch.Cold && p.Running {
				a.Pending = append(a.Pending, ch.Key)
			}
		}
		p.Actions = append(p.Actions, a)
	}
	if st.haveGB > 0 && st.haveGB < s.diskGB {
		p.Actions = append(p.Actions, Action{Kind: ActionResize, Summary: fmt.Sprintf("%s %dG → %dG", s.diskKey, st.haveGB, s.diskGB)})
	}
	if st.haveGB > s.diskGB {
		// As deploy reports it: the disk stays, it is never shrunk.
		p.Actions = append(p.Actions, Action{Kind: ActionKeep, Summary: fmt.Sprintf("%s is %dG, larger than the catalog's %dG (disks never shrink): deploy keeps it", s.diskKey, st.haveGB, s.diskGB)})
	}
	if !p.Running {
		p.Actions = append(p.Actions, Action{Kind: ActionStart, Summary: fmt.Sprintf("VM %d (stopped)", s.vmid)})
		p.Preflight = asPreflight(r.preflight(ctx, false, true))
	}
	if p.Changes() == 0 && !hasKind(p.Actions, ActionRefuse) {
		p.Actions = append(p.Actions, Action{Kind: ActionNone, Summary: fmt.Sprintf("VM %d matches the catalog and is running", s.vmid)})
	}
	return p, nil
}

func asPreflight(err error) error {
	if err == nil {
		return nil
	}
	var te *TaskError
	if errors.As(err, &te) {
		return te
	}
	return err
}

func gpuSummary(s *spec) string {
	if !s.vm.GPUEnabled() {
		return "no GPU"
	}
	return "GPU " + s.vm.GPU.Device()
}

func hasKind(as []Action, kind string) bool {
	for _, a := range as {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

// GuestPlan is what the guest phase would do on the VM, from every guest task's read-only
// check over SSH (nothing is applied).
type GuestPlan struct {
	// Checked is false when the guest was not examined; Reason says why.
	Checked bool
	Reason  string
	// Unknown is true when the guest phase would run without it being examined (the VM is
	// to be created or started, or its host key is not pinned yet): count it as a change.
	Unknown bool
	Tasks   []GuestTaskPlan
}

// GuestTaskPlan is one guest task's verdict.
type GuestTaskPlan struct {
	Task string
	// Change: deploy would apply this task. Wait: it would only wait (not a change).
	Change, Wait bool
	// Why is the task's own note after its check (e.g. which driver it chose), when it gives one.
	Why string
	// Err is a failed check: deploy would stop at this task.
	Err string
}

// Changes counts the guest tasks deploy would apply (1 for an unexamined guest).
func (g *GuestPlan) Changes() int {
	if g == nil {
		return 0
	}
	if g.Unknown {
		return 1
	}
	n := 0
	for _, t := range g.Tasks {
		if t.Change {
			n++
		}
	}
	return n
}

// Failed counts the guest checks that failed.
func (g *GuestPlan) Failed() int {
	n := 0
	if g != nil {
		for _, t := range g.Tasks {
			if t.Err != "" {
				n++
			}
		}
	}
	return n
}

// PlanGuest examines the guest phase of the catalog VM p describes: over SSH, with the host
// key already pinned, every guest task's check runs and nothing is applied. A VM that does not
// run, or whose key is not pinned, is not examined (Reason says why); an SSH failure to a
// running VM with a pinned key is an error.
func (c *Client) PlanGuest(ctx context.Context, cat *catalog.Catalog, p *Plan, o SSHOptions, g GuestOptions) (*GuestPlan, error) {
	vm, err := cat.VM(p.VM)
	if err != nil {
		return nil, err
	}
	cfg, err := c.sshConfig(cat, vm, o)
	if err != nil {
		o.Dialing.Close()
		return nil, err
	}
	early := o.Dialing.match(cfg)
	defer early.discard()
	switch {
	case hasKind(p.Actions, ActionRefuse):
		return &GuestPlan{Reason: "the VM is not deploy's to change"}, nil
	case !p.Exists:
		return &GuestPlan{Unknown: true, Reason: "the VM does not exist yet: deploy runs the whole guest phase after creating it"}, nil
	case !p.Running:
		return &GuestPlan{Unknown: true, Reason: "the VM is stopped: deploy examines the guest once it has started it"}, nil
	case !hasPinned(cfg.KnownHostsFile, cfg.Addr):
		return &GuestPlan{Unknown: true, Reason: fmt.Sprintf("no host key pinned for %s in %s: deploy pins it through the guest agent, then runs the guest phase", hostOnly(cfg.Addr), cfg.KnownHostsFile)}, nil
	}
	timeout := cmp.Or(o.Timeout, 30*time.Second)
	r := early.take(ctx)
	if r == nil {
		r, err = c.dialWithRetry(ctx, cfg, timeout, nil)
	}
	if err != nil {
		return nil, &TaskError{Phase: PhaseGuest, Task: "plan the guest phase", Err: fmt.Errorf("connect over SSH to %s: %w", cfg.Addr, err),
			Hint: "the VM runs and its host key is pinned, so SSH should answer: check the VM's network and the --ssh-key / --jump settings"}
	}
	defer r.Close()
	if g.User == "" {
		g.User = cfg.User
	}
	return CheckGuest(ctx, r, vm, g)
}

// CheckGuest runs every guest task's check on r (read-only) and returns the guest plan.
func CheckGuest(ctx context.Context, r guest.Runner, vm *catalog.VM, g GuestOptions) (*GuestPlan, error) {
	params, err := guestParams(vm, g)
	if err != nil {
		return nil, &TaskError{Phase: PhaseGuest, Task: "read the vLLM API key", Err: err}
	}
	var secrets []string
	if params.VLLM != nil && params.VLLM.APIKey != "" {
		secrets = append(secrets, params.VLLM.APIKey)
	}
	h := tasks.NewHost(r, params)
	checked, err := engine.Check(ctx, h.Tasks())
	if err != nil {
		return nil, err
	}
	gp := &GuestPlan{Checked: true}
	for _, c := range checked {
		t := GuestTaskPlan{Task: c.Task, Change: !c.Done && !c.Wait && c.Err == nil, Wait: c.Wait, Why: guest.RedactAll(c.Why, secrets)}
		if c.Err != nil {
			t.Err = guest.RedactAll(c.Err.Error(), secrets)
		}
		gp.Tasks = append(gp.Tasks, t)
	}
	return gp, nil
}
