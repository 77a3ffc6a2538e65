package main

import (
	"context"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

// startGuestDial begins the SSH dial to the catalog VM before the API login, so that a
// re-run's SSH handshakes (jump host, then guest) overlap the login and the API reads instead
// of following them (provision.StartGuestDial: only when the guest's key is pinned; nil
// otherwise, and when the catalog does not load: connect reports that).
func startGuestDial(ctx context.Context, f *infraFlags, h hostFlags) *provision.GuestDial {
	cat, err := catalog.LoadValid(f.catalog)
	if err != nil {
		return nil
	}
	loop := getenv(provision.EnvSimulator) == "1"
	return provision.StartGuestDial(ctx, cat, f.vm, provision.HostOptions{KeyFile: h.sshKey, KnownHostsFile: h.knownHosts, Jump: h.jump, LoopbackOnly: &loop})
}
