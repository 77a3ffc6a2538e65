package provision

import (
	"context"

	"github.com/aimachine/aimachine/provision/guest"
)

// earlyDial is an SSH connection to the guest opened at the start of a deploy, in parallel
// with the API reads and the run lease: on a re-run (the VM runs and its host key is pinned)
// the dial's round trips overlap the infrastructure phase instead of following it. It only
// connects; no command runs on it before the infrastructure phase is done and the lease is
// held. A deploy that took another path (it started the VM, pinned a new key) discards it
// and dials again.
type earlyDial struct {
	done   chan struct{}
	cancel context.CancelFunc
	r      guest.Runner
	err    error
}

// startEarlyDial dials cfg once in the background (no retry: a failure falls back to the
// ordinary dial).
func startEarlyDial(ctx context.Context, cfg guest.Config) *earlyDial {
	ctx, cancel := context.WithCancel(ctx)
	d := &earlyDial{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(d.done)
		d.r, d.err = dialGuest(ctx, cfg)
	}()
	return d
}

// take waits for the dial and hands its runner over (nil after a failure, or when ctx ends
// first); the caller then dials as usual.
func (d *earlyDial) take(ctx context.Context) guest.Runner {
	if d == nil {
		return nil
	}
	select {
	case <-d.done:
	case <-ctx.Done():
		d.discard()
		return nil
	}
	r := d.r
	d.r = nil
	if d.err != nil {
		return nil
	}
	return r
}

// discard cancels the dial and closes a runner nobody took.
func (d *earlyDial) discard() {
	if d == nil {
		return
	}
	d.cancel()
	<-d.done
	if d.r != nil {
		d.r.Close()
		d.r = nil
	}
}
