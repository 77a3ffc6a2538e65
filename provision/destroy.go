package provision

import (
	"context"
	"fmt"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/pve"
)

// DestroyOptions tune Destroy.
type DestroyOptions struct {
	Reporter Reporter
	// KnownHostsFile is where the guest's pinned host key is removed from (default
	// DefaultKnownHostsFile()); the re-created VM will have a new key.
	KnownHostsFile string
	// Lease tunes the run lease: a destroy holds it too, so it never deletes a VM another
	// run is deploying.
	Lease LeaseOptions
	// Heartbeat is the interval of "still running" events for a long task (0 =
	// DefaultHeartbeat, < 0 = none).
	Heartbeat time.Duration
}

// DestroyResult says what Destroy did.
type DestroyResult struct {
	VMID    int
	Node    string
	Deleted bool // false: there was nothing to delete
	Summary Summary
}

// Destroy stops and deletes the catalog VM vmName with its disks — only when it carries the
// ownership tag; a VM that is not ours is refused. A missing VM is not an error.
func (c *Client) Destroy(ctx context.Context, cat *catalog.Catalog, vmName string, o DestroyOptions) (*DestroyResult, error) {
	r, err := c.newRun(cat, vmName, "destroy-"+NewRunID(), o.Reporter)
	if err != nil {
		return nil, err
	}
	r.setLease(o.Lease)
	defer r.releaseLease(ctx)
	s := r.spec
	res := &DestroyResult{VMID: s.vmid, Node: s.node}
	task := fmt.Sprintf("destroy VM %d", s.vmid)
	var stopBeats func()
	r.rep, stopBeats = withHeartbeat(r.rep, o.Heartbeat)
	defer stopBeats()
	st, err := r.inspect(ctx)
	if err == nil && st.exists && st.cfg["lock"] == "create" {
		// A create in progress (real PVE's config is only "lock: create" until it ends).
		if err = r.waitCreate(ctx); err == nil {
			st, err = r.inspect(ctx)
		}
	}
	if err != nil {
		res.Summary = r.summary
		return res, err
	}
	if !st.exists {
		r.report(task, StatusOK, "no such VM", 0)
		res.Summary = r.summary
		return res, nil
	}
	if !st.owned {
		err := refuseDestroy(task, s.vmid, st.cfg)
		r.report(task, StatusFailed, err.Err.Error()+" (hint: "+err.Hint+")", 0)
		res.Summary = r.summary
		return res, err
	}
	if err := r.acquireLease(ctx, st.cfg); err != nil {
		res.Summary = r.summary
		return res, err
	}
	err = r.step(ctx, task, func(ctx context.Context) (Status, string, error) {
		deleted, err := r.removeVM(ctx, func(cfg pve.Config) error {
			if !owned(cfg) {
				return refuseDestroy(task, s.vmid, cfg)
			}
			return r.ownLease(cfg)
		})
		if err != nil {
			return "", "", taskErr(task, err, s.vmid)
		}
		res.Deleted = deleted
		return StatusChanged, fmt.Sprintf("stopped and deleted VM %d %q with its disks", s.vmid, s.vm.Name), nil
	})
	if err == nil && res.Deleted && s.vm.IP() != "" {
		kh := o.KnownHostsFile
		if kh == "" {
			kh = DefaultKnownHostsFile()
		}
		if dropped, derr := dropPinned(kh, s.vm.IP()+":22"); dropped && derr == nil {
			r.note(task, "removed the pinned host key of "+s.vm.IP()+" from "+kh)
		}
	}
	res.Summary = r.summary
	return res, err
}

// refuseDestroy is the error of a destroy aimed at a VM without the ownership tag.
func refuseDestroy(task string, vmid int, cfg pve.Config) *TaskError {
	return &TaskError{Phase: PhaseInfra, Task: task,
		Err: fmt.Errorf("refused, it is not managed by aimachine (no '%s' tag): VM %d (%q) is never touched", OwnerTag, vmid, cfg["name"]),
		Hint: fmt.Sprintf("check the VM's id in the catalog; aimachine deletes only VMs carrying the %q tag. If VM %d really is this VM, add the tag in the Proxmox UI and re-run, or delete it yourself (qm destroy %d)",
			OwnerTag, vmid, vmid)}
}
