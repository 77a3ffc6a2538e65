//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalsStopEveryPhase runs a child process (this test binary) that sits in a phase
// which never looks at its context — the worst case — and checks the first SIGTERM cancels
// the context and the second ends the process by the signal, without waiting for the phase.
func TestSignalsStopEveryPhase(t *testing.T) {
	if os.Getenv("AIMACHINE_SIGNAL_CHILD") == "1" {
		ctx, stop := interruptible(os.Stderr)
		defer stop()
		os.Stdout.WriteString("ready\n")
		<-ctx.Done()
		os.Stdout.WriteString("cancelled\n")
		select {} // a phase that ignores its context from here on
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			// The bound only keeps a broken build from hanging the suite.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSignalsStopEveryPhase$")
			cmd.Env = append(os.Environ(), "AIMACHINE_SIGNAL_CHILD=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewScanner(out)
			expect := func(want string) {
				t.Helper()
				if !lines.Scan() || lines.Text() != want {
					t.Fatalf("child said %q, want %q (stderr: %s)", lines.Text(), want, stderr.String())
				}
			}
			expect("ready")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			expect("cancelled")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("child: %v", err)
			}
			ws := ee.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != sig {
				t.Errorf("child ended with %v, want killed by %v", ws, sig)
			}
			if !strings.Contains(stderr.String(), "send it again to quit at once") {
				t.Errorf("the first signal printed nothing: %q", stderr.String())
			}
		})
	}
}
