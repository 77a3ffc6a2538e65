//go:build reliability

package reliability

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aimachine/aimachine/provision/internal/testhook"
)

// pausedRun starts a deploy that pauses at point and waits until it says so.
func (h *harness) pausedRun(t *testing.T, ctx context.Context, point string) (*exec.Cmd, *strings.Builder, chan error) {
	t.Helper()
	cmd := h.command(ctx, []string{testhook.Env + "=" + point}, "deploy", "--vm", vmName)
	pr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var errOut strings.Builder
	ready := make(chan bool, 1)
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			errOut.WriteString(sc.Text() + "\n")
			if !seen && sc.Text() == testhook.Ready+" "+point {
				seen = true
				ready <- true
			}
		}
		if !seen {
			ready <- false
		}
		done <- cmd.Wait()
	}()
	select {
	case ok := <-ready:
		if !ok {
			err := <-done
			t.Fatalf("the deploy ended (%v) without reaching %s:\n%s", err, point, errOut.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("the deploy did not reach %s:\n%s", point, errOut.String())
	}
	return cmd, &errOut, done
}

// TestCrashAtEveryPhaseBoundary kills the CLI (SIGKILL, SIGINT) at every phase boundary of a
// deploy; the next deploy converges with 0 orphans and 0 duplicate VMs, and verify passes.
func TestCrashAtEveryPhaseBoundary(t *testing.T) {
	points := append([]string{testhook.AfterLease}, testhook.Points...)
	for _, sig := range []os.Signal{syscall.SIGKILL, syscall.SIGINT} {
		for _, point := range points {
			t.Run(fmt.Sprintf("%s/%s", map[os.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGINT: "SIGINT"}[sig], point), func(t *testing.T) {
				h := newHarness(t, hopts{})
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				if point == testhook.AfterLease {
					// The lease is taken on an existing VM: deploy it, then stop it.
					if r := h.deploy(ctx); r.code != 0 {
						t.Fatalf("first deploy:\n%s", r)
					}
					if err := h.s.API().KillQEMU(140); err != nil {
						t.Fatal(err)
					}
				}
				cmd, errOut, done := h.pausedRun(t, ctx, point)
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				err := <-done
				code := cmd.ProcessState.ExitCode()
				switch sig {
				case syscall.SIGKILL:
					if code != -1 {
						t.Fatalf("SIGKILL: exit %d (%v)", code, err)
					}
				case syscall.SIGINT:
					// Interrupted before the end: exit 1 saying so; at before-release the
					// work is done and the run may still succeed.
					if code != 0 && (code != 1 || !strings.Contains(errOut.String(), "interrupted")) {
						t.Fatalf("SIGINT at %s: exit %d, want 1 with 'interrupted':\n%s", point, code, errOut)
					}
				}
				t.Logf("after %s at %s (exit %d):\n%s", sig, point, code, errOut)
				// What the killed run left: no lock, no leaked reservation, no duplicates.
				h.checkClean(t)
				h.converges(t, ctx)
				if n := len(h.snapshot().VMs); n != 1 {
					t.Fatalf("%d VMs after the re-run, want 1: %+v", n, h.snapshot().VMs)
				}
			})
		}
	}
}
