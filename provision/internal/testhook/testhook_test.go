package testhook

import (
	"context"
	"testing"
	"time"
)

// TestTheShippedBuildNeverPauses: without -tags testhook, AIMACHINE_TEST_PAUSE_AT is not read
// (a user's environment cannot stop a deploy half way); the reliability suite builds the CLI
// with the tag and pauses it at every point.
func TestTheShippedBuildNeverPauses(t *testing.T) {
	if Enabled {
		t.Skip("built with -tags testhook")
	}
	t.Setenv(Env, AfterSSH)
	done := make(chan struct{})
	go func() {
		Pause(context.Background(), AfterSSH) // would block for ever in a testhook build
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Pause blocked: the shipped build reads " + Env)
	}
}
