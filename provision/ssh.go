package provision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/retry"
)

// SSHOptions say how to reach a guest over SSH.
type SSHOptions struct {
	// KnownHostsFile pins guest host keys (default DefaultKnownHostsFile()).
	KnownHostsFile string
	// ReplaceHostKey replaces a pinned key that differs (the VM was re-created on purpose).
	ReplaceHostKey bool
	// KeyFile is the private key; empty uses ssh-agent (SSH_AUTH_SOCK).
	KeyFile string
	// Jump overrides the catalog's jump host: "USER@HOST:PORT".
	Jump string
	// Timeout bounds the wait until SSH answers (default 5m).
	Timeout time.Duration
	// Dialing is a dial the caller began before connecting to the API (StartGuestDial); it is
	// used when it reaches the same guest, and closed otherwise.
	Dialing *GuestDial
}

// dialGuest opens an SSH Runner; a variable so that tests can replace it.
var dialGuest = guest.Dial

// SSHConfig is the guest.Config that reaches the catalog VM vmName (see GuestConfig), loopback-only
// when the client is in simulator mode.
func (c *Client) SSHConfig(cat *catalog.Catalog, vmName string, o SSHOptions) (guest.Config, error) {
	vm, err := cat.VM(vmName)
	if err != nil {
		return guest.Config{}, err
	}
	return c.sshConfig(cat, vm, o)
}

func (c *Client) sshConfig(cat *catalog.Catalog, vm *catalog.VM, o SSHOptions) (guest.Config, error) {
	loop := c.simulator
	return GuestConfig(cat, vm, HostOptions{KeyFile: o.KeyFile, KnownHostsFile: o.KnownHostsFile, Jump: o.Jump, LoopbackOnly: &loop})
}

// ParseJump parses a jump host "USER@HOST[:PORT]" (port defaults to 22).
func ParseJump(s string) (*guest.Jump, error) {
	user, addr, err := ParseTarget(s)
	if err != nil {
		return nil, fmt.Errorf("jump %w", err)
	}
	return &guest.Jump{Addr: addr, User: user}, nil
}

// ConnectGuest dials the catalog VM over SSH, waiting (bounded by o.Timeout and ctx, with
// backoff) while the guest does not answer yet. The host key must already be pinned (Deploy
// pins it through the guest agent).
func (c *Client) ConnectGuest(ctx context.Context, cat *catalog.Catalog, vmName string, o SSHOptions) (guest.Runner, error) {
	cfg, err := c.SSHConfig(cat, vmName, o)
	if err != nil {
		return nil, err
	}
	return c.dialWithRetry(ctx, cfg, o.Timeout, nil)
}

// sshRetryable accepts the dial failures that mean "not up yet".
func sshRetryable(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	if errors.Is(err, ErrHostKeyMismatch) || errors.Is(err, guest.ErrHostKey) {
		return "", false // a host key problem never fixes itself
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "no route to host", "i/o timeout", "connection reset",
		"EOF", "handshake failed: read", "host is down", "network is unreachable", "open failed", "connect failed"} {
		if strings.Contains(msg, s) {
			return "SSH not up yet: " + msg, true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "SSH not up yet: " + msg, true
	}
	return "", false
}

func (c *Client) dialWithRetry(ctx context.Context, cfg guest.Config, timeout time.Duration, onRetry func(int, string, error, time.Duration)) (guest.Runner, error) {
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r guest.Runner
	err := retry.Wait{
		Description: "wait for SSH on " + cfg.Addr, Backoff: c.backoff, Retryable: sshRetryable, OnRetry: onRetry,
	}.Do(ctx, func(ctx context.Context) error {
		var err error
		r, err = dialGuest(ctx, cfg)
		return err
	})
	return r, err
}
