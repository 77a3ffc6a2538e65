package provision

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/retry"
	"github.com/aimachine/aimachine/provision/internal/testhook"
	"github.com/aimachine/aimachine/provision/pve"
)

// DeployOptions tune Deploy.
type DeployOptions struct {
	// Reporter receives progress (default: discard).
	Reporter Reporter
	// RunID marks what this run creates (default NewRunID()).
	RunID string
	// KeepOnFailure leaves a VM this run created in place when a later step fails.
	KeepOnFailure bool
	// SSH says how to reach the guest; the host key is pinned into SSH.KnownHostsFile.
	SSH SSHOptions
	// InfraOnly stops once the guest's host key is pinned (no SSH, no guest phase).
	InfraOnly bool
	// SkipGPUPreflight leaves GPU checks (missing, busy, IOMMU) to PVE's start task.
	SkipGPUPreflight bool
	// Guest tunes the guest phase; its Reporter and RunID are set by Deploy.
	Guest GuestOptions
	// Timeouts of the waits (0 = default): the guest agent 10m, cloud-init 20m, SSH 5m.
	AgentTimeout     time.Duration
	CloudInitTimeout time.Duration
	// Heartbeat is the interval of "still running" events for a long task (0 =
	// DefaultHeartbeat, < 0 = none); the guest phase gets the same.
	Heartbeat time.Duration

	// Lease tunes the run lease (one run per VM at a time).
	Lease LeaseOptions
}

// LeaseOptions tune the run lease a deploy or destroy holds on its VM.
type LeaseOptions struct {
	// ForceUnlock takes over the lease of this run id (a run that crashed on another machine).
	ForceUnlock string
	// TTL is how long the lease lives without renewal (default 15m; renewed every TTL/3).
	TTL time.Duration
	// LockWait bounds the wait for a PVE config lock (a create in progress) (default 5m).
	LockWait time.Duration
}

// DeployResult is what Deploy did and how to reach the VM.
type DeployResult struct {
	VMID  int
	Node  string
	Name  string
	IP    string
	RunID string
	// Created is true when this run created the VM.
	Created bool
	// RolledBack is true when a failure made this run delete the VM it had created.
	RolledBack bool
	// Summary counts the tasks of both phases (infrastructure and guest).
	Summary Summary
	// SSH reaches the guest (the host key is pinned in SSH.KnownHostsFile).
	SSH guest.Config
	// Runner is the open SSH connection (nil with InfraOnly or on failure); the caller closes it.
	Runner guest.Runner
	// GuestPhase is false when the guest phase did not run (InfraOnly, or a failure before it).
	GuestPhase bool
	// Proof is the read-only verification that ends a deploy (ProofTask); empty when the
	// guest phase did not finish.
	Proof VerifyReport
}

// Deploy converges the catalog VM vmName: preflight, create (or the minimal config change),
// start, wait for the guest agent and cloud-init, pin the SSH host key, reach SSH, and run the
// guest phase. A VM that already matches gets no mutating API call. On failure after this run
// created the VM, the VM is stopped and deleted unless KeepOnFailure; the error is a
// *TaskError (errors.As) and matches the pve sentinels (errors.Is).
func (c *Client) Deploy(ctx context.Context, cat *catalog.Catalog, vmName string, o DeployOptions) (*DeployResult, error) {
	r, err := c.newRun(cat, vmName, o.RunID, o.Reporter)
	if err != nil {
		return nil, err
	}
	var stopBeats func()
	r.rep, stopBeats = withHeartbeat(r.rep, o.Heartbeat)
	defer stopBeats()
	res := &DeployResult{VMID: r.spec.vmid, Node: r.spec.node, Name: r.vm.Name, IP: r.vm.IP(), RunID: r.runID}
	res.SSH, err = c.sshConfig(cat, r.vm, o.SSH)
	if err != nil {
		return res, err
	}
	// A value the guest cannot carry is refused before anything is created.
	if !o.InfraOnly {
		if _, err := guestParams(r.vm, o.Guest); errors.Is(err, ErrGuestValue) {
			return res, &TaskError{Phase: PhaseGuest, Task: "check the values written into the guest", Err: err,
				Hint: "fix the catalog value or the API key named above; nothing was created or changed"}
		}
	}
	r.setLease(o.Lease)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.cancel = cancel
	defer func() {
		testhook.Pause(ctx, testhook.BeforeRelease)
		r.releaseLease(ctx)
	}()
	// A re-run dials SSH while the API is read and the lease taken (earlyDial).
	if !o.InfraOnly && hasPinned(res.SSH.KnownHostsFile, res.SSH.Addr) {
		if r.early = o.SSH.Dialing.match(res.SSH); r.early == nil {
			r.early = startEarlyDial(ctx, res.SSH)
		}
		defer r.early.discard()
	} else {
		o.SSH.Dialing.Close()
	}
	// The infrastructure phase ends with the first SSH connection: a failure anywhere in it
	// after this run created the VM rolls that VM back (unless KeepOnFailure).
	err = r.deployInfra(ctx, o, res)
	if err == nil && !o.InfraOnly {
		err = c.connectSSH(ctx, r, o, res)
		testhook.Pause(ctx, testhook.AfterSSH)
	}
	err = withLostLease(ctx, err)
	res.Created = r.created
	if err != nil && r.created && !o.KeepOnFailure {
		rbErr := r.rollback(ctx)
		err = withRollback(err, r.spec.vmid, r.runID, rbErr)
		res.RolledBack = rbErr == nil
	} else if err != nil && r.created {
		err = withKept(err, r.spec.vmid)
	}
	res.Summary = r.summary
	if err == nil && o.InfraOnly {
		ev := Event{Phase: PhaseGuest, Task: "guest phase", Status: StatusSkipped, Message: "infrastructure only: no SSH, driver, CUDA or services"}
		r.rep.Report(ev)
		res.Summary.Add(ev)
	}
	if err != nil || o.InfraOnly {
		return res, err
	}

	// The guest phase. Its failures keep the VM (it is reachable for debugging).
	gopts := o.Guest
	gopts.Reporter, gopts.RunID = r.rep, r.runID
	gs, h, err := runGuestPhase(ctx, res.Runner, r.vm, gopts, true)
	res.GuestPhase = true
	testhook.Pause(ctx, testhook.AfterGuest)
	if err == nil {
		// The deploy ends with the proof: read-only checks, reported as one task. When no
		// guest task changed anything, the guest phase's facts pass gathered it already.
		res.Proof, err = proveGuest(ctx, h, r.vm, gopts, &gs)
	}
	res.Summary.OK += gs.OK
	res.Summary.Changed += gs.Changed
	res.Summary.Failed += gs.Failed
	res.Summary.Tasks = append(res.Summary.Tasks, gs.Tasks...)
	return res, withLostLease(ctx, err)
}

// connectSSH opens the SSH connection the guest phase uses (the last infrastructure task).
// Its error says which key the guest must accept; a VM this run did not create is kept.
func (c *Client) connectSSH(ctx context.Context, r *run, o DeployOptions, res *DeployResult) error {
	task := "connect over SSH to " + res.SSH.Addr
	return r.stepWithin(ctx, task, cmp.Or(o.SSH.Timeout, 5*time.Minute), func(ctx context.Context) (Status, string, error) {
		var runner guest.Runner
		var err error
		if r.earlyOK {
			runner = r.early.take(ctx)
		} else {
			r.early.discard()
		}
		if runner == nil {
			runner, err = c.dialWithRetry(ctx, res.SSH, o.SSH.Timeout, r.retryNote(task))
		}
		if err != nil {
			te := taskErr(task, err, r.spec.vmid)
			switch msg := err.Error(); {
			case strings.Contains(msg, "unable to authenticate") && strings.Contains(msg, "ssh jump host"):
				te.Hint = "the jump host refused the key: it must accept the private key aimachine uses (--ssh-key / AIMACHINE_SSH_KEY / ssh-agent)"
			case strings.Contains(msg, "unable to authenticate"):
				te.Hint = fmt.Sprintf("the catalog's cloud_init.ssh_keys must contain the public key of the private key aimachine uses (--ssh-key / AIMACHINE_SSH_KEY / ssh-agent); the guest user is %q", res.SSH.User)
			}
			if !r.created {
				te.Err = fmt.Errorf("%w; VM %d kept: it existed before this run", te.Err, r.spec.vmid)
			}
			return "", "", te
		}
		res.Runner = runner
		via := ""
		if res.SSH.Jump != nil {
			via = " via " + res.SSH.Jump.User + "@" + res.SSH.Jump.Addr
		}
		return StatusOK, res.SSH.User + "@" + res.SSH.Addr + via, nil
	})
}

// deployInfra is the infrastructure phase up to a pinned host key.
func (r *run) deployInfra(ctx context.Context, o DeployOptions, res *DeployResult) error {
	s := r.spec
	id := fmt.Sprint(s.vmid)
	st, err := r.inspectLeased(ctx)
	if err != nil {
		return err
	}
	booted := false // this run started the VM
	if !st.exists {
		if err := r.checks(ctx, true, !o.SkipGPUPreflight); err != nil {
			return err
		}
		l := r.newLease() // creating the VM takes the lease: the id is the atomic part
		testhook.Pause(ctx, testhook.BeforeCreate)
		lostRace := false
		err := r.step(ctx, "create VM "+id, func(ctx context.Context) (Status, string, error) {
			err := r.create(ctx)
			if r.created {
				r.adoptLease(ctx, l)
			}
			if err != nil && !r.created && errors.Is(err, pve.ErrExists) {
				lostRace = true
				return StatusOK, fmt.Sprintf("VM %d appeared since the look-up (another run or a person created it)", s.vmid), nil
			}
			if err != nil {
				return "", "", taskErr("create VM "+id, err, s.vmid)
			}
			return StatusChanged, fmt.Sprintf("%s on node %q from %s", s.vm.Name, s.node, cmp.Or(s.image, s.iso)), nil
		})
		if err != nil {
			return err
		}
		if lostRace {
			// Whoever created it holds its lease (refused here), or has finished (converge it).
			if st, err = r.inspectLeased(ctx); err != nil {
				return err
			}
			if !st.exists {
				return &TaskError{Phase: PhaseInfra, Task: "create VM " + id, Err: fmt.Errorf("VM %d existed a moment ago and is gone again (another run created and deleted it)", s.vmid), Hint: "re-run deploy"}
			}
		} else {
			testhook.Pause(ctx, testhook.AfterCreate)
			if err := r.resize(ctx, 0); err != nil {
				return err
			}
		}
	}
	if st.exists {
		if err := r.converge(ctx, st, o); err != nil {
			return err
		}
	}

	running := st.exists && st.status.Running()
	if !running {
		if st.exists {
			if err := r.checks(ctx, false, !o.SkipGPUPreflight); err != nil {
				return err
			}
		}
		already := false
		if err := r.step(ctx, "start VM "+id, func(ctx context.Context) (Status, string, error) {
			var err error
			if already, err = r.start(ctx); err != nil {
				return "", "", taskErr("start VM "+id, err, s.vmid)
			}
			if already {
				return StatusOK, "already running (started outside this run)", nil
			}
			return StatusChanged, "", nil
		}); err != nil {
			return err
		}
		booted = !already
		testhook.Pause(ctx, testhook.AfterStart)
	} else {
		r.report("start VM "+id, StatusOK, "already running", 0)
	}

	// Already running with a pinned host key: nothing to wait for, straight to SSH.
	addr := res.SSH.Addr
	if !booted && hasPinned(res.SSH.KnownHostsFile, addr) {
		r.report("pin SSH host key", StatusOK, "already pinned in "+res.SSH.KnownHostsFile, 0)
		r.earlyOK = true // the guest ran and its key was pinned all along: the early dial stands
		return nil
	}
	if !s.vm.AgentEnabled() {
		if hasPinned(res.SSH.KnownHostsFile, addr) {
			return nil
		}
		return &TaskError{Phase: PhaseInfra, Task: "pin SSH host key", Err: errors.New("the guest agent is disabled, so the host key cannot be read over the API"),
			Hint: fmt.Sprintf("enable the agent in the catalog, or pin the key yourself: ssh-keyscan %s >> %s (after checking it on the console)", s.vm.IP(), res.SSH.KnownHostsFile)}
	}
	if err := r.waitAgent(ctx, o.AgentTimeout); err != nil {
		return err
	}
	testhook.Pause(ctx, testhook.AfterAgent)
	if booted {
		if err := r.waitCloudInit(ctx, o.CloudInitTimeout); err != nil {
			return err
		}
		testhook.Pause(ctx, testhook.AfterCloudInit)
	}
	if err := r.pinHostKey(ctx, res.SSH, o.SSH.ReplaceHostKey); err != nil {
		return err
	}
	testhook.Pause(ctx, testhook.AfterHostKey)
	return nil
}

// converge applies the minimal config change and disk growth to an existing VM of ours.
func (r *run) converge(ctx context.Context, st *state, o DeployOptions) error {
	s := r.spec
	id := fmt.Sprint(s.vmid)
	task := "configure VM " + id
	if len(st.changes) == 0 {
		r.report(task, StatusOK, "config matches the catalog", 0)
	} else {
		var keys, cold []string
		set := pve.Params{}
		var del []string
		gpuChange := false
		for _, c := range st.changes {
			if c.readOnly != "" {
				return &TaskError{Phase: PhaseInfra, Task: task, Err: fmt.Errorf("%s: %s", c.Key, c.readOnly)}
			}
			keys = append(keys, c.Key)
			if c.Key == "hostpci0" {
				gpuChange = true
			}
			if c.Cold && st.status.Running() {
				cold = append(cold, c.Key)
			}
			if c.Delete {
				del = append(del, c.Key)
			} else {
				set[c.Key] = c.sendAs
			}
		}
		if gpuChange && s.vm.GPUEnabled() && !o.SkipGPUPreflight {
			if err := r.checks(ctx, false, true); err != nil {
				return err
			}
		}
		if err := r.step(ctx, task, func(ctx context.Context) (Status, string, error) {
			if err := r.mutate(ctx, "update config of VM "+id, func(ctx context.Context) error {
				_, err := r.c.api.UpdateConfig(ctx, s.node, s.vmid, set, del)
				return err
			}, nil); err != nil {
				return "", "", taskErr(task, err, s.vmid)
			}
			msg := "changed " + strings.Join(keys, ", ")
			if len(cold) > 0 {
				msg += fmt.Sprintf("; pending until VM %d is rebooted: %s (hint: qm reboot %d)", s.vmid, strings.Join(cold, ", "), s.vmid)
			}
			return StatusChanged, msg, nil
		}); err != nil {
			return err
		}
	}
	return r.resize(ctx, st.haveGB)
}

// resize grows the boot disk to the catalog size (haveGB 0 = read it first).
func (r *run) resize(ctx context.Context, haveGB int) error {
	s := r.spec
	task := fmt.Sprintf("resize %s of VM %d to %dG", s.diskKey, s.vmid, s.diskGB)
	if haveGB == 0 {
		cfg, err := r.c.api.VMConfig(ctx, s.node, s.vmid)
		if err != nil {
			return taskErr(task, err, s.vmid)
		}
		haveGB, _ = diskSizeGB(cfg[s.diskKey])
	}
	switch {
	case haveGB == s.diskGB:
		r.report(task, StatusOK, fmt.Sprintf("disk is %dG", haveGB), 0)
		return nil
	case haveGB > s.diskGB:
		r.report(task, StatusOK, fmt.Sprintf("disk is %dG, larger than the catalog's %dG (disks never shrink)", haveGB, s.diskGB), 0)
		return nil
	}
	return r.step(ctx, task, func(ctx context.Context) (Status, string, error) {
		size := fmt.Sprintf("%dG", s.diskGB)
		if err := r.mutate(ctx, task, func(ctx context.Context) error {
			_, err := r.c.api.ResizeDisk(ctx, s.node, s.vmid, s.diskKey, size)
			return err
		}, nil); err != nil {
			return "", "", taskErr(task, err, s.vmid)
		}
		return StatusChanged, fmt.Sprintf("%dG → %s", haveGB, size), nil
	})
}

// mutate runs a write, retrying transient failures and lock timeouts (bounded). done, when
// set, is asked after a transient failure whether the write happened anyway.
func (r *run) mutate(ctx context.Context, what string, fn func(ctx context.Context) error, done func(ctx context.Context) (bool, error)) error {
	return retry.Wait{
		Description: what, Backoff: r.c.backoff, MaxAttempts: 5,
		Retryable: func(err error) (string, bool) {
			// A task that ran and failed is not retried (a kvm "got timeout" would repeat for
			// minutes), except a lock timeout.
			var tf *pve.TaskFailedError
			if errors.As(err, &tf) && !errors.Is(err, pve.ErrLocked) {
				return "", false
			}
			if pve.IsTransient(err) || errors.Is(err, pve.ErrLocked) {
				return err.Error(), true
			}
			return "", false
		},
		OnRetry: r.retryNote(what),
	}.Do(ctx, func(ctx context.Context) error {
		err := fn(ctx)
		if err != nil && done != nil && pve.IsTransient(err) {
			if ok, derr := done(ctx); derr == nil && ok {
				return nil
			}
		}
		return err
	})
}

func (r *run) retryNote(task string) func(int, string, error, time.Duration) {
	return func(n int, reason string, err error, next time.Duration) {
		r.note(task, fmt.Sprintf("attempt %d: %s; retrying in %s", n, reason, next.Round(time.Millisecond)))
	}
}

// create posts the VM. A transient failure is never retried blindly: first check whether the
// VM exists and carries this run's marker.
func (r *run) create(ctx context.Context) error {
	s := r.spec
	return retry.Wait{
		Description: fmt.Sprintf("create VM %d", s.vmid), Backoff: r.c.backoff, MaxAttempts: 4,
		Retryable: func(err error) (string, bool) {
			var tf *pve.TaskFailedError
			if pve.IsTransient(err) && !errors.As(err, &tf) {
				return err.Error(), true
			}
			return "", false
		},
		OnRetry: r.retryNote(fmt.Sprintf("create VM %d", s.vmid)),
	}.Do(ctx, func(ctx context.Context) error {
		_, err := r.c.api.CreateVM(ctx, s.node, s.vmid, s.params)
		var tf *pve.TaskFailedError
		if err == nil || errors.As(err, &tf) {
			r.created = true // the POST was accepted: whatever remains is ours to clean up
			return err
		}
		if ctx.Err() != nil {
			// Interrupted (Ctrl-C, SIGTERM, a deadline) while the POST or its task was under
			// way: a VM may exist and still be locked by the create task.
			return r.interruptedCreate(ctx, err)
		}
		if !pve.IsTransient(err) {
			return err
		}
		cfg, cerr := r.c.api.VMConfig(ctx, s.node, s.vmid)
		switch {
		case errors.Is(cerr, pve.ErrNotFound):
			return err // not created: safe to post again
		case cerr != nil:
			return err
		case createdByRun(cfg) != r.runID:
			return pve.Classed(pve.ErrExists, "VM %d appeared while this run was creating it, but another run or user made it", s.vmid)
		}
		r.created = true
		// Our create went through; wait until its task releases the lock.
		return retry.Wait{Description: fmt.Sprintf("wait for the create task of VM %d", s.vmid), Backoff: r.c.backoff,
			Retryable: retry.Any(retry.Pending, transientClass)}.Do(ctx, func(ctx context.Context) error {
			cfg, err := r.c.api.VMConfig(ctx, s.node, s.vmid)
			if err != nil {
				return err
			}
			if cfg["lock"] != "" {
				return fmt.Errorf("VM %d is locked (%s): %w", s.vmid, cfg["lock"], retry.ErrNotYet)
			}
			return nil
		})
	})
}

// interruptedCreateWait bounds the wait for a create task after an interrupt (the import of
// a cloud image takes a minute or two on a real host).
const interruptedCreateWait = 5 * time.Minute

// interruptedCreate runs when ctx ended during CreateVM. On a fresh bounded context it finds
// out whether the POST created VM s.vmid with this run's marker; if so the VM is this run's
// (the rollback deletes it) and it waits for the create task to release the VM's lock first,
// since Proxmox refuses to destroy a VM locked by 'create'. The error says what it found.
func (r *run) interruptedCreate(parent context.Context, cause error) error {
	s := r.spec
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), interruptedCreateWait)
	defer cancel()
	var cfg pve.Config
	err := retry.Wait{Description: fmt.Sprintf("look for VM %d after the interrupt", s.vmid), Backoff: r.c.backoff, MaxAttempts: 5,
		Retryable: transientClass}.Do(ctx, func(ctx context.Context) error {
		var err error
		cfg, err = r.c.api.VMConfig(ctx, s.node, s.vmid)
		return err
	})
	switch {
	case errors.Is(err, pve.ErrNotFound):
		return fmt.Errorf("interrupted before VM %d was created (nothing was left on node %q): %w", s.vmid, s.node, cause)
	case err != nil:
		return fmt.Errorf("interrupted during the create of VM %d, and whether it exists is unknown (%v): %w "+
			"(hint: check with qm status %d on node %q; if it carries run=%s in its tags or description it is this run's and can be destroyed)",
			s.vmid, err, cause, s.vmid, s.node, r.runID)
	case createdByRun(cfg) != r.runID:
		return fmt.Errorf("interrupted during the create of VM %d; the VM %d on node %q is not this run's, left untouched: %w", s.vmid, s.vmid, s.node, cause)
	}
	r.created = true
	r.note(fmt.Sprintf("create VM %d", s.vmid), fmt.Sprintf("interrupted while the create task ran: waiting for it to end before rolling VM %d back", s.vmid))
	werr := retry.Wait{Description: fmt.Sprintf("wait for the create task of VM %d to end", s.vmid), Backoff: r.c.backoff,
		Retryable: retry.Any(retry.Pending, transientClass)}.Do(ctx, func(ctx context.Context) error {
		cfg, err := r.c.api.VMConfig(ctx, s.node, s.vmid)
		if errors.Is(err, pve.ErrNotFound) {
			return nil // the task failed and PVE removed the VM
		}
		if err != nil {
			return err
		}
		if cfg["lock"] == "create" {
			return fmt.Errorf("VM %d is locked (create): %w", s.vmid, retry.ErrNotYet)
		}
		return nil
	})
	if werr != nil {
		return fmt.Errorf("interrupted during the create of VM %d; its create task still held the VM after %s (%v), so it may remain locked on node %q: %w "+
			"(hint: once the task ends, qm destroy %d --purge)", s.vmid, interruptedCreateWait, werr, s.node, cause, s.vmid)
	}
	return fmt.Errorf("interrupted during the create of VM %d (its create task has ended): %w", s.vmid, cause)
}

func transientClass(err error) (string, bool) {
	if pve.IsTransient(err) {
		return err.Error(), true
	}
	return "", false
}

// start starts the VM; after a transient failure it checks whether the VM runs anyway. A VM
// that turns out to be running already (qm start's "VM <id> already running": a person or
// onboot started it) is not a failure: already is true then.
func (r *run) start(ctx context.Context) (already bool, err error) {
	s := r.spec
	running := func(ctx context.Context) (bool, error) {
		st, err := r.c.api.VMStatus(ctx, s.node, s.vmid)
		return err == nil && st.Running(), err
	}
	err = r.mutate(ctx, fmt.Sprintf("start VM %d", s.vmid), func(ctx context.Context) error {
		_, err := r.c.api.StartVM(ctx, s.node, s.vmid)
		if err != nil && strings.Contains(err.Error(), "already running") {
			if ok, _ := running(ctx); ok {
				already = true
				return nil
			}
		}
		return err
	}, running)
	return already, err
}

// agentOrTransient retries while the guest agent does not answer (not started yet, or
// rebooting), saying reason, and on transient API failures; everything else is final.
func agentOrTransient(reason string) func(error) (string, bool) {
	return func(err error) (string, bool) {
		if errors.Is(err, pve.ErrAgentNotRunning) {
			return reason, true
		}
		return transientClass(err)
	}
}

// waitAgent waits until the guest agent answers; only "QEMU guest agent is not running"
// (and transient API failures) mean keep waiting.
func (r *run) waitAgent(ctx context.Context, timeout time.Duration) error {
	s := r.spec
	task := fmt.Sprintf("wait for the guest agent of VM %d", s.vmid)
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	return r.stepWithin(ctx, task, timeout, func(ctx context.Context) (Status, string, error) {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		err := retry.Wait{Description: task, Backoff: r.c.backoff, OnRetry: r.retryNote(task),
			Retryable: agentOrTransient("agent not running yet")}.Do(wctx, func(ctx context.Context) error {
			return r.c.api.AgentPing(ctx, s.node, s.vmid)
		})
		if err != nil {
			te := taskErr(task, err, s.vmid)
			if errors.Is(err, pve.ErrAgentNotRunning) || errors.Is(err, context.DeadlineExceeded) {
				te.Hint = "the image must install qemu-guest-agent (the noble cloud image does not ship it: set image.vendor_data to a snippet that installs it); check the VM's console (qm terminal " + fmt.Sprint(s.vmid) + ")"
			}
			return "", "", te
		}
		return StatusOK, "agent answers", nil
	})
}

// waitCloudInit runs `cloud-init status --wait` through the agent: 0 and 2 are done (2 =
// recoverable errors), anything else fails.
func (r *run) waitCloudInit(ctx context.Context, timeout time.Duration) error {
	s := r.spec
	task := fmt.Sprintf("wait for cloud-init in VM %d", s.vmid)
	if timeout == 0 {
		timeout = 20 * time.Minute
	}
	return r.stepWithin(ctx, task, timeout, func(ctx context.Context) (Status, string, error) {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var es *pve.ExecStatus
		err := retry.Wait{Description: task, Backoff: r.c.backoff, OnRetry: r.retryNote(task),
			Retryable: agentOrTransient("agent not running (reboot?)")}.Do(wctx, func(ctx context.Context) error {
			pid, err := r.c.api.AgentExec(ctx, s.node, s.vmid, []string{"cloud-init", "status", "--wait"}, "")
			if err != nil {
				return err
			}
			return retry.Wait{Description: "cloud-init status --wait (pid " + fmt.Sprint(pid) + ")", Backoff: r.c.backoff,
				Retryable: retry.Any(retry.Pending, transientClass)}.Do(ctx, func(ctx context.Context) error {
				st, err := r.c.api.AgentExecStatus(ctx, s.node, s.vmid, pid)
				if err != nil {
					return err
				}
				if !st.Exited {
					return retry.ErrNotYet
				}
				es = st
				return nil
			})
		})
		if err != nil {
			return "", "", taskErr(task, err, s.vmid)
		}
		out := strings.TrimSpace(es.Stdout)
		switch {
		case es.Signal != 0:
			return "", "", &TaskError{Phase: PhaseInfra, Task: task, Err: fmt.Errorf("cloud-init status was killed by signal %d", es.Signal), Log: guest.Tail(es.Stdout+es.Stderr, 20)}
		case es.ExitCode == 0:
			return StatusOK, lastLine(out), nil
		case es.ExitCode == 2:
			return StatusOK, "done with recoverable errors: " + lastLine(out), nil
		}
		return "", "", &TaskError{Phase: PhaseInfra, Task: task,
			Err:  fmt.Errorf("cloud-init status exited %d: %s", es.ExitCode, lastLine(out+"\n"+strings.TrimSpace(es.Stderr))),
			Hint: fmt.Sprintf("look at /var/log/cloud-init-output.log in the VM (console: qm terminal %d); check the vendor_data snippet", s.vmid),
			Log:  guest.Tail(es.Stdout+es.Stderr, 20)}
	})
}

// hostKeyPath is the key pinned for the guest.
const hostKeyPath = "/etc/ssh/ssh_host_ed25519_key.pub"

// pinHostKey reads the guest's host key through the guest agent (authenticated, TLS-verified
// API) and pins it in known_hosts before the first SSH connection.
func (r *run) pinHostKey(ctx context.Context, cfg guest.Config, replace bool) error {
	s := r.spec
	task := "pin SSH host key"
	return r.step(ctx, task, func(ctx context.Context) (Status, string, error) {
		text, err := r.readGuestFile(ctx, hostKeyPath)
		if err != nil {
			return "", "", taskErr(task, fmt.Errorf("read %s through the guest agent: %w", hostKeyPath, err), s.vmid)
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text))
		if err != nil {
			return "", "", &TaskError{Phase: PhaseInfra, Task: task, Err: fmt.Errorf("%s of VM %d is not a public key: %w", hostKeyPath, s.vmid, err)}
		}
		alias := cfg.Addr
		changed, undo, err := pinWithUndo(cfg.KnownHostsFile, alias, key, replace)
		if changed {
			r.unpin = undo
		}
		if err != nil {
			te := &TaskError{Phase: PhaseInfra, Task: task, Err: err}
			if errors.Is(err, ErrHostKeyMismatch) {
				te.Hint = fmt.Sprintf("if VM %d was re-created on purpose, remove the line for %s from %s (ssh-keygen -R %s -f %s) or re-run with --replace-host-key; otherwise something else answers at that address",
					s.vmid, hostOnly(alias), cfg.KnownHostsFile, hostOnly(alias), cfg.KnownHostsFile)
			}
			return "", "", te
		}
		fp := ssh.FingerprintSHA256(key)
		if !changed {
			return StatusOK, fp + " already pinned", nil
		}
		return StatusChanged, fmt.Sprintf("%s %s pinned for %s in %s", key.Type(), fp, hostOnly(alias), cfg.KnownHostsFile), nil
	})
}

// readGuestFile reads a file through the agent: file-read, and exec `cat` where file-read is
// not available.
func (r *run) readGuestFile(ctx context.Context, path string) (string, error) {
	s := r.spec
	var text string
	err := retry.Wait{Description: "read " + path, Backoff: r.c.backoff, MaxAttempts: 6,
		Retryable: agentOrTransient("agent not running")}.Do(ctx, func(ctx context.Context) error {
		var err error
		text, err = r.c.api.AgentFileRead(ctx, s.node, s.vmid, path)
		return err
	})
	if err == nil && strings.TrimSpace(text) != "" {
		return text, nil
	}
	if errors.Is(err, pve.ErrAuth) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "", err
	}
	pid, xerr := r.c.api.AgentExec(ctx, s.node, s.vmid, []string{"cat", path}, "")
	if xerr != nil {
		return "", errors.Join(err, xerr)
	}
	var es *pve.ExecStatus
	xerr = retry.Wait{Description: "cat " + path, Backoff: r.c.backoff, Retryable: retry.Any(retry.Pending, transientClass)}.Do(ctx, func(ctx context.Context) error {
		st, err := r.c.api.AgentExecStatus(ctx, s.node, s.vmid, pid)
		if err != nil {
			return err
		}
		if !st.Exited {
			return retry.ErrNotYet
		}
		es = st
		return nil
	})
	if xerr != nil {
		return "", xerr
	}
	if es.ExitCode != 0 {
		return "", fmt.Errorf("cat %s exited %d: %s", path, es.ExitCode, strings.TrimSpace(es.Stderr))
	}
	return es.Stdout, nil
}

// rollback stops and deletes the VM this run created, after checking the ownership tag and
// the run id. It uses a fresh bounded context so that it also runs after Ctrl-C.
func (r *run) rollback(parent context.Context) error {
	s := r.spec
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 3*time.Minute)
	defer cancel()
	task := fmt.Sprintf("roll back VM %d", s.vmid)
	return r.step(ctx, task, func(ctx context.Context) (Status, string, error) {
		deleted, err := r.removeVM(ctx, func(cfg pve.Config) error {
			if !owned(cfg) || createdByRun(cfg) != r.runID {
				return fmt.Errorf("VM %d does not carry this run's marker (run=%s): not deleting it", s.vmid, r.runID)
			}
			return r.ownLease(cfg) // and no other run has taken it over since
		})
		if err != nil {
			return "", "", err
		}
		msg := fmt.Sprintf("stopped and deleted VM %d (created by run %s)", s.vmid, r.runID)
		if !deleted {
			msg = "nothing left to delete"
		}
		// The VM's host key dies with it: known_hosts goes back to what it was before this run.
		if r.unpin != nil {
			if err := r.unpin(); err != nil {
				msg += fmt.Sprintf("; known_hosts not restored: %v (hint: ssh-keygen -R %s)", err, s.vm.IP())
			} else {
				msg += "; removed the host key this run pinned for " + s.vm.IP()
				r.unpin = nil
			}
		}
		if !deleted {
			return StatusOK, msg, nil
		}
		return StatusChanged, msg, nil
	})
}

// removeVM stops and deletes the VM after check approves its config; false when it is gone.
func (r *run) removeVM(ctx context.Context, check func(pve.Config) error) (bool, error) {
	s := r.spec
	var cfg pve.Config
	err := retry.Wait{Description: "read VM config", Backoff: r.c.backoff, MaxAttempts: 5, Retryable: transientClass}.Do(ctx, func(ctx context.Context) error {
		var err error
		cfg, err = r.c.api.VMConfig(ctx, s.node, s.vmid)
		return err
	})
	if errors.Is(err, pve.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := check(cfg); err != nil {
		return false, err
	}
	gone := func(ctx context.Context) (bool, error) {
		_, err := r.c.api.VMConfig(ctx, s.node, s.vmid)
		if errors.Is(err, pve.ErrNotFound) {
			return true, nil
		}
		return false, err
	}
	st, err := r.c.api.VMStatus(ctx, s.node, s.vmid)
	if err != nil && !errors.Is(err, pve.ErrNotFound) {
		return false, err
	}
	if st.Running() {
		if err := r.mutate(ctx, fmt.Sprintf("stop VM %d", s.vmid), func(ctx context.Context) error {
			_, err := r.c.api.StopVM(ctx, s.node, s.vmid)
			return err
		}, func(ctx context.Context) (bool, error) {
			st, err := r.c.api.VMStatus(ctx, s.node, s.vmid)
			return err == nil && !st.Running(), err
		}); err != nil {
			return false, err
		}
	}
	if err := r.mutate(ctx, fmt.Sprintf("delete VM %d", s.vmid), func(ctx context.Context) error {
		_, err := r.c.api.DeleteVM(ctx, s.node, s.vmid)
		if errors.Is(err, pve.ErrNotFound) {
			return nil
		}
		return err
	}, gone); err != nil {
		return false, err
	}
	return true, nil
}

// withRollback adds what the rollback did to the cause; a rollback error is joined, never dropped.
func withRollback(cause error, vmid int, runID string, rbErr error) error {
	var te *TaskError
	if !errors.As(cause, &te) {
		te = &TaskError{Phase: PhaseInfra, Task: "deploy", Err: cause}
	}
	out := *te
	if rbErr != nil {
		out.Err = errors.Join(te.Err, fmt.Errorf("rollback of VM %d failed: %w (hint: delete it by hand: qm stop %d; qm destroy %d)", vmid, rbErr, vmid, vmid))
	} else {
		out.Err = fmt.Errorf("%w; rolled back: VM %d created by run %s was stopped and deleted", te.Err, vmid, runID)
	}
	return &out
}

func withKept(cause error, vmid int) error {
	var te *TaskError
	if !errors.As(cause, &te) {
		te = &TaskError{Phase: PhaseInfra, Task: "deploy", Err: cause}
	}
	out := *te
	out.Err = fmt.Errorf("%w; VM %d kept for debugging (--keep-on-failure): remove it with aimachine destroy", te.Err, vmid)
	return &out
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
