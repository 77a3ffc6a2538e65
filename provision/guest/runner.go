// Package guest is the only SSH client code of aimachine: a Runner over one pinned,
// optionally jump-hosted SSH connection that reconnects after a reboot.
package guest

import (
	"context"
	"fmt"
	"io/fs"
)

// Runner runs commands on a guest. Implementations reuse one SSH connection.
type Runner interface {
	// Run executes cmd with /bin/sh -c semantics. A non-zero exit returns *ExitError
	// (with the Result filled as well).
	Run(ctx context.Context, cmd string) (Result, error)
	// Put writes data to path with mode (through sudo tee when the user is not root).
	Put(ctx context.Context, path string, mode fs.FileMode, data []byte) error
	// Reconnect drops the connection and dials again, waiting (bounded by ctx, with backoff)
	// until the guest answers — used after a reboot.
	Reconnect(ctx context.Context) error
	// Stats returns connection and session counters.
	Stats() Stats
	Close() error
}

// Result is a finished command.
type Result struct {
	Cmd      string
	Stdout   string
	Stderr   string
	ExitCode int
}

// Stats counts SSH work done by a Runner.
type Stats struct {
	Connections int // successful SSH handshakes
	Sessions    int // exec sessions opened
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Cmd        string
	Code       int
	StderrTail string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("command %q exited %d: %s", e.Cmd, e.Code, e.StderrTail)
}

// Config tells Dial how to reach a guest.
type Config struct {
	// Addr is host:port of the guest's sshd as seen from the jump host (or directly).
	Addr string
	User string
	// KeyFile is a private key file; when empty, SSH_AUTH_SOCK (ssh-agent) is used.
	KeyFile string
	// KnownHostsFile holds pinned host keys (default ~/.config/aimachine/known_hosts).
	KnownHostsFile string
	// HostKeyAlias is the name the host key is pinned under (default: Addr's host).
	HostKeyAlias string
	// Jump is an optional bastion ("user@host:port").
	Jump *Jump
	// LoopbackOnly refuses any direct TCP dial to a non-loopback address (simulator mode).
	LoopbackOnly bool
}

// Jump is an SSH bastion.
type Jump struct {
	Addr string
	User string
	// KeyFile for the bastion; empty = the same credentials as the guest.
	KeyFile string
	// KnownHostsAlias: the bastion's host key is pinned in the same known_hosts file.
}
