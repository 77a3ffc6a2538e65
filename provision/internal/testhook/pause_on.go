//go:build testhook

package testhook

import (
	"context"
	"fmt"
	"os"
)

// Enabled reports whether this build pauses (built with -tags testhook).
const Enabled = true

// Pause blocks at point when AIMACHINE_TEST_PAUSE_AT names it.
func Pause(ctx context.Context, point string) {
	if os.Getenv(Env) != point {
		return
	}
	fmt.Fprintf(os.Stderr, "%s %s\n", Ready, point)
	<-ctx.Done()
}
