package provision

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	fakepve "github.com/aimachine/aimachine/fakes/pve"
	"github.com/aimachine/aimachine/provision/internal/lease"
	"github.com/aimachine/aimachine/provision/pve"
)

// plantLease writes a lease of another run into VM 140's description (as that run would).
func (e *env) plantLease(l lease.Lease) {
	e.t.Helper()
	ctx := context.Background()
	cfg, err := e.c.api.VMConfig(ctx, "pve", 140)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.c.api.SetConfigSync(ctx, "pve", 140, pve.Params{"description": lease.With(cfg["description"], l)}, cfg["digest"]); err != nil {
		e.t.Fatal(err)
	}
}

func foreignLease(expires time.Duration) lease.Lease {
	now := time.Now().UTC().Truncate(time.Second)
	return lease.Lease{RunID: "20261205T200000-beef", Host: "other-host", PID: 4242, Since: now.Add(-time.Minute), Expires: now.Add(expires)}
}

func TestALiveLeaseRefusesTheRunNamingItsHolder(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	e.plantLease(foreignLease(10 * time.Minute))
	before := e.mutating()
	_, err := e.deploy(vm140)
	var te *TaskError
	var he *lease.HeldError
	if !errors.As(err, &te) || !errors.As(err, &he) || te.Task != "take the run lease on VM 140" {
		t.Fatalf("want a lease refusal, got %v", err)
	}
	for _, want := range []string{"run 20261205T200000-beef", "host other-host", "since ", "--force-unlock 20261205T200000-beef"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q: %v", want, err)
		}
	}
	if d := e.mutating() - before; d != 0 {
		t.Fatalf("the refused run changed %d things", d)
	}
	// The plan says who holds the VM.
	p, err := e.c.Plan(context.Background(), e.cat, vm140)
	if err != nil || !strings.Contains(p.String(), "in use: run 20261205T200000-beef on host other-host") {
		t.Fatalf("plan does not name the lease holder: %v\n%s", err, p)
	}
	// Destroy is refused the same way.
	_, err = e.c.Destroy(context.Background(), e.cat, vm140, DestroyOptions{KnownHostsFile: e.kh})
	if !errors.As(err, &he) || !e.vmExists(140) {
		t.Fatalf("destroy under a foreign lease: %v (exists %v)", err, e.vmExists(140))
	}
	// --force-unlock with the holder's run id takes it over.
	o := e.opts()
	o.Lease.ForceUnlock = "20261205T200000-beef"
	if _, err := e.c.Deploy(context.Background(), e.cat, vm140, o); err != nil {
		t.Fatalf("deploy with --force-unlock: %v", err)
	}
	cfg, _ := e.c.api.VMConfig(context.Background(), "pve", 140)
	if _, held := lease.Parse(cfg["description"]); held {
		t.Fatalf("the lease was not given back: %q", cfg["description"])
	}
}

func TestAnExpiredLeaseIsTakenOver(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	e.plantLease(foreignLease(-time.Second))
	e.mustDeploy(vm140)
	found := false
	for _, ev := range e.events {
		if ev.Task == "take the run lease on VM 140" && strings.Contains(ev.Message, "expired lease of run 20261205T200000-beef") {
			found = true
		}
	}
	if !found {
		t.Fatal("taking over the expired lease was not reported")
	}
}

// A rollback deletes only a VM whose lease is still this run's: a run that lost its lease
// (another run forced it) keeps the VM.
func TestRollbackKeepsAVMAnotherRunTookOver(t *testing.T) {
	e := newEnv(t)
	o := e.opts()
	// The start fails; before it does, another run takes the lease over.
	e.srv.FailTask(fakepve.TaskFault{Type: "qmstart", ExitStatus: "start failed: QEMU exited with code 1"})
	o.Reporter = ReporterFunc(func(ev Event) {
		if ev.Task == "start VM 140" && ev.Status == "" && ev.Message == "" {
			e.plantLease(foreignLease(10 * time.Minute))
		}
	})
	res, err := e.c.Deploy(context.Background(), e.cat, vm140, o)
	if err == nil || res.RolledBack || !strings.Contains(err.Error(), "now leased by run 20261205T200000-beef") {
		t.Fatalf("want the rollback refused for the lease, got rolledBack=%v: %v", res.RolledBack, err)
	}
	if !e.vmExists(140) {
		t.Fatal("VM 140 was deleted although another run holds it")
	}
}

// After a failed create task PVE leaves nothing (qemu-server create_vm); the next deploy
// succeeds without manual steps.
func TestFailedCreateTaskThenRerunSucceeds(t *testing.T) {
	e := newEnv(t)
	e.srv.FailTask(fakepve.TaskFault{Type: "qmcreate", ExitStatus: "unable to create VM 140 - got timeout"})
	if _, err := e.deploy(vm140); err == nil || !strings.Contains(err.Error(), "got timeout") {
		t.Fatalf("want the create failure, got %v", err)
	}
	if e.vmExists(140) {
		t.Fatal("VM 140 exists after a failed create")
	}
	e.mustDeploy(vm140)
}

// A leftover "lock: create" (a create task that died) gets a clear error and hint after the
// bounded wait.
func TestLeftoverCreateLockIsExplained(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	if err := e.srv.SetLock(140, "create"); err != nil {
		t.Fatal(err)
	}
	o := e.opts()
	o.Lease.LockWait = 200 * time.Millisecond
	_, err := e.c.Deploy(context.Background(), e.cat, vm140, o)
	var te *TaskError
	if !errors.As(err, &te) || !strings.Contains(te.Err.Error(), "locked (create)") || !strings.Contains(te.Hint, "qm unlock 140 && qm destroy 140") {
		t.Fatalf("want the leftover-lock error with its hint, got %v", err)
	}
}

// A start that finds the VM running (started by someone else meanwhile) is not a failure.
func TestStartOfARunningVMIsNotAFailure(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	ctx := context.Background()
	if _, err := e.c.api.StopVM(ctx, "pve", 140); err != nil {
		t.Fatal(err)
	}
	r, err := e.c.newRun(e.cat, vm140, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.api.StartVM(ctx, "pve", 140); err != nil {
		t.Fatal(err)
	}
	already, err := r.start(ctx)
	if err != nil || !already {
		t.Fatalf("start of a running VM: already=%v err=%v", already, err)
	}
}

// A destroy that meets a create in progress waits for it, then destroys (or, when the create
// failed and PVE removed the config, finds nothing).
func TestDestroyWaitsForACreateInProgress(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140)
	if err := e.srv.SetLock(140, "create"); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		e.srv.SetLock(140, "")
	}()
	res, err := e.c.Destroy(context.Background(), e.cat, vm140, DestroyOptions{KnownHostsFile: e.kh, Lease: LeaseOptions{LockWait: 30 * time.Second}})
	if err != nil || !res.Deleted || e.vmExists(140) {
		t.Fatalf("destroy after the create ended: %+v %v", res, err)
	}
}
