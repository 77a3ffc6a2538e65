package provision

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/internal/lease"
	"github.com/aimachine/aimachine/provision/pve"
)

// run is one Plan/Deploy/Destroy of one VM.
type run struct {
	c       *Client
	cat     *catalog.Catalog
	vm      *catalog.VM
	spec    *spec
	runID   string
	rep     Reporter
	summary Summary
	// created is true once this run has posted the VM (rollback may delete it).
	created bool
	// lease is this run's lease on the VM (nil before it is taken); stopKeep ends its renewal
	// and cancel, when set, cancels the run when the lease is lost.
	lease       *lease.Held
	stopKeep    func()
	cancel      context.CancelCauseFunc
	leaseTTL    time.Duration
	lockWait    time.Duration
	forceUnlock string
	// unpin restores known_hosts as it was before this run pinned a host key (nil when the run
	// pinned nothing); a rollback that deletes the VM calls it.
	unpin func() error
	// early is the SSH dial started with the run (nil when none); earlyOK says the
	// infrastructure phase left the guest as it was when that dial began, so it may be used.
	early   *earlyDial
	earlyOK bool
}

func (c *Client) newRun(cat *catalog.Catalog, vmName, runID string, rep Reporter) (*run, error) {
	if cat == nil {
		return nil, fmt.Errorf("no catalog")
	}
	// The CLI validates before it calls in; a program using the library may not, and every
	// value below reaches the API and the guest.
	if err := cat.Validate(); err != nil {
		return nil, &TaskError{Phase: PhaseInfra, Task: "read the catalog", Err: fmt.Errorf("the catalog is not valid:\n%w", err),
			Hint: "fix each line above (aimachine catalog validate shows the same list); nothing was read or changed"}
	}
	vm, err := cat.VM(vmName)
	if err != nil {
		return nil, err
	}
	if vm.Node == catalog.NodeAuto {
		return nil, &TaskError{Phase: PhaseInfra, Task: "read the catalog",
			Err:  fmt.Errorf("VM %q has node: %s and no node was chosen for it", vm.Name, catalog.NodeAuto),
			Hint: "place it first (provision/fleet Place; aimachine plan and deploy do), or name its node in the catalog"}
	}
	if runID == "" {
		runID = NewRunID()
	}
	s, err := buildSpec(cat, vm, runID)
	if err != nil {
		return nil, &TaskError{Phase: PhaseInfra, Task: "read the catalog", Err: err, Hint: "fix cloud_init.ssh_keys in the catalog"}
	}
	if rep == nil {
		rep = Discard
	}
	return &run{c: c, cat: cat, vm: vm, spec: s, runID: runID, rep: rep}, nil
}

// NewRunID returns a run id: UTC time plus 4 random hex digits, e.g. 20261123T114431-3f2a.
func NewRunID() string {
	return time.Now().UTC().Format("20060102T150405") + "-" + fmt.Sprintf("%04x", rand.N(1<<16))
}

// state is what the cluster holds for the VM.
type state struct {
	exists  bool
	node    string
	cfg     pve.Config
	status  *pve.VMStatus
	owned   bool
	changes []change
	// haveGB is the boot disk's size (0 unknown).
	haveGB int
}

// inspect reads the VM (reads only). Its config is read first on the catalog's node: a VM id
// is unique in the cluster, so a config there is this VM, and a re-run (the common case) skips
// the cluster-wide listing, one round trip less. PVE reads a config on the node that is
// asked (nodes/<node>/qemu-server/<vmid>.conf) and answers 500 "Configuration file ... does not
// exist" otherwise (AbstractConfig.pm), or, for a node the cluster does not know, 500
// "hostname lookup ... failed" (pve-common Network.pm; the preflight names the node then):
// both recorded in ../shared/reference/proxmox-api.md. Only then does /cluster/resources
// say whether the VM is on another node or nowhere (and whether another VM has its name).
func (r *run) inspect(ctx context.Context) (*state, error) {
	s := r.spec
	task := fmt.Sprintf("read VM %d", s.vmid)
	st := &state{}
	cfg, err := r.c.api.VMConfig(ctx, s.node, s.vmid)
	switch {
	case err == nil:
		st.exists, st.node, st.cfg = true, s.node, cfg
	case !errors.Is(err, pve.ErrNotFound) && !errors.Is(err, pve.ErrNoNode):
		return st, taskErr(task, err, s.vmid)
	default:
		vms, err := r.c.api.Resources(ctx, "vm")
		if err != nil {
			return nil, taskErr("look up VM "+fmt.Sprint(s.vmid), err, s.vmid)
		}
		for _, v := range vms {
			if v.VMID == s.vmid && (v.Type == "" || v.Type == "qemu") {
				st.exists, st.node = true, v.Node
			} else if v.VMID == s.vmid {
				return st, &TaskError{Phase: PhaseInfra, Task: "look up VM " + fmt.Sprint(s.vmid),
					Err:  fmt.Errorf("id %d is taken by a %s guest %q on node %q", s.vmid, v.Type, v.Name, v.Node),
					Hint: "pick a free id for the VM in the catalog"}
			} else if v.Name == s.vm.Name {
				r.note("look up VM "+fmt.Sprint(s.vmid), fmt.Sprintf("note: VM %d on node %q has the same name %q", v.VMID, v.Node, v.Name))
			}
		}
		if !st.exists {
			return st, nil
		}
		if st.node != s.node {
			return st, &TaskError{Phase: PhaseInfra, Task: task,
				Err:  fmt.Errorf("VM %d exists on node %q, the catalog places it on %q", s.vmid, st.node, s.node),
				Hint: "migrate it, fix the node in the catalog, or pick another id"}
		}
		// Listed on this node, but its config was not there a moment ago: read it again.
		if st.cfg, err = r.c.api.VMConfig(ctx, s.node, s.vmid); err != nil {
			return st, taskErr(task, err, s.vmid)
		}
	}
	if st.status, err = r.c.api.VMStatus(ctx, s.node, s.vmid); err != nil {
		return st, taskErr(task, err, s.vmid)
	}
	st.owned = owned(st.cfg)
	if !st.owned {
		return st, nil
	}
	st.changes = s.diff(st.cfg)
	if gb, ok := diskSizeGB(st.cfg[s.diskKey]); ok {
		st.haveGB = gb
	}
	return st, nil
}

// notOurs is the error for a VM without the ownership tag.
func notOurs(vmid int, cfg pve.Config) error {
	name := cfg["name"]
	return &TaskError{Phase: PhaseInfra, Task: fmt.Sprintf("take over VM %d", vmid),
		Err:  fmt.Errorf("VM %d (%q) exists but is not managed by aimachine (no %q tag): it is never touched", vmid, name, OwnerTag),
		Hint: fmt.Sprintf("pick a free id for the VM in the catalog, or, if VM %d really is this VM, add the tag %q to it in the Proxmox UI and re-run", vmid, OwnerTag)}
}

// report sends an event.
func (r *run) report(task string, st Status, msg string, elapsed time.Duration) {
	e := Event{Phase: PhaseInfra, Task: task, Status: st, Message: msg, Elapsed: elapsed}
	r.rep.Report(e)
	if st != "" {
		r.summary.Add(e)
	}
}

// note reports a detail without finishing a task.
func (r *run) note(task, msg string) {
	r.rep.Report(Event{Phase: PhaseInfra, Task: task, Message: msg})
}

// step runs one task and reports it.
func (r *run) step(ctx context.Context, task string, fn func(ctx context.Context) (Status, string, error)) error {
	return r.stepWithin(ctx, task, 0, fn)
}

// stepWithin is step for a wait bounded by limit (0 = unbounded): its start event and
// heartbeats carry the limit.
func (r *run) stepWithin(ctx context.Context, task string, limit time.Duration, fn func(ctx context.Context) (Status, string, error)) error {
	start := time.Now()
	r.rep.Report(Event{Phase: PhaseInfra, Task: task, Limit: limit})
	st, msg, err := fn(ctx)
	if err != nil {
		msg := err.Error()
		var te *TaskError
		if errors.As(err, &te) && te.Err != nil {
			msg = te.Err.Error() // the event names the task already
			if te.Hint != "" {
				msg += " (hint: " + te.Hint + ")"
			}
		}
		r.report(task, StatusFailed, msg, time.Since(start))
		return err
	}
	r.report(task, st, msg, time.Since(start))
	return nil
}
