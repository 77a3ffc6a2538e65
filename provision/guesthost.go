package provision

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/guest"
)

// HostOptions say how to reach a machine for the guest phase alone (an existing host, or
// verification of a deployed VM).
type HostOptions struct {
	// Target is USER@ADDR[:PORT] of an already installed Ubuntu 24.04 machine. Empty: the
	// catalog VM's address (port 22), cloud-init user and jump host.
	Target string
	// KeyFile is the private key (empty: ssh-agent through SSH_AUTH_SOCK).
	KeyFile string
	// KnownHostsFile pins host keys (default DefaultKnownHostsFile()).
	KnownHostsFile string
	// AcceptNewHostKey trusts a host key seen for the first time and pins it (an explicit
	// user choice, --accept-new-host-key). A changed key is always refused.
	AcceptNewHostKey bool
	// Jump is a bastion USER@HOST[:PORT] (default: the catalog's jump host when Target is empty).
	Jump string
	// LoopbackOnly refuses direct TCP dials to non-loopback addresses (simulator mode;
	// default: AIMACHINE_SIMULATOR=1).
	LoopbackOnly *bool
	// Guest tunes the phase (reporter, report dir, waits).
	Guest GuestOptions
}

// ParseTarget splits USER@ADDR[:PORT] into a user and host:port (port 22 by default).
func ParseTarget(s string) (user, addr string, err error) {
	user, hostport, ok := strings.Cut(s, "@")
	if !ok || user == "" || hostport == "" {
		return "", "", fmt.Errorf("host %q is not USER@ADDR[:PORT] (e.g. ubuntu@192.168.0.140)", s)
	}
	host, port, serr := net.SplitHostPort(hostport)
	if serr != nil {
		host, port = strings.Trim(hostport, "[]"), "22"
	}
	if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 || host == "" {
		return "", "", fmt.Errorf("host %q is not USER@ADDR[:PORT]: bad port %q", s, port)
	}
	return user, net.JoinHostPort(host, port), nil
}

// GuestConfig is the one builder of the SSH configuration that reaches vm (deploy, deploy
// --host and verify all use it): o.Target when set, else the catalog VM's address (port 22)
// and cloud-init user; the jump host o.Jump when set, else the catalog's (for the catalog
// address only); host keys pinned in o.KnownHostsFile (default DefaultKnownHostsFile());
// loopback-only dials in simulator mode.
func GuestConfig(cat *catalog.Catalog, vm *catalog.VM, o HostOptions) (guest.Config, error) {
	kh := o.KnownHostsFile
	if kh == "" {
		kh = DefaultKnownHostsFile()
	}
	loop := os.Getenv(EnvSimulator) == "1"
	if o.LoopbackOnly != nil {
		loop = *o.LoopbackOnly
	}
	cfg := guest.Config{KeyFile: o.KeyFile, KnownHostsFile: kh, AcceptNewHostKey: o.AcceptNewHostKey, LoopbackOnly: loop}
	if o.Target != "" {
		u, a, err := ParseTarget(o.Target)
		if err != nil {
			return guest.Config{}, err
		}
		cfg.User, cfg.Addr = u, a
	} else {
		if vm.IP() == "" {
			return guest.Config{}, fmt.Errorf("VM %q has no IP address in the catalog (hint: set its network address in the catalog, or pass --host USER@ADDR)", vm.Name)
		}
		cfg.User = vm.CloudInit.User
		if cfg.User == "" {
			cfg.User = "ubuntu"
		}
		cfg.Addr = net.JoinHostPort(vm.IP(), "22")
		if jh := cat.JumpHostFor(vm); jh != nil && o.Jump == "" {
			cfg.Jump = &guest.Jump{Addr: jh.Address, User: jh.User, KeyFile: o.KeyFile}
		}
	}
	if o.Jump != "" {
		j, err := ParseJump(o.Jump)
		if err != nil {
			return guest.Config{}, err
		}
		j.KeyFile = o.KeyFile
		cfg.Jump = j
	}
	return cfg, nil
}

// DeployHost runs only the guest phase for catalog VM vmName against an already installed
// Ubuntu 24.04 machine (aimachine deploy --host USER@ADDR[:PORT]). The host key must be
// pinned already unless o.AcceptNewHostKey. Like Deploy it ends with the proof (ProofTask).
func DeployHost(ctx context.Context, cat *catalog.Catalog, vmName string, o HostOptions) (Summary, guest.Stats, error) {
	vm, err := cat.VM(vmName)
	if err != nil {
		return Summary{}, guest.Stats{}, err
	}
	cfg, err := GuestConfig(cat, vm, o)
	if err != nil {
		return Summary{}, guest.Stats{}, err
	}
	if o.Guest.User == "" {
		o.Guest.User = cfg.User
	}
	r, err := guest.Dial(ctx, cfg)
	if err != nil {
		return Summary{}, guest.Stats{}, &TaskError{Phase: PhaseGuest, Task: "connect over SSH to " + cfg.User + "@" + cfg.Addr, Err: err}
	}
	defer r.Close()
	sum, h, err := runGuestPhase(ctx, r, vm, o.Guest, true)
	if err == nil {
		_, err = proveGuest(ctx, h, vm, o.Guest, &sum)
	}
	return sum, r.Stats(), err
}

// Verify connects to the catalog VM (or o.Target) and runs VerifyGuest: read-only.
func Verify(ctx context.Context, cat *catalog.Catalog, vmName string, o HostOptions) (VerifyReport, error) {
	vm, err := cat.VM(vmName)
	if err != nil {
		return VerifyReport{VM: vmName}, err
	}
	cfg, err := GuestConfig(cat, vm, o)
	if err != nil {
		return VerifyReport{VM: vmName}, err
	}
	if o.Guest.User == "" {
		o.Guest.User = cfg.User
	}
	r, err := guest.Dial(ctx, cfg)
	if err != nil {
		return VerifyReport{VM: vmName}, fmt.Errorf("connect over SSH to %s@%s: %w", cfg.User, cfg.Addr, err)
	}
	defer r.Close()
	return VerifyGuest(ctx, r, vm, o.Guest)
}
