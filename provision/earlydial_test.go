package provision

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/pve"
)

// gatedAPI holds the first API read of a run until the SSH dial has begun: a deploy that
// dialled only after its API work would wait here and fail, one that overlaps them goes on.
type gatedAPI struct {
	pve.API
	dialed <-chan struct{}
}

func (g gatedAPI) Resources(ctx context.Context, typ string) ([]pve.Resource, error) {
	select {
	case <-g.dialed:
		return g.API.Resources(ctx, typ)
	case <-time.After(10 * time.Second):
		return nil, errors.New("test: the SSH dial had not begun while the API was read")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// A re-run (the VM runs, its host key is pinned) dials SSH while the API is read and the
// lease taken, and uses that connection; a failed early dial is followed by the ordinary one.
func TestReRunDialsSSHWhileReadingTheAPI(t *testing.T) {
	e := newEnv(t)
	e.mustDeploy(vm140) // creates, starts, pins the host key
	dialed := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	dials := 0
	old := dialGuest
	dialGuest = func(ctx context.Context, cfg guest.Config) (guest.Runner, error) {
		once.Do(func() { close(dialed) })
		mu.Lock()
		dials++
		mu.Unlock()
		// Not retryable: the deploy stops at its SSH task.
		return nil, fmt.Errorf("test dial: %w", guest.ErrHostKey)
	}
	t.Cleanup(func() { dialGuest = old })
	c := NewClient(gatedAPI{API: e.c.api, dialed: dialed}, ConnOptions{Backoff: e.c.backoff})
	o := e.opts()
	o.InfraOnly, o.SSH.Timeout = false, 5*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Deploy(ctx, e.cat, vm140, o)
	var te *TaskError
	if !errors.As(err, &te) || te.Task != "connect over SSH to 192.168.0.140:22" {
		t.Fatalf("want the deploy to stop at its SSH task (the API read went on while SSH dialled), got %v", err)
	}
	if dials != 2 {
		t.Fatalf("%d dials, want 2: the early one, then the ordinary one after it failed", dials)
	}
}
