package steps

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/pve"
)

func (w *World) registerDeploySteps(sc *godog.ScenarioContext) {
	// Scenario 1
	sc.Given(`^a Proxmox host configured with GPU passthrough$`, w.aHostConfiguredWithGPUPassthrough)
	sc.Given(`^the Ubuntu 24\.04 cloud image is available on the host$`, w.theCloudImageIsAvailable)
	sc.Given(`^the infrastructure catalog includes "([^"]*)"$`, w.theCatalogIncludes)
	sc.When(`^the administrator runs the deployment of "([^"]*)"$`, w.theAdministratorRunsTheDeployment)
	sc.Then(`^the deployment plan validated before any change \(AC-9\)$`, w.thePlanValidatedBeforeAnyChange)
	sc.Then(`^a VM with ID (\d+) is created on Proxmox \(AC-1\)$`, w.aVMIsCreated)
	sc.Then(`^the VM has (\d+) CPU cores \(AC-2\)$`, w.theVMHasCores)
	sc.Then(`^the VM has (\d+) MB of RAM \(AC-3\)$`, w.theVMHasMemory)
	sc.Then(`^the VM has a (\d+) GB disk \(AC-4\)$`, w.theVMHasDisk)
	sc.Then(`^GPU passthrough is configured for "([^"]*)" \(AC-5\)$`, w.gpuPassthroughIsConfigured)
	sc.Then(`^the VM boots the Ubuntu 24\.04 cloud image \(AC-6\)$`, w.theVMBootsTheCloudImage)
	sc.Then(`^cloud-init configured the SSH keys \(AC-7\)$`, w.cloudInitConfiguredTheKeys)
	sc.Then(`^the VM is running and reachable over SSH$`, w.theVMIsRunningAndReachable)
	sc.Then(`^the NVIDIA open driver is installed \(AC-10\)$`, w.theOpenDriverIsInstalled)
	sc.Then(`^vLLM is installed \(AC-17\)$`, w.vllmIsInstalled)
	sc.Then(`^Ollama is installed \(AC-22\)$`, w.ollamaIsInstalled)
	sc.Then(`^the Makefile target "([^"]*)" runs the @live scenarios \(AC-27\)$`, w.theMakefileTargetRunsLive)
	sc.Then(`^the deployment completes successfully \(AC-(\d+)\)$`, w.theDeploymentCompletes)

	// Scenario 6
	sc.Given(`^the VM "([^"]*)" exists and is fully configured$`, w.theVMExistsFullyConfigured)
	sc.Given(`^the vLLM and Ollama services are running$`, w.theServicesAreRunning)
	sc.When(`^the administrator runs the deployment of "([^"]*)" again$`, w.theAdministratorRunsItAgain)
	sc.Then(`^the Proxmox API receives no changes$`, w.theAPIReceivesNoChanges)
	sc.Then(`^no guest task reports a change$`, w.noGuestTaskChanges)
	sc.Then(`^the services were not restarted$`, w.theServicesWereNotRestarted)
	sc.Then(`^the GPU still works$`, w.theGPUStillWorks)
}

// ---- helpers shared by the deployment scenarios ----

// deploy runs provision's Deploy of the scenario's VM and keeps the result.
func (w *World) deploy(ctx context.Context, o provision.DeployOptions) error {
	w.closeRunner()
	o.Reporter = w
	o.SSH = w.sshOpts
	o.Guest.ReportDir = reportsDir()
	if o.AgentTimeout == 0 {
		o.AgentTimeout = 10 * time.Minute
	}
	w.deploys++
	start := time.Now()
	w.logf("deploy %s (run %d)", w.vmName, w.deploys)
	res, err := w.client.Deploy(ctx, w.dcat, w.vmName, o)
	rec := runRecord{Started: start, Took: time.Since(start)}
	if err != nil {
		rec.Err = guest.RedactAll(err.Error(), w.secrets)
		w.logf("deploy failed: %v", err)
	}
	w.runs = append(w.runs, rec)
	w.res, w.deployErr = res, err
	if res != nil && res.Runner != nil {
		w.runner = guest.WithTranscript(res.Runner, w.transcribe, w.secrets...)
	}
	if err == nil && !o.InfraOnly {
		w.writeEvidence(ctx)
	}
	return err
}

// transcribe logs one SSH command.
func (w *World) transcribe(e guest.Entry) {
	w.logf("ssh $ %s  → exit %d\n%s%s", e.Cmd, e.ExitCode, indent(e.Stdout), indent(e.Stderr+e.Err))
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

// ensureDeployed deploys the VM fully once in this scenario; it must succeed.
func (w *World) ensureDeployed(ctx context.Context) error {
	if w.res != nil && w.deployErr == nil && w.res.GuestPhase {
		return nil
	}
	if err := w.deploy(ctx, provision.DeployOptions{}); err != nil {
		return fmt.Errorf("deploy %s: %w", w.vmName, err)
	}
	return nil
}

// ssh returns a runner to the VM: the deploy's connection, or a new one over provision's SSH.
func (w *World) ssh(ctx context.Context) (guest.Runner, error) {
	if w.runner != nil {
		return w.runner, nil
	}
	r, err := w.client.ConnectGuest(ctx, w.dcat, w.vmName, w.sshOpts)
	if err != nil {
		return nil, fmt.Errorf("SSH to %s: %w", w.vmName, err)
	}
	w.runner = guest.WithTranscript(r, w.transcribe, w.secrets...)
	return w.runner, nil
}

// sh runs cmd in the VM over SSH; a non-zero exit is an error naming the command and its output.
func (w *World) sh(ctx context.Context, cmd string) (string, error) {
	r, err := w.ssh(ctx)
	if err != nil {
		return "", err
	}
	res, err := r.Run(ctx, cmd)
	if err != nil {
		return res.Stdout, fmt.Errorf("in the VM: %s: %w\n%s", cmd, err, strings.TrimSpace(res.Stdout+"\n"+res.Stderr))
	}
	return res.Stdout, nil
}

// verifyReport runs provision's read-only verification once per deploy.
func (w *World) verifyReport(ctx context.Context) (*provision.VerifyReport, error) {
	if w.verify != nil {
		return w.verify, nil
	}
	r, err := w.ssh(ctx)
	if err != nil {
		return nil, err
	}
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return nil, err
	}
	rep, err := provision.VerifyGuest(ctx, r, vm, provision.GuestOptions{})
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", w.vmName, err)
	}
	for _, c := range rep.Checks {
		w.logf("verify %v %s: %s", c.Pass, c.Name, c.Evidence)
	}
	w.verify = &rep
	return w.verify, nil
}

// check requires the verification check whose name starts with prefix to pass.
func (w *World) check(ctx context.Context, prefix string) error {
	rep, err := w.verifyReport(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, c := range rep.Checks {
		if strings.HasPrefix(c.Name, prefix) {
			if !c.Pass {
				return fmt.Errorf("verification %q failed: %s", c.Name, c.Evidence)
			}
			return nil
		}
		names = append(names, c.Name)
	}
	return fmt.Errorf("no verification check %q (have: %s)", prefix, strings.Join(names, "; "))
}

// config reads the VM's config through provision's Proxmox API.
func (w *World) config(ctx context.Context) (pve.Config, error) {
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return nil, err
	}
	cfg, err := w.client.API().VMConfig(ctx, vm.Node, vm.ID)
	if err != nil {
		return nil, fmt.Errorf("read the config of VM %d: %w", vm.ID, err)
	}
	return cfg, nil
}

// gpuDevice finds the catalog GPU's function .0 on the node, with IOMMU.
func (w *World) aHostConfiguredWithGPUPassthrough(ctx context.Context) error {
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return err
	}
	devs, err := w.client.API().PCIDevices(ctx, vm.Node)
	if err != nil {
		return fmt.Errorf("list PCI devices of node %s: %w", vm.Node, err)
	}
	want := strings.ToLower(vm.GPU.Expect.PCIID)
	for _, d := range devs {
		id := strings.TrimPrefix(d.Vendor, "0x") + ":" + strings.TrimPrefix(d.Device, "0x")
		if id != want {
			continue
		}
		if d.IOMMUGroup < 0 {
			return fmt.Errorf("GPU %s (%s) on node %s has no IOMMU group: passthrough is not enabled (intel_iommu=on / amd_iommu)", d.ID, id, vm.Node)
		}
		if vm.GPU.PCIAddress != "" && !strings.HasPrefix(d.ID, vm.GPU.PCIAddress) {
			continue
		}
		w.logf("GPU %s %s %s in IOMMU group %d", d.ID, id, d.DeviceName, d.IOMMUGroup)
		return nil
	}
	return fmt.Errorf("node %s has no PCI device %s at %q", vm.Node, want, vm.GPU.PCIAddress)
}

func (w *World) theCloudImageIsAvailable(ctx context.Context) error {
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return err
	}
	volid := vm.Image.CloudImage
	storage, _, ok := strings.Cut(volid, ":")
	if !ok {
		return fmt.Errorf("image.cloud_image %q is not a volume id STORAGE:PATH", volid)
	}
	vols, err := w.client.API().StorageContent(ctx, vm.Node, storage)
	if err != nil {
		return fmt.Errorf("list storage %s on %s: %w", storage, vm.Node, err)
	}
	for _, v := range vols {
		if v.VolID == volid {
			return nil
		}
	}
	return fmt.Errorf("the cloud image %s is not on storage %s of node %s (hint: download Ubuntu's noble-server-cloudimg-amd64.img into the storage's import content under a .qcow2 name: README, 'Putting the cloud image on the host')", volid, storage, vm.Node)
}

func (w *World) theCatalogIncludes(name string) error {
	vm, err := w.dcat.VM(name)
	if err != nil {
		return err
	}
	w.vmName = vm.Name
	return nil
}

func (w *World) theAdministratorRunsTheDeployment(ctx context.Context, name string) error {
	w.vmName = name
	// The plan is computed with reads only and must be clean before anything changes.
	var before int
	if w.t.simulated() {
		st, err := w.t.sim.Control().Stats(ctx)
		if err != nil {
			return err
		}
		before = changingCalls(st.API)
	}
	p, err := w.client.Plan(ctx, w.dcat, name)
	if err != nil {
		return fmt.Errorf("plan %s: %w", name, err)
	}
	w.plan = p
	if w.t.simulated() {
		st, err := w.t.sim.Control().Stats(ctx)
		if err != nil {
			return err
		}
		if d := changingCalls(st.API) - before; d != 0 {
			return fmt.Errorf("computing the plan made %d mutating API calls", d)
		}
	}
	w.logf("plan:\n%s", p.String())
	return w.deploy(ctx, provision.DeployOptions{})
}

func (w *World) thePlanValidatedBeforeAnyChange() error {
	if w.plan == nil {
		return errors.New("no plan was computed")
	}
	if w.plan.Preflight != nil {
		return fmt.Errorf("the plan's preflight failed: %w", w.plan.Preflight)
	}
	if w.plan.Exists == false && w.plan.Changes() == 0 {
		return errors.New("the plan for a new VM has no create action")
	}
	if w.plan.Exists {
		// An existing VM gets no preflight: the read-only plan above validated it.
		w.logf("VM exists: the read-only plan validated it (%d changes planned)", w.plan.Changes())
		return nil
	}
	// In the deploy, the preflight finished OK before the first change.
	for _, e := range w.eventsSince(0) {
		if e.Status == "" {
			continue
		}
		if strings.HasPrefix(e.Task, "preflight") {
			if e.Status != provision.StatusOK {
				return fmt.Errorf("preflight %s: %s", e.Status, e.Message)
			}
			return nil
		}
		if e.Status == provision.StatusChanged {
			return fmt.Errorf("%q changed the host before the preflight ran", e.Task)
		}
	}
	return errors.New("the deployment reported no preflight task")
}

func (w *World) aVMIsCreated(ctx context.Context, id int) error {
	if err := w.deployOK(); err != nil {
		return err
	}
	rs, err := w.client.API().Resources(ctx, "vm")
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.VMID == id {
			if r.Name != w.vmName {
				return fmt.Errorf("VM %d is named %q, want %q", id, r.Name, w.vmName)
			}
			if !w.res.Created && w.deploys == 1 && w.t.simulated() {
				return fmt.Errorf("VM %d exists but this deployment did not create it", id)
			}
			return nil
		}
	}
	return fmt.Errorf("no VM %d in the cluster resources", id)
}

func (w *World) deployOK() error {
	if w.deployErr != nil {
		return fmt.Errorf("the deployment failed: %w", w.deployErr)
	}
	if w.res == nil {
		return errors.New("no deployment ran")
	}
	return nil
}

func (w *World) configValue(ctx context.Context, key string) (string, error) {
	cfg, err := w.config(ctx)
	if err != nil {
		return "", err
	}
	return cfg[key], nil
}

func (w *World) theVMHasCores(ctx context.Context, n int) error {
	v, err := w.configValue(ctx, "cores")
	if err != nil {
		return err
	}
	if v != strconv.Itoa(n) {
		return fmt.Errorf("config cores = %q, want %d", v, n)
	}
	return nil
}

func (w *World) theVMHasMemory(ctx context.Context, mb int) error {
	v, err := w.configValue(ctx, "memory")
	if err != nil {
		return err
	}
	if v != strconv.Itoa(mb) {
		return fmt.Errorf("config memory = %q, want %d", v, mb)
	}
	return nil
}

var sizeRE = regexp.MustCompile(`(?:^|,)size=(\d+)([KMGT]?)`)

func (w *World) theVMHasDisk(ctx context.Context, gb int) error {
	cfg, err := w.config(ctx)
	if err != nil {
		return err
	}
	boot := cfg["boot"] // order=scsi0;...
	key := "scsi0"
	if _, after, ok := strings.Cut(boot, "order="); ok {
		key, _, _ = strings.Cut(after, ";")
	}
	m := sizeRE.FindStringSubmatch(cfg[key])
	if m == nil {
		return fmt.Errorf("boot disk %s = %q has no size", key, cfg[key])
	}
	n, _ := strconv.Atoi(m[1])
	switch m[2] {
	case "T":
		n *= 1024
	case "M":
		n /= 1024
	case "K", "":
		n /= 1024 * 1024
	}
	if n != gb {
		return fmt.Errorf("boot disk %s = %q, want %d GB", key, cfg[key], gb)
	}
	return nil
}

func (w *World) gpuPassthroughIsConfigured(ctx context.Context, addr string) error {
	cfg, err := w.config(ctx)
	if err != nil {
		return err
	}
	v := cfg["hostpci0"]
	vm, _ := w.dcat.VM(w.vmName)
	switch {
	case v == "":
		return errors.New("the VM config has no hostpci0")
	case vm.GPU.Mapping != "" && strings.Contains(v, "mapping="+vm.GPU.Mapping):
	case strings.HasPrefix(v, addr) || strings.HasPrefix(v, strings.TrimPrefix(addr, "0000:")):
	default:
		return fmt.Errorf("hostpci0 = %q, want the device %s", v, addr)
	}
	if !strings.Contains(v, "pcie=1") {
		return fmt.Errorf("hostpci0 = %q: want pcie=1 (q35)", v)
	}
	return nil
}

func (w *World) theVMBootsTheCloudImage(ctx context.Context) error {
	cfg, err := w.config(ctx)
	if err != nil {
		return err
	}
	hasCI := false
	for _, k := range cfg.Keys() {
		if strings.Contains(cfg[k], "cloudinit") {
			hasCI = true
		}
	}
	if !hasCI {
		return errors.New("the VM has no cloud-init drive")
	}
	out, err := w.sh(ctx, "cat /etc/os-release")
	if err != nil {
		return err
	}
	if !strings.Contains(out, `VERSION_ID="24.04"`) {
		return fmt.Errorf("the guest is not Ubuntu 24.04:\n%s", out)
	}
	// The cloud image boots through cloud-init, which marks its first boot finished.
	out, err = w.sh(ctx, "cat /var/lib/cloud/instance/boot-finished")
	if err != nil {
		return fmt.Errorf("cloud-init did not finish a first boot (not the cloud image?): %w", err)
	}
	if strings.TrimSpace(out) == "" {
		return errors.New("/var/lib/cloud/instance/boot-finished is empty")
	}
	return nil
}

func (w *World) cloudInitConfiguredTheKeys(ctx context.Context) error {
	cfg, err := w.config(ctx)
	if err != nil {
		return err
	}
	vm, _ := w.dcat.VM(w.vmName)
	keys, err := vm.PublicKeys()
	if err != nil {
		return err
	}
	got, _ := url.QueryUnescape(cfg["sshkeys"])
	auth, err := w.sh(ctx, "cat ~/.ssh/authorized_keys")
	if err != nil {
		return err
	}
	checked := 0
	for _, k := range keys {
		f := strings.Fields(k)
		if len(f) < 2 {
			continue
		}
		checked++
		if !strings.Contains(got, f[1]) {
			return fmt.Errorf("the VM config's sshkeys lacks the catalog key %s…", f[1][:20])
		}
		if !strings.Contains(auth, f[1]) {
			return fmt.Errorf("~/.ssh/authorized_keys in the guest lacks the catalog key %s…", f[1][:20])
		}
	}
	if checked == 0 {
		return fmt.Errorf("the catalog gives VM %s no SSH key to check", w.vmName)
	}
	return nil
}

func (w *World) theVMIsRunningAndReachable(ctx context.Context) error {
	vm, _ := w.dcat.VM(w.vmName)
	st, err := w.client.API().VMStatus(ctx, vm.Node, vm.ID)
	if err != nil {
		return err
	}
	if !st.Running() {
		return fmt.Errorf("VM %d is %s", vm.ID, st.Status)
	}
	out, err := w.sh(ctx, "hostname")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) == "" {
		return errors.New("hostname printed nothing")
	}
	return nil
}

func (w *World) theOpenDriverIsInstalled(ctx context.Context) error {
	if err := w.check(ctx, "the loaded module is the open kernel module"); err != nil {
		return err
	}
	out, err := w.sh(ctx, "cat /proc/driver/nvidia/version")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Open Kernel Module") {
		return fmt.Errorf("/proc/driver/nvidia/version is not the open kernel module:\n%s", out)
	}
	return nil
}

func (w *World) vllmIsInstalled(ctx context.Context) error {
	return w.check(ctx, "vLLM ")
}

func (w *World) ollamaIsInstalled(ctx context.Context) error {
	if _, err := w.sh(ctx, "command -v ollama"); err != nil {
		return err
	}
	return w.check(ctx, "ollama --version works")
}

// theMakefileTargetRunsLive checks the target's recipe and its credential check (which dials
// nothing) by running make with the credentials removed from the environment.
func (w *World) theMakefileTargetRunsLive(ctx context.Context, target string) error {
	data, err := os.ReadFile("Makefile")
	if err != nil {
		return err
	}
	recipe, err := makeRecipe(string(data), target)
	if err != nil {
		return err
	}
	for _, want := range []string{"godog run", "--strict", "AIMACHINE_STOP_ON_FAILURE=1", "@live", "AIMACHINE_TARGET=live"} {
		if !strings.Contains(recipe, want) {
			return fmt.Errorf("make %s does not run %q:\n%s", target, want, recipe)
		}
	}
	if _, err := exec.LookPath("make"); err != nil {
		w.logf("make is not installed: only the recipe was checked")
		return nil
	}
	out, code, err := MakeWithoutCredentials(ctx, ".", target)
	if err != nil {
		return err
	}
	if code == 0 || !strings.Contains(out, "PROXMOX_VE_ENDPOINT") {
		return fmt.Errorf("make %s without credentials exited %d:\n%s", target, code, out)
	}
	return nil
}

// makeRecipe returns the recipe lines of target in a Makefile.
func makeRecipe(mk, target string) (string, error) {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(mk, "\n") {
		switch {
		case strings.HasPrefix(l, target+":"):
			in = true
		case in && strings.HasPrefix(l, "\t"):
			b.WriteString(l + "\n")
		case in && strings.TrimSpace(l) == "":
		case in:
			in = false
		}
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("the Makefile has no target %q", target)
	}
	return b.String(), nil
}

// MakeWithoutCredentials runs `make target` in dir with every PROXMOX_VE_* variable and CI
// removed; it returns the combined output and the exit code.
func MakeWithoutCredentials(ctx context.Context, dir, target string) (string, int, error) {
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", target)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PROXMOX_VE_") || k == "CI" || k == "MAKEFLAGS" || k == "MAKELEVEL" || k == "MFLAGS" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode(), nil
	}
	if err != nil {
		return string(out), -1, err
	}
	return string(out), 0, nil
}

func (w *World) theDeploymentCompletes(ctx context.Context, ac int) error {
	if err := w.deployOK(); err != nil {
		return err
	}
	if w.res.Summary.Failed != 0 || !w.res.GuestPhase {
		return fmt.Errorf("summary: %d failed, guest phase ran: %v", w.res.Summary.Failed, w.res.GuestPhase)
	}
	return w.verifyPasses(ctx)
}

// ---- scenario 6 ----

func (w *World) theVMExistsFullyConfigured(ctx context.Context, name string) error {
	w.vmName = name
	if err := w.ensureDeployed(ctx); err != nil {
		return err
	}
	rep, err := w.verifyReport(ctx)
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("the VM is not fully configured: %d verification checks fail (first: %s)", len(rep.Failed()), rep.Failed()[0].Name)
	}
	return nil
}

// serviceState reads MainPID and ActiveEnterTimestamp of the LLM services over SSH.
func (w *World) serviceState(ctx context.Context) (map[string]string, error) {
	m := map[string]string{}
	for _, u := range []string{"vllm", "ollama"} {
		out, err := w.sh(ctx, "systemctl show -p MainPID -p ActiveEnterTimestamp -p ActiveState "+u)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
				m[u+"."+k] = v
			}
		}
	}
	return m, nil
}

func (w *World) theServicesAreRunning(ctx context.Context) error {
	st, err := w.serviceState(ctx)
	if err != nil {
		return err
	}
	for _, u := range []string{"vllm", "ollama"} {
		if st[u+".ActiveState"] != "active" || st[u+".MainPID"] == "" || st[u+".MainPID"] == "0" {
			return fmt.Errorf("%s is not running: ActiveState=%s MainPID=%s", u, st[u+".ActiveState"], st[u+".MainPID"])
		}
		// Without a start time, "not restarted" could not be told from "restarted".
		if ts := st[u+".ActiveEnterTimestamp"]; ts == "" || ts == "n/a" {
			return fmt.Errorf("%s has no ActiveEnterTimestamp (%q): a restart could not be detected", u, ts)
		}
	}
	w.before = st
	cfg, err := w.config(ctx)
	if err != nil {
		return err
	}
	w.cfgBefore = cfg
	return nil
}

// simMark is the simulator's counters before a run.
type simMark struct {
	mutating, read, guestSSH, jump int
}

func (w *World) theAdministratorRunsItAgain(ctx context.Context, name string) error {
	w.vmName = name
	w.closeRunner() // the re-run opens its own connection
	if w.t.simulated() {
		st, err := w.t.sim.Control().Stats(ctx)
		if err != nil {
			return err
		}
		w.statsMark = &simMark{mutating: changingCalls(st.API), read: st.API.Read, guestSSH: st.Guest.SSHConnections, jump: st.Jump.Connections}
	}
	w.verify = nil
	mark := w.eventCount()
	err := w.deploy(ctx, provision.DeployOptions{})
	w.logf("re-run events: %d", len(w.eventsSince(mark)))
	return err
}

func (w *World) theAPIReceivesNoChanges(ctx context.Context) error {
	if err := w.deployOK(); err != nil {
		return err
	}
	if w.t.simulated() {
		st, err := w.t.sim.Control().Stats(ctx)
		if err != nil {
			return err
		}
		if d := changingCalls(st.API) - w.statsMark.mutating; d != 0 {
			return fmt.Errorf("the re-run made %d mutating API calls, want 0", d)
		}
		// The counters are this simulator's: the re-run read the VM through it.
		if d := st.API.Read - w.statsMark.read; d == 0 {
			return errors.New("the re-run made no API read on the simulator: the counters do not watch this deployment")
		}
	}
	cfg, err := w.config(ctx)
	if err != nil {
		return err
	}
	for _, k := range cfg.Keys() {
		if k == "digest" {
			continue
		}
		if cfg[k] != w.cfgBefore[k] {
			return fmt.Errorf("config %s changed: %q → %q", k, w.cfgBefore[k], cfg[k])
		}
	}
	if len(cfg) != len(w.cfgBefore) {
		return fmt.Errorf("config keys changed: %v → %v", w.cfgBefore.Keys(), cfg.Keys())
	}
	return nil
}

func (w *World) noGuestTaskChanges(ctx context.Context) error {
	if err := w.deployOK(); err != nil {
		return err
	}
	var changed []string
	for _, e := range w.res.Summary.Tasks {
		if e.Status == provision.StatusChanged {
			changed = append(changed, e.Phase+": "+e.Task)
		}
	}
	if w.res.Summary.Changed != 0 || len(changed) > 0 {
		return fmt.Errorf("the re-run changed %d tasks: %s", w.res.Summary.Changed, strings.Join(changed, "; "))
	}
	// "No change" only means something when the guest tasks did run and check.
	guestOK := 0
	for _, e := range w.res.Summary.Tasks {
		if e.Phase == provision.PhaseGuest && e.Status == provision.StatusOK {
			guestOK++
		}
	}
	if !w.res.GuestPhase || guestOK == 0 {
		return fmt.Errorf("the re-run's guest phase did not run its tasks (guest phase: %v, %d guest tasks ok)", w.res.GuestPhase, guestOK)
	}
	if w.res.Runner == nil {
		return errors.New("the re-run kept no SSH runner: its connections cannot be counted")
	}
	if n := w.res.Runner.Stats().Connections; n != 1 {
		return fmt.Errorf("the re-run made %d SSH connections to the guest, want 1", n)
	}
	if w.t.simulated() {
		st, err := w.t.sim.Control().Stats(ctx)
		if err != nil {
			return err
		}
		if d := st.Guest.SSHConnections - w.statsMark.guestSSH; d != 1 {
			return fmt.Errorf("the simulator saw %d SSH connections to the guest during the re-run, want 1", d)
		}
	}
	return nil
}

func (w *World) theServicesWereNotRestarted(ctx context.Context) error {
	st, err := w.serviceState(ctx)
	if err != nil {
		return err
	}
	for _, k := range []string{"vllm.MainPID", "vllm.ActiveEnterTimestamp", "ollama.MainPID", "ollama.ActiveEnterTimestamp"} {
		if st[k] != w.before[k] {
			return fmt.Errorf("%s changed: %q → %q (the service was restarted)", k, w.before[k], st[k])
		}
	}
	return nil
}

func (w *World) theGPUStillWorks(ctx context.Context) error {
	vm, _ := w.dcat.VM(w.vmName)
	out, err := w.sh(ctx, "nvidia-smi -L")
	if err != nil {
		return err
	}
	if !strings.Contains(out, vm.GPU.Expect.Model) {
		return fmt.Errorf("nvidia-smi -L does not list %s:\n%s", vm.GPU.Expect.Model, out)
	}
	return w.check(ctx, "a CUDA sample compiles")
}

// writeEvidence writes reports/<vm>-<run>/evidence.json for a successful deploy.
func (w *World) writeEvidence(ctx context.Context) {
	w.verify = nil
	var vr provision.VerifyReport
	if rep, err := w.verifyReport(ctx); err == nil {
		vr = *rep
	} else {
		w.logf("evidence: verify: %v", err)
	}
	var r guest.Runner
	if w.runner != nil {
		r = w.runner
	}
	ev, err := w.client.BuildEvidence(ctx, w.dcat, w.res, vr, r)
	if err != nil {
		w.logf("evidence: %v", err)
		return
	}
	p, err := ev.Write(reportsDir())
	if err != nil {
		w.logf("evidence: %v", err)
		return
	}
	w.logf("evidence: %s", p)
}

// verifyPasses runs the read-only verification and names every failed check.
func (w *World) verifyPasses(ctx context.Context) error {
	rep, err := w.verifyReport(ctx)
	if err != nil {
		return err
	}
	if !rep.OK() {
		var failed []string
		for _, c := range rep.Failed() {
			failed = append(failed, c.Name+": "+c.Evidence)
		}
		return fmt.Errorf("verification failed:\n%s", strings.Join(failed, "\n"))
	}
	return nil
}
