// Package testhook lets crash tests stop the CLI at a named point of a run: with
// AIMACHINE_TEST_PAUSE_AT=<point> set, Pause writes "AIMACHINE_PAUSED <point>" on stderr and
// blocks until the context ends (SIGINT cancels it) or the process is killed. Without the
// variable it does nothing. The points are the phase boundaries of a deploy (Points).
package testhook

import (
	"context"
	"fmt"
	"os"
)

// Env names the pause point.
const Env = "AIMACHINE_TEST_PAUSE_AT"

// Ready is the line written when paused.
const Ready = "AIMACHINE_PAUSED"

// The phase boundaries of a deploy, in order.
const (
	BeforeCreate   = "before-create"    // preflight passed, the create not yet posted
	AfterLease     = "after-lease"      // the run lease on an existing VM is held, nothing changed yet
	AfterCreate    = "after-create"     // the create task finished
	AfterStart     = "after-start"      // the start task finished
	AfterAgent     = "after-agent"      // the guest agent answers
	AfterCloudInit = "after-cloud-init" // cloud-init is done
	AfterHostKey   = "after-host-key"   // the guest's host key is pinned
	AfterSSH       = "after-ssh"        // the SSH connection is open
	AfterGuest     = "after-guest"      // the guest phase finished, before the proof
	BeforeRelease  = "before-release"   // everything done, the lease not yet released
)

// Points lists the pause points in the order a fresh deploy passes them (AfterLease is passed
// instead of BeforeCreate and AfterCreate when the VM exists).
var Points = []string{BeforeCreate, AfterCreate, AfterStart, AfterAgent, AfterCloudInit, AfterHostKey, AfterSSH, AfterGuest, BeforeRelease}

// Pause blocks at point when AIMACHINE_TEST_PAUSE_AT names it.
func Pause(ctx context.Context, point string) {
	if os.Getenv(Env) != point {
		return
	}
	fmt.Fprintf(os.Stderr, "%s %s\n", Ready, point)
	<-ctx.Done()
}
