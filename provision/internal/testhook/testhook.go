// Package testhook lets crash tests stop the CLI at a named point of a run. In a binary built
// with -tags testhook (the reliability suite builds one), AIMACHINE_TEST_PAUSE_AT=<point> makes
// Pause write "AIMACHINE_PAUSED <point>" on stderr and block until the context ends (SIGINT
// cancels it) or the process is killed. Any other build (the shipped binary) never reads the
// variable: Pause does nothing. The points are the phase boundaries of a deploy (Points).
package testhook

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
