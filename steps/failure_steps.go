package steps

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/fakes/simclient"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/pve"
)

func (w *World) registerFailureSteps(sc *godog.ScenarioContext) {
	// Scenario 7
	sc.Given(`^a Proxmox host with GPU passthrough enabled$`, w.aHostConfiguredWithGPUPassthrough)
	sc.Given(`^a VM "([^"]*)" is being provisioned with the GPU "([^"]*)"$`, w.aVMIsBeingProvisionedWithGPU)
	sc.When(`^GPU passthrough fails because the device is (busy|missing)$`, w.gpuPassthroughFails)
	sc.Then(`^the deployment reports a clear error naming the device "([^"]*)"$`, w.theErrorNamesTheDevice)
	sc.Then(`^the error gives actionable guidance$`, w.theErrorGivesGuidance)
	sc.Then(`^the VM is rolled back, or was never created$`, w.theVMIsRolledBackOrNeverCreated)
	sc.Then(`^no partial VM remains on the host$`, w.noPartialVMRemains)

	// Scenario 8
	sc.Given(`^the VM "([^"]*)" is provisioned$`, w.theVMIsProvisioned)
	sc.Given(`^the driver installation begins$`, w.theDriverInstallationBegins)
	sc.When(`^the driver installation fails because the DKMS module build fails$`, w.theDriverInstallFailsInDKMS)
	sc.Then(`^the deployment reports the failure clearly$`, w.theFailureIsReportedClearly)
	sc.Then(`^the run stops at the failed driver task$`, w.theRunStopsAtTheDriverTask)
	sc.Then(`^the error logs are shown$`, w.theErrorLogsAreShown)
	sc.Then(`^the VM remains accessible over SSH for debugging$`, w.theVMRemainsAccessible)
	sc.Then(`^a re-run after the cause is fixed succeeds$`, w.aReRunAfterTheFixSucceeds)
}

// ---- scenario 7 ----

// probeVM is the throwaway VM of the "missing GPU" example: never VM 140, never a VM this
// scenario did not create.
const (
	probeName = "vm-llm-gpufail-probe"
	probeID   = 9140
	probeIP   = "192.168.0.249" // never reached: the VM cannot start without its GPU
)

// addProbeVM adds the throwaway probe VM to the scenario's catalog (in memory), modelled on
// VM 140 but small and without services.
func addProbeVM(cat *catalog.Catalog, gpu string) error {
	base, err := cat.VM("vm-llm-aimachine")
	if err != nil {
		return err
	}
	for _, v := range cat.VMs {
		if v.ID == probeID {
			return fmt.Errorf("the catalog already has VM %d (%s): the probe id must be free", probeID, v.Name)
		}
	}
	p := *base
	p.ID, p.Name = probeID, probeName
	p.Cores, p.MemoryMB = 2, 2048
	p.Disk.SizeGB = 8
	p.Network.IP = probeIP
	g := *base.GPU
	g.PCIAddress, g.Mapping = gpu, ""
	p.GPU = &g
	p.Services = catalog.Services{}
	off := false
	p.OnBoot = &off
	p.Tags = []string{"aimachine-probe"}
	p.Description = "throwaway probe of the GPU-failure scenario; deleted by its rollback"
	cat.VMs = append(cat.VMs, p)
	return nil
}

func (w *World) aVMIsBeingProvisionedWithGPU(ctx context.Context, name, gpu string) error {
	if !w.t.simulated() && name != probeName {
		return fmt.Errorf("on a real host this scenario only provisions the throwaway VM %q, never %q", probeName, name)
	}
	if name == probeName {
		if err := addProbeVM(w.dcat, gpu); err != nil {
			return err
		}
	}
	vm, err := w.dcat.VM(name)
	if err != nil {
		return err
	}
	if vm.GPU == nil || !vm.GPU.Enabled || !strings.HasPrefix(vm.GPU.PCIAddress, gpu) {
		return fmt.Errorf("VM %s does not pass through %s", name, gpu)
	}
	// It must not exist yet: the scenario proves that what it created is rolled back.
	if _, err := w.client.API().VMConfig(ctx, vm.Node, vm.ID); !errors.Is(err, pve.ErrNotFound) {
		return fmt.Errorf("VM %d already exists (or cannot be read: %v): this scenario only deploys a VM it creates", vm.ID, err)
	}
	w.vmName, w.failVM, w.failGPU = name, name, gpu
	return nil
}

// busyVMID holds the GPU in the busy example.
const busyVMID = 141

// gpuPassthroughFails deploys with the options the CLI uses, after arranging the cause:
//   - busy (simulator): a race a real deployment meets. VM 141 lists the same GPU but is stopped
//     and not on boot, so the preflight passes (it only notes it); the simulator starts VM 141 the
//     moment aimachine's create task finishes, so PVE's start task of the new VM fails with
//     "PCI device '0000:01:00.0' already in use by VMID '141'" and the tool must roll back the VM
//     it created.
//   - missing: the host has no device at the address, so the tool's GPU preflight refuses before
//     any write.
func (w *World) gpuPassthroughFails(ctx context.Context, kind string) error {
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return err
	}
	w.failKind = kind
	switch kind {
	case "busy":
		if !w.t.simulated() {
			return errNoSimulator
		}
		dev := w.failGPU + ".0"
		if err := w.t.sim.Control().MarkPCIBusyAfter(ctx, vm.Node, dev, busyVMID, "qmcreate"); err != nil {
			return err
		}
		// scenario 7 keeps the holder's config in cfgBefore to prove the rollback left it alone
		if w.cfgBefore, err = w.client.API().VMConfig(ctx, vm.Node, busyVMID); err != nil {
			return fmt.Errorf("read VM %d, which holds the GPU: %w", busyVMID, err)
		}
		w.logf("simulator: VM %d (stopped, not on boot) lists %s and starts when the next create task on %s finishes", busyVMID, dev, vm.Node)
	case "missing":
		devs, err := w.client.API().PCIDevices(ctx, vm.Node)
		if err != nil {
			return err
		}
		for _, d := range devs {
			if strings.HasPrefix(d.ID, w.failGPU) {
				return fmt.Errorf("node %s has a device at %s (%s): pick an address it does not have", vm.Node, d.ID, d.DeviceName)
			}
		}
	}
	rs, err := w.client.API().Resources(ctx, "vm")
	if err != nil {
		return err
	}
	w.vmidsBefore = map[int]bool{}
	for _, r := range rs {
		w.vmidsBefore[r.VMID] = true
	}
	if w.vmidsBefore[vm.ID] {
		return fmt.Errorf("VM %d exists before the deployment: this scenario only rolls back a VM it creates", vm.ID)
	}
	if w.t.simulated() {
		st, err := w.t.sim.Control().Stats(ctx)
		if err != nil {
			return err
		}
		w.statsMark = &simMark{mutating: changingCalls(st.API), read: st.API.Read, guestSSH: st.Guest.SSHConnections, jump: st.Jump.Connections}
	}
	err = w.deploy(ctx, provision.DeployOptions{InfraOnly: true})
	if err == nil {
		return fmt.Errorf("the deployment of %s with a %s GPU succeeded", w.vmName, kind)
	}
	return nil
}

func (w *World) theErrorNamesTheDevice(device string) error {
	var te *provision.TaskError
	if !errors.As(w.deployErr, &te) {
		return fmt.Errorf("the error is not a provision.TaskError: %v", w.deployErr)
	}
	msg := w.deployErr.Error()
	want := map[string]string{
		"busy":    fmt.Sprintf("PCI device '%s' already in use by VMID '%d'", device, busyVMID),
		"missing": fmt.Sprintf("no PCI device found for '%s'", device),
	}[w.failKind]
	if !strings.Contains(msg, want) {
		return fmt.Errorf("the error does not say %q:\n%s", want, msg)
	}
	// busy: the race happens after the preflight, so PVE's start task is what fails;
	// missing: the preflight refuses before anything is written.
	wantTask := map[string]string{"busy": "start VM", "missing": "preflight"}[w.failKind]
	if !strings.HasPrefix(te.Task, wantTask) {
		return fmt.Errorf("the failed task is %q, want %q…", te.Task, wantTask)
	}
	return nil
}

func (w *World) theErrorGivesGuidance() error {
	var te *provision.TaskError
	if !errors.As(w.deployErr, &te) || te.Hint == "" {
		return fmt.Errorf("the error has no hint: %v", w.deployErr)
	}
	want := map[string]string{"busy": fmt.Sprintf("qm stop %d", busyVMID), "missing": "lspci"}[w.failKind]
	if !strings.Contains(te.Hint, want) {
		return fmt.Errorf("the hint %q does not say what to do (%q)", te.Hint, want)
	}
	return nil
}

// theVMIsRolledBackOrNeverCreated tells the two honest outcomes apart and checks the evidence of
// the one that happened:
//   - this run created the VM and rolled it back: the result says so, a "roll back VM <id>" task
//     was reported for exactly that VM, every VM that was there before is still listed and
//     (simulator) the only DELETE the API received is that VM's;
//   - the preflight refused before creating anything: no rollback was reported and the VM does not
//     exist; on the simulator the API received no mutating call at all.
//
// The busy example must take the first path (the GPU is taken only after the create), the missing
// example the second (the preflight sees the device is not there).
func (w *World) theVMIsRolledBackOrNeverCreated(ctx context.Context) error {
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return err
	}
	created := w.res != nil && w.res.Created
	switch {
	case w.failKind == "busy" && !created:
		return fmt.Errorf("the deployment failed before creating VM %d (%v): the busy example must reach PVE's start task and roll back", vm.ID, w.deployErr)
	case w.failKind == "missing" && created:
		return fmt.Errorf("the deployment created VM %d although the host has no %s: the GPU preflight should refuse first (%v)", vm.ID, w.failGPU, w.deployErr)
	}
	if created {
		w.logf("VM %d was created by this run and must be rolled back", vm.ID)
		return w.rolledBack(ctx, vm.Node, vm.ID)
	}
	w.logf("VM %d was never created: the preflight refused", vm.ID)
	return w.neverCreated(ctx, vm.Node, vm.ID)
}

func (w *World) rolledBack(ctx context.Context, node string, vmid int) error {
	if !w.res.RolledBack {
		return fmt.Errorf("the VM was not rolled back: %v", w.deployErr)
	}
	if !strings.Contains(w.deployErr.Error(), "rolled back") {
		return fmt.Errorf("the error does not say the VM was rolled back: %v", w.deployErr)
	}
	rolled := false
	for _, e := range w.eventsSince(0) {
		if strings.HasPrefix(e.Task, "roll back VM") && e.Status == provision.StatusChanged {
			if e.Task != fmt.Sprintf("roll back VM %d", vmid) {
				return fmt.Errorf("the run rolled back something else: %q (it created VM %d)", e.Task, vmid)
			}
			rolled = true
		}
	}
	if !rolled {
		return fmt.Errorf("no \"roll back VM %d\" task was reported", vmid)
	}
	rs, err := w.client.API().Resources(ctx, "vm")
	if err != nil {
		return err
	}
	still := map[int]pve.Resource{}
	for _, r := range rs {
		still[r.VMID] = r
	}
	for id := range w.vmidsBefore {
		if _, ok := still[id]; !ok {
			return fmt.Errorf("VM %d, which existed before the scenario, is gone: the rollback removed a VM this run did not create", id)
		}
	}
	if w.failKind == "busy" {
		// the VM holding the GPU is someone else's: still running, config unchanged
		h := still[busyVMID]
		if h.Status != "running" {
			return fmt.Errorf("VM %d, which holds the GPU, is %q after the rollback, want running", busyVMID, h.Status)
		}
		cfg, err := w.client.API().VMConfig(ctx, node, busyVMID)
		if err != nil {
			return err
		}
		if !maps.Equal(cfg, w.cfgBefore) {
			return fmt.Errorf("the config of VM %d changed during the scenario:\nbefore %v\nafter  %v", busyVMID, w.cfgBefore, cfg)
		}
	}
	if w.t.simulated() {
		st, err := w.t.sim.Control().Stats(ctx)
		if err != nil {
			return err
		}
		mine := fmt.Sprintf("DELETE /nodes/%s/qemu/%d", node, vmid)
		deletes := 0
		for k, n := range st.API.ByPath {
			if !strings.HasPrefix(k, "DELETE ") {
				continue
			}
			if k != mine {
				return fmt.Errorf("the API received %q (%d times): only %q may be deleted", k, n, mine)
			}
			deletes += n
		}
		if deletes == 0 {
			return fmt.Errorf("the API never received %q", mine)
		}
	}
	return nil
}

func (w *World) neverCreated(ctx context.Context, node string, vmid int) error {
	for _, e := range w.eventsSince(0) {
		if strings.HasPrefix(e.Task, "roll back") {
			return fmt.Errorf("a run that created nothing reported %q (%s)", e.Task, e.Status)
		}
	}
	if w.res != nil && w.res.RolledBack {
		return errors.New("the result says a VM was rolled back, but none was created")
	}
	if _, err := w.client.API().VMConfig(ctx, node, vmid); !errors.Is(err, pve.ErrNotFound) {
		return fmt.Errorf("VM %d exists (or cannot be read: %v) although the deployment says it never created it", vmid, err)
	}
	if !w.t.simulated() {
		return nil // live: the VM never existed (checked before the run and just now)
	}
	if w.statsMark == nil {
		return errors.New("no simulator counters were taken before the deployment")
	}
	st, err := w.t.sim.Control().Stats(ctx)
	if err != nil {
		return err
	}
	if d := changingCalls(st.API) - w.statsMark.mutating; d != 0 {
		var calls []string
		for k, n := range st.API.ByPath {
			if !strings.HasPrefix(k, "GET ") {
				calls = append(calls, fmt.Sprintf("%s ×%d", k, n))
			}
		}
		slices.Sort(calls)
		return fmt.Errorf("the refused deployment made %d mutating API calls (want 0): %s", d, strings.Join(calls, ", "))
	}
	return nil
}

func (w *World) noPartialVMRemains(ctx context.Context) error {
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return err
	}
	rs, err := w.client.API().Resources(ctx, "vm")
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.VMID == vm.ID {
			return fmt.Errorf("VM %d (%s) is still on node %s (%s)", r.VMID, r.Name, r.Node, r.Status)
		}
		if !w.vmidsBefore[r.VMID] {
			return fmt.Errorf("VM %d (%s) appeared during the scenario", r.VMID, r.Name)
		}
	}
	if _, err := w.client.API().VMConfig(ctx, vm.Node, vm.ID); !errors.Is(err, pve.ErrNotFound) {
		return fmt.Errorf("VM %d config still readable (err %v)", vm.ID, err)
	}
	return nil
}

// ---- scenario 8 ----

func (w *World) theVMIsProvisioned(ctx context.Context, name string) error {
	w.vmName = name
	if err := w.deploy(ctx, provision.DeployOptions{InfraOnly: true}); err != nil {
		return fmt.Errorf("provision %s: %w", name, err)
	}
	_, err := w.sh(ctx, "true")
	return err
}

// theDriverInstallationBegins checks the starting point: the GPU is there and no driver yet.
func (w *World) theDriverInstallationBegins(ctx context.Context) error {
	if err := w.theGPUIsVisibleViaPCIe(ctx); err != nil {
		return err
	}
	if out, err := w.sh(ctx, "command -v nvidia-smi || true"); err != nil || strings.TrimSpace(out) != "" {
		return fmt.Errorf("a driver is already installed (nvidia-smi at %q, %v)", strings.TrimSpace(out), err)
	}
	return nil
}

// theDriverInstallFailsInDKMS makes the guest build the driver with DKMS and that build fail,
// then runs the guest phase. Real hosts build with DKMS when Canonical's signed -open modules for
// the running kernel are not (yet) in the archive; the simulator models that with its
// no-prebuilt-modules fault, and the build failure with dkms-build-failure.
func (w *World) theDriverInstallFailsInDKMS(ctx context.Context) error {
	if !w.t.simulated() {
		return errNoSimulator
	}
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return err
	}
	if _, err := w.t.sim.Control().InjectGuestFault(ctx, simclient.GuestFault{Kind: simclient.FaultNoPrebuiltModules, VMID: vm.ID}); err != nil {
		return err
	}
	w.logf("simulator: no prebuilt linux-modules-nvidia-* for the guest's kernel (the driver must come from DKMS)")
	fired, err := w.installDriverWithFault(ctx, simclient.FaultDKMSBuild)
	if err != nil {
		return err
	}
	if fired == 0 {
		return fmt.Errorf("the %s fault never fired: the tool did not build the driver with DKMS (guest phase: %v)", simclient.FaultDKMSBuild, w.guestErr)
	}
	return nil
}

// installDriverWithFault injects kind for the VM, runs the guest phase over SSH and returns how
// often the fault fired; the phase's error is in w.guestErr.
func (w *World) installDriverWithFault(ctx context.Context, kind string) (int, error) {
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return 0, err
	}
	ctl := w.t.sim.Control()
	f, err := ctl.InjectGuestFault(ctx, simclient.GuestFault{Kind: kind, VMID: vm.ID})
	if err != nil {
		return 0, err
	}
	w.faultKind = f.Kind
	r, err := w.ssh(ctx)
	if err != nil {
		return 0, err
	}
	w.guestMark = w.eventCount()
	_, w.guestErr = provision.RunGuestPhase(ctx, r, w.dcat, vm, provision.GuestOptions{Reporter: w, ReportDir: reportsDir()})
	faults, _, err := ctl.GuestFaults(ctx)
	if err != nil {
		return 0, err
	}
	fired := 0
	for _, x := range faults {
		if x.ID == f.ID {
			fired = x.Fired
		}
	}
	w.faultFired = fired
	w.logf("fault %s fired %d times; guest phase: %v", f.Kind, fired, w.guestErr)
	if fired > 0 && w.guestErr == nil {
		return fired, fmt.Errorf("the guest phase succeeded although the %s fault fired", f.Kind)
	}
	return fired, nil
}

// failureCause is what the error and its log must name for the DKMS build failure.
func (w *World) failureCause() (inError, inLog string) {
	return "dkms", "make.log"
}

func (w *World) guestTaskError() (*provision.TaskError, error) {
	var te *provision.TaskError
	if !errors.As(w.guestErr, &te) {
		return nil, fmt.Errorf("the failure is not a provision.TaskError: %v", w.guestErr)
	}
	return te, nil
}

func (w *World) theFailureIsReportedClearly() error {
	te, err := w.guestTaskError()
	if err != nil {
		return err
	}
	cause, _ := w.failureCause()
	msg := strings.ToLower(te.Error() + "\n" + te.Log)
	if !strings.Contains(msg, cause) {
		return fmt.Errorf("the error does not name the cause (%q): %v", cause, te)
	}
	if te.Hint == "" {
		return fmt.Errorf("the error gives no hint: %v", te)
	}
	return nil
}

func (w *World) theRunStopsAtTheDriverTask(ctx context.Context) error {
	te, err := w.guestTaskError()
	if err != nil {
		return err
	}
	if te.Task != driverTask {
		return fmt.Errorf("the run failed at %q, want %q", te.Task, driverTask)
	}
	evs := w.eventsSince(w.guestMark)
	failedAt := -1
	for i, e := range evs {
		if e.Task == driverTask && e.Status == provision.StatusFailed {
			failedAt = i
		}
	}
	if failedAt < 0 {
		return errors.New("the driver task was not reported as failed")
	}
	for _, e := range evs[failedAt+1:] {
		if e.Phase == provision.PhaseGuest && e.Task != driverTask {
			return fmt.Errorf("the run went on after the failed driver task: %s %s", e.Task, e.Status)
		}
	}
	// In the VM: nothing after the driver was installed (Ollama would bring its own driver).
	out, err := w.sh(ctx, "command -v ollama; test -e /opt/vllm/venv/bin/vllm && echo /opt/vllm/venv/bin/vllm; true")
	if err != nil {
		return err
	}
	if s := strings.TrimSpace(out); s != "" {
		return fmt.Errorf("the run installed more after the failed driver task:\n%s", s)
	}
	return nil
}

// theErrorLogsAreShown requires the error to carry the DKMS build log: the last lines of the
// make.log in the VM (read over SSH) must be in the error's log, and the bundle names the task.
func (w *World) theErrorLogsAreShown(ctx context.Context) error {
	te, err := w.guestTaskError()
	if err != nil {
		return err
	}
	if _, want := w.failureCause(); !strings.Contains(te.Log, want) {
		return fmt.Errorf("the error's log tail does not show %q:\n%s", want, te.Log)
	}
	out, err := w.sh(ctx, "sudo -n sh -c 'tail -n 3 /var/lib/dkms/nvidia/*/build/make.log'")
	if err != nil {
		return fmt.Errorf("read the DKMS make.log in the VM: %w", err)
	}
	lines := 0
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		lines++
		if !strings.Contains(te.Log, l) {
			return fmt.Errorf("the error's log does not show the make.log line %q:\n%s", l, te.Log)
		}
	}
	if lines == 0 {
		return errors.New("the DKMS make.log in the VM is empty")
	}
	if te.Bundle == "" {
		return errors.New("no log bundle was written")
	}
	b, err := os.ReadFile(filepath.Join(te.Bundle, "failure.txt"))
	if err != nil {
		return fmt.Errorf("log bundle: %w", err)
	}
	if !strings.Contains(string(b), driverTask) {
		return fmt.Errorf("%s/failure.txt does not name the driver task:\n%s", te.Bundle, b)
	}
	return nil
}

func (w *World) theVMRemainsAccessible(ctx context.Context) error {
	w.closeRunner()
	vm, _ := w.dcat.VM(w.vmName)
	st, err := w.client.API().VMStatus(ctx, vm.Node, vm.ID)
	if err != nil {
		return err
	}
	if !st.Running() {
		return fmt.Errorf("VM %d is %s after the failed driver install", vm.ID, st.Status)
	}
	out, err := w.sh(ctx, "echo reachable; sudo -n true && echo sudo")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "reachable") || !strings.Contains(out, "sudo") {
		return fmt.Errorf("SSH with sudo for debugging failed:\n%s", out)
	}
	return nil
}

func (w *World) aReRunAfterTheFixSucceeds(ctx context.Context) error {
	// The cause is fixed: the build succeeds again (the archive may still lack prebuilt
	// modules, so the re-run builds with DKMS if it did before).
	n, err := w.t.sim.Control().ClearGuestFaults(ctx, w.faultKind)
	if err != nil {
		return err
	}
	w.logf("cleared %d %s faults", n, w.faultKind)
	if err := w.deploy(ctx, provision.DeployOptions{}); err != nil {
		return fmt.Errorf("re-run: %w", err)
	}
	if err := w.nvidiaSMIIsAvailable(ctx); err != nil {
		return err
	}
	w.verify = nil
	return w.theDeploymentCompletes(ctx, 0)
}
