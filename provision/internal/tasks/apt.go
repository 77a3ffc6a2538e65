package tasks

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/engine"
)

// Lock messages of apt-get and dpkg (guest.md §10.2).
var lockRE = regexp.MustCompile(`Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock directory|is another process using it|dpkg frontend lock was locked by another process|dpkg status database is locked`)
var lockHolderRE = regexp.MustCompile(`held by process (\d+)(?: \(([^)]+)\))?`)

// aptCmd is apt-get, non-interactive, waiting a little for the lock itself.
func aptCmd(args string) string {
	return "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y " + args
}

// rootWithLockWait runs a root script that takes the apt/dpkg lock, retrying while another
// process (cloud-init, unattended-upgrades) holds it, bounded by AptLockTimeout. isLocked
// decides from the result whether the lock was the problem (for commands that exit 0 anyway).
func (h *Host) rootWithLockWait(ctx context.Context, task, script string) (guest.Result, error) {
	var res guest.Result
	var runErr error
	err := h.poll(ctx, task, "the apt/dpkg lock", h.P.AptLockTimeout, func(ctx context.Context) (bool, string, error) {
		res, runErr = h.Root(ctx, script)
		out := res.Stdout + res.Stderr
		if lockRE.MatchString(out) {
			holder := "another process"
			if m := lockHolderRE.FindStringSubmatch(out); m != nil {
				holder = "process " + m[1]
				if m[2] != "" {
					holder += " (" + m[2] + ")"
				}
			}
			return false, "held by " + holder, nil
		}
		return true, "", nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return res, err
		}
		return res, engine.Fail(fmt.Errorf("the apt/dpkg lock stayed taken: %w", err),
			"another package manager is still running (unattended-upgrades or cloud-init at first boot); wait for it or check 'ps aux | grep -E \"apt|dpkg\"' on the VM, then re-run",
			guest.Tail(res.Stdout+res.Stderr, 20))
	}
	return res, runErr
}

// aptGet runs apt-get ARGS as root with the lock wait, resuming an interrupted dpkg and
// retrying once after apt-get update when archives could not be fetched (a stale index).
func (h *Host) aptGet(ctx context.Context, task, args string) (guest.Result, error) {
	res, err := h.rootWithLockWait(ctx, task, aptCmd(args))
	if err == nil {
		return res, nil
	}
	var f *engine.Failure
	if errors.As(err, &f) || ctx.Err() != nil {
		return res, err
	}
	out := res.Stdout + res.Stderr
	retry := false
	if strings.Contains(out, "dpkg was interrupted") {
		if _, e := h.rootWithLockWait(ctx, task, "DEBIAN_FRONTEND=noninteractive dpkg --configure -a"); e == nil {
			retry = true
		}
	}
	if strings.Contains(out, "Unable to fetch some archives") || strings.Contains(out, "404  Not Found") {
		if _, e := h.rootWithLockWait(ctx, task, aptCmd("update")); e == nil {
			retry = true
		}
	}
	if retry {
		res, err = h.rootWithLockWait(ctx, task, aptCmd(args))
		if err == nil {
			return res, nil
		}
		out = res.Stdout + res.Stderr
	}
	if errors.As(err, &f) || ctx.Err() != nil {
		return res, err
	}
	return res, engine.Fail(fmt.Errorf("apt-get %s failed: %w", args, err), aptHint(out), aptLog(out))
}

func aptLog(out string) string { return aptLogN(out, 30) }

// aptLogN is apt's error lines, then its last n lines.
func aptLogN(out string, n int) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") || strings.HasPrefix(l, "Err:") || strings.Contains(l, "dpkg: error") || strings.Contains(l, "Error!") || strings.Contains(l, "returned error exit status") {
			keep = append(keep, l)
		}
	}
	tail := guest.Tail(out, n)
	if len(keep) == 0 {
		return tail
	}
	return strings.Join(keep, "\n") + "\n--- last lines ---\n" + tail
}

func aptHint(out string) string {
	switch {
	case strings.Contains(out, "404  Not Found") || strings.Contains(out, "does not have a Release file"):
		return "the package mirror answered 404: the index is stale or the mirror is broken; run 'sudo apt-get update' on the VM (or fix the mirror in /etc/apt/sources.list.d/) and re-run"
	case strings.Contains(out, "Unable to locate package") || strings.Contains(out, "has no installation candidate"):
		return "apt does not know the package: check the repository (apt-get update, the CUDA repo for cuda-toolkit) and the version asked for"
	case strings.Contains(out, "Temporary failure resolving") || strings.Contains(out, "Could not connect"):
		return "the VM cannot reach the package mirror: check its DNS, gateway and proxy"
	case strings.Contains(out, "dkms") || strings.Contains(out, "DKMS"):
		return "a DKMS kernel module build failed; see make.log above. Prefer Ubuntu's signed prebuilt linux-modules-nvidia-* packages, check linux-headers-$(uname -r), then re-run"
	case strings.Contains(out, "No space left on device"):
		return "the VM's disk is full: grow the disk in the catalog"
	}
	return "see the apt output above; fix the cause on the VM (it stays up) and re-run the deploy"
}

// packagesInstalled reports which of pkgs dpkg lists as installed.
func packagesMissing(dpkg map[string]Package, pkgs ...string) []string {
	var miss []string
	for _, p := range pkgs {
		if !dpkg[p].Installed() {
			miss = append(miss, p)
		}
	}
	return miss
}
