package provision

import (
	"context"
	"net"
	"reflect"
	"strings"

	"github.com/aimachine/aimachine/catalog"
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

// GuestDial is an SSH dial a caller began before connecting to the API (StartGuestDial), so
// that the login's round trips overlap it as well. Deploy (SSHOptions.Dialing) and PlanGuest
// use it when it reaches the guest with the same settings they would use, and close it
// otherwise; Close is safe after that and on nil.
type GuestDial struct {
	d   *earlyDial
	cfg guest.Config
}

// StartGuestDial begins dialling the catalog VM vmName (its address, user and jump host, as
// GuestConfig builds them from o) when its host key is pinned already; nil otherwise (a first
// deploy pins the key through the guest agent, and dials then).
func StartGuestDial(ctx context.Context, cat *catalog.Catalog, vmName string, o HostOptions) *GuestDial {
	if cat == nil {
		return nil
	}
	vm, err := cat.VM(vmName)
	if err != nil {
		return nil
	}
	cfg, err := GuestConfig(cat, vm, o)
	if err != nil || !hasPinned(cfg.KnownHostsFile, cfg.Addr) {
		return nil
	}
	return &GuestDial{d: startEarlyDial(ctx, cfg), cfg: cfg}
}

// Close cancels the dial, or closes the connection nobody took.
func (g *GuestDial) Close() {
	if g != nil {
		g.d.discard()
	}
}

// match hands over the dial when it reaches cfg; otherwise it closes it and returns nil.
func (g *GuestDial) match(cfg guest.Config) *earlyDial {
	if g == nil {
		return nil
	}
	if !reflect.DeepEqual(withPort22(g.cfg), withPort22(cfg)) {
		g.Close()
		return nil
	}
	return g.d
}

// withPort22 compares addresses with their default port spelled out.
func withPort22(c guest.Config) guest.Config {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		c.Addr = net.JoinHostPort(strings.Trim(c.Addr, "[]"), "22")
	}
	return c
}
