package tasks

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/engine"
)

// An NVIDIA driver whose kernel module comes from DKMS builds it in nvidia-dkms-*'s postinst.
// When that build fails, dpkg leaves the package half-configured, apt exits 100 and every
// later apt run tries the build again ("N not fully installed or removed."); ubuntu-drivers
// still exits 0 (guest.md §2.4, §10.2). This file finds such leftovers, finishes them on a
// re-run with an explicit `dpkg --configure -a`, and explains a failed build.

// makeLogGlob is where dkms leaves the log of a failed build (guest.md §10.2).
const makeLogGlob = "/var/lib/dkms/nvidia/*/build/make.log"

// unfinishedDriverPackages lists the NVIDIA packages dpkg left unpacked or half-configured,
// sorted by name.
func unfinishedDriverPackages(d map[string]Package) []Package {
	var out []Package
	for name, p := range d {
		if p.Unfinished() && (strings.HasPrefix(name, "nvidia-") || strings.HasPrefix(name, "linux-modules-nvidia-") || strings.HasPrefix(name, "libnvidia-")) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func describePackages(ps []Package) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Name + " (" + p.State() + ")"
	}
	return strings.Join(parts, ", ")
}

func packageNames(ps []Package) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// driverDiag is what the guest says about a driver install that did not finish.
type driverDiag struct {
	dpkg     string // dpkg-query lines of the packages asked about
	kernel   string // uname -r
	modinfo  string // modinfo -F filename nvidia (output)
	moduleOK bool   // modinfo found an nvidia module for the running kernel
	dkms     string // dkms status
	makeLogs string // "$ tail …/make.log" blocks, one per failed build
}

// diagnoseDriver reads, in one exec session, the dpkg state of pkgs, the running kernel,
// whether an nvidia module exists for it, dkms status and the tail of every make.log a failed
// DKMS build left. Read-only.
func (h *Host) diagnoseDriver(ctx context.Context, pkgs []string) (driverDiag, error) {
	var d driverDiag
	if len(pkgs) == 0 {
		pkgs = []string{"nvidia-*", "linux-modules-nvidia-*", "libnvidia-*"}
	}
	quoted := make([]string, len(pkgs))
	for i, p := range pkgs {
		quoted[i] = guest.Quote(p)
	}
	q := "dpkg-query -W --showformat='${Package}\\t${Status}\\t${Version}\\n' " + strings.Join(quoted, " ") + " 2>&1"
	script := "export LC_ALL=C; " + q + "; echo ::kernel; uname -r; echo ::modinfo; modinfo -F filename nvidia 2>&1 && echo ::module-ok; echo ::dkms; dkms status 2>&1; echo ::makelog; for f in " + makeLogGlob + "; do [ -r \"$f\" ] || continue; echo \"\\$ tail -n 30 $f\"; tail -n 30 \"$f\"; done"
	res, err := h.Root(ctx, script)
	var ee *guest.ExitError
	if err != nil && !errors.As(err, &ee) {
		return d, err
	}
	sec := splitSections(res.Stdout, "dpkg", []string{"kernel", "modinfo", "dkms", "makelog"})
	d.dpkg = strings.TrimSpace(sec["dpkg"])
	d.kernel = strings.TrimSpace(sec["kernel"])
	mi, ok := strings.CutSuffix(strings.TrimSpace(sec["modinfo"]), "::module-ok")
	d.modinfo, d.moduleOK = strings.TrimSpace(mi), ok
	d.dkms = strings.TrimSpace(sec["dkms"])
	d.makeLogs = strings.TrimSpace(sec["makelog"])
	return d, nil
}

// splitSections cuts out into the parts after "::name" marker lines; text before the first
// marker goes to first.
func splitSections(out, first string, names []string) map[string]string {
	sec := map[string]string{}
	cur := first
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	for _, line := range strings.SplitAfter(out, "\n") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "::"); ok && known[n] {
			cur = n
			continue
		}
		sec[cur] += line
	}
	return sec
}

// dkmsHint tells what to fix after a failed DKMS build of the NVIDIA module.
func dkmsHint(kernel string) string {
	if kernel == "" {
		kernel = "$(uname -r)"
	}
	return "the NVIDIA kernel module failed to build with DKMS (make.log above): install the headers matching the running kernel " +
		"(sudo apt-get install linux-headers-" + kernel + "), check that gcc is the version the kernel was built with " +
		"(cat /proc/version vs gcc --version) and that Secure Boot is off or the DKMS key enrolled (mokutil --sb-state), " +
		"then re-run: the tool finishes the half-configured package with dpkg --configure -a. " +
		"A kernel for which Ubuntu ships prebuilt linux-modules-nvidia-* avoids DKMS altogether (sudo apt-get update && sudo apt-get full-upgrade, reboot)"
}

// isDKMSFailure reports apt/dpkg output of a failed nvidia DKMS build or its postinst.
func isDKMSFailure(out string) bool {
	return strings.Contains(out, "Bad return status for module build") ||
		(strings.Contains(out, "dpkg: error processing package nvidia-") && strings.Contains(out, "dkms")) ||
		strings.Contains(out, "/var/lib/dkms/nvidia/")
}

// dkmsEvidence is what the driver task knows when a DKMS build failed.
type dkmsEvidence struct {
	cmd, out string // the command that failed and its output
	exited0  bool   // cmd's exit status says nothing (ubuntu-drivers install)
	pkgs     []string
	cause    error
	makeLog  string // a make.log tail already read, used when the guest gives none now
}

// dkmsFailure builds the driver task's failure after a command left NVIDIA packages
// unfinished: the packages and their dpkg state, apt's error lines, dkms status and the
// make.log tail, with a hint.
func (h *Host) dkmsFailure(ctx context.Context, e dkmsEvidence) error {
	cmd, out, exited0, pkgs, cause := e.cmd, e.out, e.exited0, e.pkgs, e.cause
	d, derr := h.diagnoseDriver(ctx, pkgs)
	if d.makeLogs == "" && strings.TrimSpace(e.makeLog) != "" {
		d.makeLogs = "$ tail -n 30 " + makeLogGlob + "\n" + strings.TrimSpace(e.makeLog)
	}
	broken := unfinishedDriverPackages(ParseDpkg(d.dpkg))
	what := "the DKMS build of the nvidia module failed"
	if len(broken) > 0 {
		states := make([]string, len(broken))
		for i, p := range broken {
			states[i] = p.Name + " " + p.State()
		}
		what = "left " + strings.Join(states, ", ") + ": the DKMS build of the nvidia module failed"
	}
	if d.kernel != "" {
		what += " for kernel " + d.kernel
	}
	var b strings.Builder
	note := ""
	if exited0 {
		note = " (exit 0, which proves nothing: dpkg decides)"
	}
	fmt.Fprintf(&b, "$ %s%s\n%s\n", cmd, note, aptLogN(out, 8))
	switch {
	case len(pkgs) > 0 && d.dpkg != "":
		fmt.Fprintf(&b, "$ dpkg-query -W %s\n%s\n", strings.Join(pkgs, " "), d.dpkg)
	case len(broken) > 0:
		b.WriteString("$ dpkg-query -W 'nvidia-*' (unfinished packages)\n")
		for _, p := range broken {
			fmt.Fprintf(&b, "%s\t%s\t%s\n", p.Name, p.Status, p.Version)
		}
	}
	if d.dkms != "" {
		fmt.Fprintf(&b, "$ dkms status\n%s\n", d.dkms)
	}
	if d.makeLogs != "" {
		b.WriteString(d.makeLogs + "\n")
	} else {
		fmt.Fprintf(&b, "(no %s: the build did not start or was cleaned)\n", makeLogGlob)
	}
	if derr != nil {
		fmt.Fprintf(&b, "(reading the DKMS state failed: %v)\n", derr)
	}
	err := fmt.Errorf("%s: %s", cmd, what)
	switch {
	case exited0:
		err = fmt.Errorf("%s exited 0, but %s", cmd, what)
	case cause != nil:
		err = fmt.Errorf("%s: %s: %w", cmd, what, cause)
	}
	return engine.Fail(err, dkmsHint(d.kernel), strings.TrimSpace(b.String()))
}

// finishUnfinished configures NVIDIA packages an earlier run left unpacked or half-configured
// (a failed DKMS build) with `dpkg --configure -a`, then confirms with dpkg-query that they are
// installed and with modinfo that an nvidia module exists for the running kernel.
func (h *Host) finishUnfinished(ctx context.Context, task string, broken []Package) (string, error) {
	names := packageNames(broken)
	h.progress(task, describePackages(broken)+" left by an earlier run: finishing with dpkg --configure -a")
	const cmd = "dpkg --configure -a"
	res, err := h.rootWithLockWait(ctx, task, "DEBIAN_FRONTEND=noninteractive "+cmd)
	if err != nil {
		var f *engine.Failure
		if errors.As(err, &f) || ctx.Err() != nil {
			return "", err
		}
		out := res.Stdout + res.Stderr
		if !isDKMSFailure(out) {
			return "", engine.Fail(fmt.Errorf("%s (to finish %s): %w", cmd, describePackages(broken), err),
				"dpkg could not finish the packages an earlier run left; if it reports dependency problems run 'sudo apt-get -f install' on the VM, then re-run", aptLog(out))
		}
		return "", h.dkmsFailure(ctx, dkmsEvidence{cmd: cmd, out: out, pkgs: names, cause: err})
	}
	h.Invalidate()
	d, err := h.diagnoseDriver(ctx, names)
	if err != nil {
		return "", err
	}
	if still := unfinishedDriverPackages(ParseDpkg(d.dpkg)); len(still) > 0 {
		return "", h.dkmsFailure(ctx, dkmsEvidence{cmd: cmd, out: res.Stdout + res.Stderr, exited0: true, pkgs: names})
	}
	if !d.moduleOK {
		return "", engine.Fail(fmt.Errorf("%s configured %s, but there is no nvidia kernel module for the running kernel %s", cmd, strings.Join(names, ", "), orDefault(d.kernel, "(unknown)")),
			"DKMS skips the build when the kernel headers are missing: install linux-headers-"+orDefault(d.kernel, "$(uname -r)")+" and run 'sudo dkms autoinstall' on the VM, then re-run",
			strings.TrimSpace("$ "+cmd+"\n"+guest.Tail(res.Stdout+res.Stderr, 20)+"\n$ modinfo -F filename nvidia\n"+d.modinfo+"\n$ dkms status\n"+d.dkms))
	}
	msg := fmt.Sprintf("finished %s with %s; module %s", strings.Join(names, ", "), cmd, d.modinfo)
	h.progress(task, msg)
	return msg, nil
}
