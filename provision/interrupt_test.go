package provision

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aimachine/aimachine/provision/internal/retry"
	"github.com/aimachine/aimachine/provision/pve"
)

// interruptDuringCreate is the API with one change: once its CreateVM's POST has made the VM
// (the config is readable, locked by 'create'), it calls interrupt — Ctrl-C while PVE's
// create task still runs.
type interruptDuringCreate struct {
	pve.API
	interrupt context.CancelFunc
	sawLock   string
	once      sync.Once
}

func (a *interruptDuringCreate) CreateVM(ctx context.Context, node string, vmid int, params pve.Params) (*pve.TaskResult, error) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if cfg, err := a.API.VMConfig(context.Background(), node, vmid); err == nil {
				a.once.Do(func() { a.sawLock = cfg["lock"]; a.interrupt() })
				return
			}
		}
	}()
	return a.API.CreateVM(ctx, node, vmid, params)
}

// TestInterruptDuringCreateRollsBackOnceTheTaskEnds: Ctrl-C while the create task runs
// (import-from of the cloud image) leaves no VM: the run waits for the task to release the
// lock (PVE refuses to destroy a VM locked by 'create': qemu-server's destroy checks the
// lock) and then rolls the VM back, saying so.
func TestInterruptDuringCreateRollsBackOnceTheTaskEnds(t *testing.T) {
	// At a time scale of 0.1 the fake's create task (with its 12 s import) runs about 1.5 s.
	e := newEnv(t, func(c *envConfig) { c.timeScale = 0.1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := &interruptDuringCreate{API: e.c.api, interrupt: cancel}
	c := NewClient(api, ConnOptions{Backoff: retry.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond}})
	res, err := c.Deploy(ctx, e.cat, vm140, e.opts())
	if api.sawLock != "create" {
		t.Fatalf("the interrupt came when the VM's lock was %q, not during the create task", api.sawLock)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the interrupt", err)
	}
	for _, want := range []string{"interrupted during the create of VM 140 (its create task has ended)", "rolled back: VM 140 created by run"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if !res.Created || !res.RolledBack {
		t.Errorf("created=%v rolledBack=%v, want both", res.Created, res.RolledBack)
	}
	if e.vmExists(140) {
		t.Fatal("VM 140 was left behind")
	}
	var noted bool
	for _, ev := range e.events {
		noted = noted || strings.Contains(ev.Message, "interrupted while the create task ran: waiting for it to end before rolling VM 140 back")
	}
	if !noted {
		t.Error("no progress line said the run waits for the create task")
	}
}

// An interrupt before the POST leaves nothing, and says so.
func TestInterruptBeforeCreateSaysNothingWasLeft(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &run{c: e.c, spec: &spec{node: "pve", vmid: 140}, runID: "r1", rep: ReporterFunc(func(Event) {})}
	err := r.interruptedCreate(ctx, ctx.Err())
	if err == nil || !strings.Contains(err.Error(), `interrupted before VM 140 was created (nothing was left on node "pve")`) || r.created {
		t.Fatalf("err = %v, created = %v", err, r.created)
	}
}
