package provision

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aimachine/aimachine/provision/internal/lease"
	"github.com/aimachine/aimachine/provision/internal/retry"
	"github.com/aimachine/aimachine/provision/internal/testhook"
	"github.com/aimachine/aimachine/provision/pve"
)

// leaseTask is the task that takes the run lease.
func leaseTask(vmid int) string { return fmt.Sprintf("take the run lease on VM %d", vmid) }

// configStore is the lease's view of a VM config: its description, written with the digest.
// first, when set, answers the first Read (the config inspect has just read); ahead, when set,
// is a read started in the background (prefetch) that answers the next Read once it is back.
type configStore struct {
	api  pve.API
	node string
	vmid int

	mu    sync.Mutex
	first pve.Config
	ahead <-chan pve.Config // nil config when that read failed
}

// known takes the config read already (or under way), nil when there is none.
func (s *configStore) known(ctx context.Context) (pve.Config, error) {
	s.mu.Lock()
	cfg, ahead := s.first, s.ahead
	s.first, s.ahead = nil, nil
	s.mu.Unlock()
	if cfg != nil || ahead == nil {
		return cfg, nil
	}
	select {
	case cfg = <-ahead:
		return cfg, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *configStore) Read(ctx context.Context) (string, string, string, error) {
	cfg, err := s.known(ctx)
	if err != nil {
		return "", "", "", err
	}
	if cfg == nil {
		var err error
		cfg, err = s.api.VMConfig(ctx, s.node, s.vmid)
		if errors.Is(err, pve.ErrNotFound) {
			return "", "", "", fmt.Errorf("%w: %w", lease.ErrGone, err)
		}
		if err != nil {
			return "", "", "", err
		}
	}
	return cfg["description"], cfg["digest"], cfg["lock"], nil
}

func (s *configStore) Write(ctx context.Context, desc, digest string) error {
	err := s.api.SetConfigSync(ctx, s.node, s.vmid, pve.Params{"description": desc}, digest)
	switch {
	case errors.Is(err, pve.ErrModified):
		return fmt.Errorf("%w: %w", lease.ErrConflict, err)
	case errors.Is(err, pve.ErrNotFound):
		return fmt.Errorf("%w: %w", lease.ErrGone, err)
	}
	return err
}

func (r *run) leaseOptions() lease.Options {
	return lease.Options{VMID: r.spec.vmid, RunID: r.runID, TTL: r.leaseTTL, ForceUnlock: r.forceUnlock}
}

// newLease puts this run's lease into the create parameters: creating the VM takes the lease
// atomically (PVE refuses a create for an id that exists).
func (r *run) newLease() lease.Lease {
	l := lease.New(r.leaseOptions())
	r.spec.params["description"] = lease.With(fmt.Sprint(r.spec.params["description"]), l)
	return l
}

// adoptLease starts holding the lease this run wrote with the create call.
func (r *run) adoptLease(ctx context.Context, l lease.Lease) {
	st := &configStore{api: r.c.api, node: r.spec.node, vmid: r.spec.vmid}
	r.lease = lease.Adopt(st, r.leaseOptions(), l)
	r.keepLease(ctx)
}

// acquireLease takes the lease of an existing VM, starting from the config inspect read. A
// create in progress (lock: create) is waited for up to lockWait; a lease another live run
// holds refuses at once with its holder and what to do.
func (r *run) acquireLease(ctx context.Context, cfg pve.Config) error {
	s := r.spec
	task := leaseTask(s.vmid)
	st := &configStore{api: r.c.api, node: s.node, vmid: s.vmid, first: cfg}
	wait := r.lockWait
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	var held *lease.Held
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := retry.Wait{Description: task, Backoff: r.c.backoff, OnRetry: r.retryNote(task),
		Retryable: func(err error) (string, bool) {
			var le *lease.LockedError
			if errors.As(err, &le) {
				return fmt.Sprintf("VM %d is locked (%s) by a PVE task", s.vmid, le.Lock), true
			}
			return transientClass(err)
		}}.Do(wctx, func(ctx context.Context) error {
		var err error
		held, err = lease.Acquire(ctx, st, r.leaseOptions())
		return err
	})
	if err == nil {
		r.lease = held
		msg := held.Lease().String()
		if held.Note != "" {
			msg = held.Note
		}
		r.report(task, StatusOK, msg, 0)
		if r.early != nil {
			r.prefetch(ctx, st)
		}
		r.keepLease(ctx)
		return nil
	}
	te := &TaskError{Phase: PhaseInfra, Task: task, Err: err}
	var he *lease.HeldError
	var le *lease.LockedError
	switch {
	case errors.As(err, &he):
		te.Err, te.Hint = he, he.Hint()
	case errors.As(err, &le) && le.Lock == "create":
		te.Hint = fmt.Sprintf("a create task that died (pvedaemon restarted, node rebooted) leaves its config locked. Check the node's tasks (Datacenter → Tasks) for a running qmcreate of VM %d; if there is none, remove the leftover on node %s with `qm unlock %d && qm destroy %d` and re-run",
			s.vmid, s.node, s.vmid, s.vmid)
	case errors.As(err, &le):
		te.Hint = fmt.Sprintf("a PVE task (%s) holds VM %d; wait for it to finish and re-run (`qm unlock %d` only when no task runs)", le.Lock, s.vmid, s.vmid)
	case errors.Is(err, lease.ErrGone):
		te.Hint = fmt.Sprintf("VM %d was deleted after this run read it (another run, a destroy, or someone on the node); nothing was changed: re-run to create it", s.vmid)
	default:
		te.Hint = hintFor(err, s.vmid)
	}
	r.report(task, StatusFailed, te.Err.Error()+" (hint: "+te.Hint+")", 0)
	return te
}

// prefetch starts, in the background, what the end of a re-run needs from the API, so that
// its round trips overlap the SSH dial and the guest phase instead of delaying them: the
// config once more, so that the release at the end of the run is a single PUT with this
// digest (a write in between makes that PUT fail the digest check, and the release reads
// again), and the PVE version the evidence records (cached by the adapter, which serialises
// its reads: the evidence never reads it twice).
func (r *run) prefetch(ctx context.Context, st *configStore) {
	ahead := make(chan pve.Config, 1)
	st.mu.Lock()
	st.ahead = ahead
	st.mu.Unlock()
	go func() {
		cfg, err := r.c.api.VMConfig(ctx, r.spec.node, r.spec.vmid)
		if err != nil {
			cfg = nil // the release reads again
		}
		_, _ = r.c.api.Version(ctx) // a failure is the evidence's to report
		// Handed over once both are back: the release (which waits for it) follows both reads.
		ahead <- cfg
	}()
}

// keepLease renews the lease in the background; losing it cancels the run.
func (r *run) keepLease(ctx context.Context) {
	r.stopKeep = r.lease.Keep(context.WithoutCancel(ctx), func(err error) {
		r.note(leaseTask(r.spec.vmid), err.Error())
		if r.cancel != nil {
			r.cancel(err)
		}
	})
}

// releaseLease gives the lease back (a fresh bounded context: it also runs after Ctrl-C). A
// failure is reported, never fatal: the lease then expires.
func (r *run) releaseLease(parent context.Context) {
	if r.lease == nil {
		return
	}
	if r.stopKeep != nil {
		r.stopKeep()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), time.Minute)
	defer cancel()
	err := retry.Wait{Description: "release the run lease", Backoff: r.c.backoff, MaxAttempts: 4, Retryable: transientClass}.Do(ctx, func(ctx context.Context) error {
		return r.lease.Release(ctx)
	})
	if err != nil {
		l := r.lease.Lease()
		r.note(leaseTask(r.spec.vmid), fmt.Sprintf("could not release the lease (%v); it expires at %s, or the next run on this host takes it over", err, l.Expires.Format(time.RFC3339)))
	}
	r.lease = nil
}

// ownLease checks that cfg carries this run's lease (rollback and destroy delete only then).
func (r *run) ownLease(cfg pve.Config) error {
	l, ok := lease.Parse(cfg["description"])
	switch {
	case !ok:
		return fmt.Errorf("VM %d carries no run lease any more: another run or a person changed it since; not deleting it", r.spec.vmid)
	case l.RunID != r.runID:
		return fmt.Errorf("VM %d is now leased by %s: not deleting it", r.spec.vmid, l)
	}
	return nil
}

func (r *run) setLease(o LeaseOptions) {
	r.leaseTTL, r.lockWait, r.forceUnlock = o.TTL, o.LockWait, o.ForceUnlock
}

// inspectLeased inspects the VM and, when it exists and is ours, takes the run lease. A
// create in progress (config lock "create") is waited for first.
func (r *run) inspectLeased(ctx context.Context) (*state, error) {
	st, err := r.inspect(ctx)
	if err != nil || !st.exists {
		return st, err
	}
	if st.cfg["lock"] == "create" {
		if _, ok := lease.Parse(st.cfg["description"]); !ok || !st.owned {
			if err := r.waitCreate(ctx); err != nil {
				return st, err
			}
			if st, err = r.inspect(ctx); err != nil || !st.exists {
				return st, err
			}
		}
	}
	if !st.owned {
		return st, notOurs(r.spec.vmid, st.cfg)
	}
	if err := r.acquireLease(ctx, st.cfg); err != nil {
		return st, err
	}
	testhook.Pause(ctx, testhook.AfterLease)
	return st, nil
}

// waitCreate waits until a create in progress releases the config lock (or fails and PVE
// removes the config); a lock that stays is a leftover with a clear error and hint.
func (r *run) waitCreate(ctx context.Context) error {
	s := r.spec
	task := leaseTask(s.vmid)
	wait := r.lockWait
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := retry.Wait{Description: fmt.Sprintf("wait for the create of VM %d to finish", s.vmid), Backoff: r.c.backoff, OnRetry: r.retryNote(task),
		Retryable: retry.Any(retry.Pending, transientClass)}.Do(wctx, func(ctx context.Context) error {
		cfg, err := r.c.api.VMConfig(ctx, s.node, s.vmid)
		if errors.Is(err, pve.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cfg["lock"] == "create" {
			return fmt.Errorf("VM %d is locked (create): %w", s.vmid, retry.ErrNotYet)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return taskErr(task, err, s.vmid)
	}
	te := &TaskError{Phase: PhaseInfra, Task: task,
		Err: fmt.Errorf("VM %d is locked (create) and no create finished within %s: %w", s.vmid, wait, err),
		Hint: fmt.Sprintf("a create task that died (pvedaemon restarted, node rebooted) leaves its config locked. Check the node's tasks (Datacenter → Tasks) for a running qmcreate of VM %d; if there is none, remove the leftover on node %s with `qm unlock %d && qm destroy %d` and re-run",
			s.vmid, s.node, s.vmid, s.vmid)}
	r.report(task, StatusFailed, te.Err.Error()+" (hint: "+te.Hint+")", 0)
	return te
}

// withLostLease names a lost lease as the cause of a run that was cancelled for it.
func withLostLease(ctx context.Context, err error) error {
	var le *lease.LostError
	if err == nil || !errors.As(context.Cause(ctx), &le) || errors.As(err, &le) {
		return err
	}
	return &TaskError{Phase: PhaseInfra, Task: leaseTask(le.VMID), Err: fmt.Errorf("%w; the run stopped: %w", le, err),
		Hint: "another run took this VM over (--force-unlock, or this run's lease expired); re-run once it is done"}
}
