package guest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Runner runs commands on a guest. Implementations reuse one SSH connection.
type Runner interface {
	// Run executes cmd with /bin/sh -c semantics. A non-zero exit returns *ExitError
	// (with the Result filled as well). A connection lost mid-command returns an error
	// matching ErrConnectionLost.
	Run(ctx context.Context, cmd string) (Result, error)
	// Put writes data to path with mode (through sudo when the user is not root),
	// atomically (a temporary file renamed into place), creating the parent directory.
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
	Connections     int // successful SSH handshakes with the guest
	JumpConnections int // successful SSH handshakes with the jump host
	Sessions        int // exec sessions opened on the guest
	Reconnects      int // successful Reconnect calls
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Cmd        string
	Code       int
	StderrTail string
}

func (e *ExitError) Error() string {
	tail := e.StderrTail
	if tail == "" {
		tail = "(no stderr)"
	}
	return fmt.Sprintf("command %q exited %d: %s", shorten(e.Cmd, 200), e.Code, tail)
}

// ErrConnectionLost is matched (errors.Is) by the error of a command whose SSH connection
// went away before it reported an exit status — a reboot, a dropped link. The command may
// or may not have run; callers re-check state before retrying.
var ErrConnectionLost = errors.New("ssh connection lost")

// ErrHostKey is matched (errors.Is) by a refused host key: unknown or changed.
var ErrHostKey = errors.New("host key not trusted")

// ErrNotLoopback is matched by a direct TCP dial refused by Config.LoopbackOnly.
var ErrNotLoopback = errors.New("refusing a direct TCP dial to a non-loopback address")

// Config tells Dial how to reach a guest.
type Config struct {
	// Addr is host:port of the guest's sshd as seen from the jump host (or directly);
	// a missing port means 22.
	Addr string
	User string
	// KeyFile is a private key file; when empty, SSH_AUTH_SOCK (ssh-agent) is used.
	KeyFile string
	// KnownHostsFile holds pinned host keys (default ~/.config/aimachine/known_hosts).
	KnownHostsFile string
	// HostKeyAlias is the name the host key is pinned under (default: Addr).
	HostKeyAlias string
	// AcceptNewHostKey pins a host key seen for the first time into KnownHostsFile
	// (trust on first use). Only set it from an explicit user choice
	// (--accept-new-host-key); a changed key is refused all the same.
	AcceptNewHostKey bool
	// Jump is an optional bastion ("user@host:port").
	Jump *Jump
	// LoopbackOnly refuses any direct TCP dial to a non-loopback address (simulator mode).
	LoopbackOnly bool

	// DialTimeout bounds one TCP connect + SSH handshake (default 15s).
	DialTimeout time.Duration
	// KeepAlive is the interval of keepalive@openssh.com requests (default 15s; negative = off).
	// Three unanswered ones in a row close the connection.
	KeepAlive time.Duration
	// Backoff is the first wait between Reconnect attempts (default 1s), doubling up to
	// MaxBackoff (default 15s).
	Backoff, MaxBackoff time.Duration

	// Transcript, when set, receives every command with its exit code and output tails,
	// Secrets redacted.
	Transcript func(Entry)
	// Secrets are strings (API keys, tokens) replaced by [REDACTED] in the transcript and
	// in errors.
	Secrets []string
}

// Jump is an SSH bastion.
type Jump struct {
	Addr string
	User string
	// KeyFile for the bastion; empty = the same credentials as the guest.
	KeyFile string
	// HostKeyAlias is the name the bastion's host key is pinned under in the same
	// known_hosts file (default: Addr).
	HostKeyAlias string
}

// Entry is one command in a transcript.
type Entry struct {
	Time     time.Time
	Cmd      string
	ExitCode int // -1 when no exit status came back
	Stdout   string
	Stderr   string
	Duration time.Duration
	Err      string // transport error, if any
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
