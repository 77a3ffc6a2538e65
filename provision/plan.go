package provision

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/internal/lease"
)

// Action kinds of a Plan.
const (
	ActionCreate    = "create"
	ActionResize    = "resize"
	ActionConfigure = "configure"
	ActionStart     = "start"
	ActionNone      = "none"
	ActionRefuse    = "refuse"
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
}

// Changes counts the mutating actions.
func (p *Plan) Changes() int {
	n := 0
	for _, a := range p.Actions {
		if a.Kind != ActionNone && a.Kind != ActionRefuse {
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
	if !p.Running {
		p.Actions = append(p.Actions, Action{Kind: ActionStart, Summary: fmt.Sprintf("VM %d (stopped)", s.vmid)})
		p.Preflight = asPreflight(r.preflight(ctx, false, true))
	}
	if len(p.Actions) == 0 {
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
