package guestsimtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fakeguest "github.com/aimachine/aimachine/fakes/guest"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/guest"
)

const driverTask = "install the NVIDIA open driver"

// events records a run's finished tasks ("changed install the NVIDIA open driver") and its
// progress messages.
type events struct {
	done     []string
	progress []string
}

func (e *events) reporter() provision.Reporter {
	return provision.ReporterFunc(func(ev provision.Event) {
		if ev.Status == "" {
			e.progress = append(e.progress, ev.Task+": "+ev.Message)
			return
		}
		e.done = append(e.done, string(ev.Status)+" "+ev.Task)
	})
}

func (w *world) inject(t *testing.T, kinds ...string) {
	t.Helper()
	for _, k := range kinds {
		if _, err := w.f.InjectFault(fakeguest.Fault{Kind: k, VMID: 140}); err != nil {
			t.Fatal(err)
		}
	}
}

// guestOut runs a read-only command on the guest and returns its stdout (any exit code).
func guestOut(t *testing.T, r guest.Runner, cmd string) string {
	t.Helper()
	res, err := r.Run(context.Background(), cmd)
	var ee *guest.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", cmd, err)
	}
	return res.Stdout
}

// A driver install whose DKMS build fails (no prebuilt modules for the running kernel, so
// ubuntu-drivers offers the driver only through nvidia-dkms) stops at the driver task with the
// make.log tail, the dpkg error and a hint, leaves the VM reachable and a log bundle; once the
// cause is fixed, a plain re-run configures the half-configured package itself with
// `dpkg --configure -a` (not as a side effect of another apt run), and the machine verifies.
func TestSimulatedGuestDKMSBuildFailureThenResume(t *testing.T) {
	w := start(t)
	w.inject(t, fakeguest.FaultNoPrebuiltModules, fakeguest.FaultDKMSBuild)
	r := w.dial(t)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var ev events
	sum, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("dkms", ev.reporter()))
	var te *provision.TaskError
	if !errors.As(err, &te) {
		t.Fatalf("want a *TaskError from the driver task, got %v", err)
	}
	t.Logf("failure: %v\nlog:\n%s", te, te.Log)
	if te.Task != driverTask || !strings.HasPrefix(te.Error(), driverTask+": ") || te.Phase != "guest" || sum.Failed != 1 {
		t.Fatalf("failed task %q phase %q recap %+v (%v), want %q in the guest phase, 1 failed", te.Task, te.Phase, sum, te, driverTask)
	}
	// ubuntu-drivers exits 0 after the failed postinst: the error says dpkg decided.
	if !strings.Contains(te.Error(), "exited 0, but") {
		t.Errorf("the error does not say ubuntu-drivers' exit 0 proved nothing: %v", te)
	}
	bundle := filepath.Join(w.reports, "vm-llm-aimachine-dkms")
	if te.Bundle != bundle || !strings.Contains(te.Error(), bundle) || strings.Contains(te.Hint, bundle) {
		t.Errorf("bundle %q, error %q: want %s in Bundle and Error(), not in the hint", te.Bundle, te.Error(), bundle)
	}
	for _, f := range []string{"transcript.log", "failure.txt"} {
		if b, err := os.ReadFile(filepath.Join(bundle, f)); err != nil || strings.Contains(string(b), apiKey) {
			t.Errorf("%s: %v, or it holds the vLLM API key", f, err)
		}
	}
	for _, want := range []string{
		"/var/lib/dkms/nvidia/",       // the make.log path
		"error: implicit declaration", // the compiler error from make.log's tail
		"make: *** [Makefile:82: modules] Error 2",
		"Bad return status for module build",                                // dkms's message
		"post-installation script subprocess returned error exit status 10", // dpkg's
		"half-configured",                                                   // the package state dpkg-query reports
	} {
		if !strings.Contains(te.Log, want) {
			t.Errorf("failure log lacks %q", want)
		}
	}
	for _, want := range []string{"linux-headers-", "Secure Boot", "gcc", "re-run"} {
		if !strings.Contains(te.Hint, want) {
			t.Errorf("hint lacks %q: %s", want, te.Hint)
		}
	}
	if last := ev.done[len(ev.done)-1]; last != "failed "+driverTask {
		t.Errorf("the run went on after the driver task: last event %q", last)
	}
	b, err := os.ReadFile(filepath.Join(te.Bundle, "failure.txt"))
	if err != nil || !strings.Contains(string(b), "error: implicit declaration") {
		t.Fatalf("log bundle %q: %v (failure.txt has the make.log tail: %v)", te.Bundle, err, strings.Contains(string(b), "error: implicit declaration"))
	}

	// The VM stays up and reachable, with the package left half-configured for the re-run.
	if _, err := r.Run(ctx, "true"); err != nil {
		r.Close()
		r = w.dial(t)
	}
	st := guestOut(t, r, "dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' 'nvidia-dkms-*'")
	if !strings.Contains(st, "iF  nvidia-dkms-") && !strings.Contains(st, "iF nvidia-dkms-") {
		t.Fatalf("nvidia-dkms is not left half-configured:\n%s", st)
	}

	// A re-run before the cause is fixed tries the build again through dpkg --configure -a
	// and fails the same way, with the same evidence.
	_, err = provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("still-broken", nil))
	if !errors.As(err, &te) || te.Task != driverTask || !strings.Contains(te.Error(), "dpkg --configure -a") ||
		!strings.Contains(te.Log, "error: implicit declaration") || !strings.Contains(te.Hint, "linux-headers-") {
		t.Fatalf("re-run with the build still failing: %v", err)
	}
	t.Logf("re-run with the build still failing: %v", te.Err)

	// The cause is fixed (the build now succeeds); the prebuilt modules are still missing.
	if n := w.f.ClearFaults(fakeguest.FaultDKMSBuild); n != 1 {
		t.Fatalf("cleared %d dkms-build-failure faults", n)
	}
	var ev2 events
	if _, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("resume", ev2.reporter())); err != nil {
		t.Fatalf("re-run after fixing the DKMS build: %v", err)
	}
	if !contains(ev2.done, "changed "+driverTask) {
		t.Errorf("the re-run did not report the driver task as changed: %v", ev2.done)
	}
	for _, p := range ev2.progress {
		if strings.HasPrefix(p, driverTask+": ") && len(p) > len(driverTask)+2 {
			t.Logf("re-run progress: %s", p)
		}
	}
	if !containsSub(ev2.progress, "dpkg --configure -a") {
		t.Errorf("the re-run did not say it resumed the half-configured package: %v", ev2.progress)
	}
	// dpkg --configure -a ran explicitly, before any apt-get install of this run.
	tr, err := os.ReadFile(filepath.Join(w.reports, "vm-llm-aimachine-resume", "transcript.log"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, inst := strings.Index(string(tr), "dpkg --configure -a"), strings.Index(string(tr), "apt-get -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y install")
	if cfg < 0 || (inst >= 0 && inst < cfg) {
		t.Errorf("the re-run did not configure nvidia-dkms explicitly before other apt runs (dpkg --configure -a at %d, first apt-get install at %d)", cfg, inst)
	}
	if st := guestOut(t, r, "dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' 'nvidia-dkms-*' 'linux-modules-nvidia-*'"); !strings.Contains(st, "ii  nvidia-dkms-") || strings.Contains(st, "ii  linux-modules-nvidia-") {
		t.Errorf("after the re-run dpkg shows:\n%s\nwant nvidia-dkms-* installed and no prebuilt modules", st)
	}
	if fn := guestOut(t, r, "modinfo -F filename nvidia"); !strings.Contains(fn, "/updates/dkms/") {
		t.Errorf("the nvidia module is not the DKMS build: %q", fn)
	}
	rep, err := provision.VerifyGuest(ctx, r, w.vm, w.opts("verify", nil))
	if err != nil || !rep.OK() {
		t.Fatalf("verify after the resumed run: %v %+v", err, rep.Failed())
	}
	sum, err = provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("again", nil))
	if err != nil || sum.Changed != 0 {
		t.Fatalf("third run: %d changed, %v", sum.Changed, err)
	}
}

// Without prebuilt modules for the running kernel (and a DKMS build that works) the tool takes
// the DKMS route: kernel headers, nvidia-dkms-*-open, an unsigned module that loads (Secure
// Boot off), and the whole stack verifies.
func TestSimulatedGuestDKMSRoute(t *testing.T) {
	w := start(t)
	w.inject(t, fakeguest.FaultNoPrebuiltModules)
	r := w.dial(t)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var ev events
	if _, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("dkms", ev.reporter())); err != nil {
		t.Fatalf("DKMS route: %v", err)
	}
	if !containsSub(ev.progress, "(modules nvidia-dkms-") {
		t.Errorf("the driver task did not say it chose a DKMS driver: %v", ev.progress)
	}
	st := guestOut(t, r, "dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' 'nvidia-dkms-*' 'linux-modules-nvidia-*' 'linux-headers-*'")
	if !strings.Contains(st, "ii  nvidia-dkms-") || !strings.Contains(st, "-open") || strings.Contains(st, "ii  linux-modules-nvidia-") || !strings.Contains(st, "ii  linux-headers-") {
		t.Errorf("dpkg after the DKMS route:\n%s", st)
	}
	if lic := guestOut(t, r, "modinfo -F license nvidia"); strings.TrimSpace(lic) != "Dual MIT/GPL" {
		t.Errorf("module license %q, want the open module", lic)
	}
	rep, err := provision.VerifyGuest(ctx, r, w.vm, w.opts("verify", nil))
	if err != nil || !rep.OK() {
		t.Fatalf("verify after the DKMS route: %v %+v", err, rep.Failed())
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func containsSub(l []string, s string) bool {
	for _, x := range l {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}
