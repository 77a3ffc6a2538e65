//go:build !testhook

package testhook

import "context"

// Enabled reports whether this build pauses (built with -tags testhook).
const Enabled = false

// Pause does nothing: this build does not read AIMACHINE_TEST_PAUSE_AT.
func Pause(context.Context, string) {}
