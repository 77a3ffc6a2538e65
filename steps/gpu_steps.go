package steps

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/provision"
)

func (w *World) registerGPUSteps(sc *godog.ScenarioContext) {
	// Scenario 2
	sc.Given(`^the VM "([^"]*)" is provisioned with GPU passthrough$`, w.theVMIsProvisionedWithGPU)
	sc.Given(`^the NVIDIA drivers are installed$`, w.theNVIDIADriversAreInstalled)
	sc.When(`^the administrator runs "([^"]*)" inside the VM$`, w.theAdministratorRunsInsideTheVM)
	sc.Then(`^the output shows the "([^"]*)" \(AC-11\)$`, w.theOutputShowsTheModel)
	sc.Then(`^the output shows (\d+) MiB of GPU memory \(AC-12\)$`, w.theOutputShowsMemory)
	sc.Then(`^the output shows the driver version \(AC-13\)$`, w.theOutputShowsTheDriverVersion)
	sc.Then(`^there are no NVIDIA errors in dmesg \(AC-14\)$`, w.noNVIDIAErrorsInDmesg)
	sc.Then(`^the CUDA toolkit works: nvcc is (\d+)\.(\d+) or newer and a CUDA sample runs \(AC-15\)$`, w.theCUDAToolkitWorks)
	sc.Then(`^the GPU "([^"]*)" is visible in lspci \(AC-16\)$`, w.theGPUIsVisibleInLspci)

	// Scenario 3
	sc.Given(`^the VM "([^"]*)" is running Ubuntu Server 24\.04$`, w.theVMIsRunningUbuntu)
	sc.Given(`^the GPU is visible via PCIe$`, w.theGPUIsVisibleViaPCIe)
	sc.When(`^the driver installation tasks run$`, w.theDriverInstallationTasksRun)
	sc.Then(`^"ubuntu-drivers list --gpgpu" lists the available drivers$`, w.ubuntuDriversListsDrivers)
	sc.Then(`^the newest "-open" driver is selected$`, w.theNewestOpenDriverIsSelected)
	sc.Then(`^the driver is installed and confirmed by dpkg-query$`, w.theDriverIsConfirmedByDpkg)
	sc.Then(`^the open kernel module is loaded$`, w.theOpenModuleIsLoaded)
	sc.Then(`^nvidia-smi is available$`, w.nvidiaSMIIsAvailable)
}

// ---- scenario 2 ----

func (w *World) theVMIsProvisionedWithGPU(ctx context.Context, name string) error {
	w.vmName = name
	if err := w.ensureDeployed(ctx); err != nil {
		return err
	}
	cfg, err := w.config(ctx)
	if err != nil {
		return err
	}
	if cfg["hostpci0"] == "" {
		return fmt.Errorf("VM %s has no hostpci0 in its config", name)
	}
	return nil
}

func (w *World) theNVIDIADriversAreInstalled(ctx context.Context) error {
	if _, err := w.sh(ctx, "command -v nvidia-smi"); err != nil {
		return err
	}
	_, err := w.sh(ctx, "test -r /proc/driver/nvidia/version")
	return err
}

func (w *World) theAdministratorRunsInsideTheVM(ctx context.Context, cmd string) error {
	r, err := w.ssh(ctx)
	if err != nil {
		return err
	}
	res, err := r.Run(ctx, cmd)
	w.lastOut = res
	if err != nil {
		return fmt.Errorf("%s in the VM: %w\n%s", cmd, err, res.Stdout+res.Stderr)
	}
	return nil
}

func (w *World) theOutputShowsTheModel(model string) error {
	if !strings.Contains(w.lastOut.Stdout, model) {
		// nvidia-smi's table truncates long names; the CSV query never does.
		return fmt.Errorf("the output does not show %q:\n%s", model, w.lastOut.Stdout)
	}
	return nil
}

var smiMemRE = regexp.MustCompile(`(\d+)MiB\s*/\s*(\d+)MiB`)

func (w *World) theOutputShowsMemory(mib int) error {
	for _, m := range smiMemRE.FindAllStringSubmatch(w.lastOut.Stdout, -1) {
		if m[2] == strconv.Itoa(mib) {
			return nil
		}
	}
	return fmt.Errorf("the output does not show %d MiB of total memory:\n%s", mib, w.lastOut.Stdout)
}

var (
	driverRE = regexp.MustCompile(`Driver Version:\s*(\d+\.\d+(?:\.\d+)?)`)
	// kmodRE is the loaded kernel module's version line (/proc/driver/nvidia/version).
	kmodRE = regexp.MustCompile(`NVRM version: NVIDIA UNIX (?:Open Kernel Module for \S+|\S+ Kernel Module)\s+(\d+\.\d+(?:\.\d+)?)`)
)

// theOutputShowsTheDriverVersion requires nvidia-smi's driver version to be the version of the
// kernel module the guest loaded (a mismatch is the "Driver/library version mismatch" failure).
func (w *World) theOutputShowsTheDriverVersion(ctx context.Context) error {
	m := driverRE.FindStringSubmatch(w.lastOut.Stdout)
	if m == nil {
		return fmt.Errorf("the output shows no driver version:\n%s", w.lastOut.Stdout)
	}
	out, err := w.sh(ctx, "cat /proc/driver/nvidia/version")
	if err != nil {
		return err
	}
	k := kmodRE.FindStringSubmatch(out)
	if k == nil {
		return fmt.Errorf("/proc/driver/nvidia/version names no kernel module version:\n%s", out)
	}
	kv := k[1]
	if kv != m[1] {
		return fmt.Errorf("nvidia-smi shows driver %s but the loaded kernel module is %s", m[1], kv)
	}
	return nil
}

// nvrmErrorRE matches the dmesg lines of a driver that failed to bind or a GPU that failed
// (shared/reference/guest.md §4.2): init/probe failures, wrong module flavour, BAR mapping,
// API mismatch, and the fatal Xids (79 off the bus, 119/120 GSP timeouts).
var nvrmErrorRE = regexp.MustCompile(`(?i)RmInitAdapter failed|rm_init_adapter failed|probe of \S+ failed|probe routine (?:failed|was not called)|None of the NVIDIA devices were initialized|No NVIDIA devices probed|requires use of the NVIDIA open kernel modules|I/O region assigned to your NVIDIA device is invalid|NVRM: API mismatch|fallen off the bus|NVRM: Xid \((?:PCI:)?[0-9a-fA-F:.]+\): (?:79|119|120),`)

// noNVIDIAErrorsInDmesg reads the kernel log over SSH: the open module's load line must be
// there (the log is the right one and the driver loaded) and no NVRM error line; provision's
// own dmesg check must agree.
func (w *World) noNVIDIAErrorsInDmesg(ctx context.Context) error {
	out, err := w.sh(ctx, "sudo -n dmesg")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "NVRM: loading NVIDIA UNIX Open Kernel Module") {
		return fmt.Errorf("dmesg has no \"NVRM: loading NVIDIA UNIX Open Kernel Module\" line: the open driver did not load (%d lines read)", strings.Count(out, "\n"))
	}
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if nvrmErrorRE.MatchString(l) {
			bad = append(bad, strings.TrimSpace(l))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("dmesg shows NVIDIA errors:\n%s", strings.Join(bad, "\n"))
	}
	return w.check(ctx, "no NVIDIA errors in dmesg")
}

var nvccRE = regexp.MustCompile(`release (\d+)\.(\d+)`)

// cudaSample is a vector addition that checks its own result on the host; the steps write,
// compile and run it themselves (independent of provision's verification).
const cudaSample = `#include <cstdio>
__global__ void add(const float *a, const float *b, float *c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
int main() {
  int n = 1 << 16;
  float *a, *b, *c;
  if (cudaMallocManaged(&a, n * sizeof(float)) != cudaSuccess) { printf("FAIL: cudaMallocManaged: %s\n", cudaGetErrorString(cudaGetLastError())); return 1; }
  cudaMallocManaged(&b, n * sizeof(float));
  cudaMallocManaged(&c, n * sizeof(float));
  for (int i = 0; i < n; i++) { a[i] = i; b[i] = 2 * i; }
  add<<<(n + 255) / 256, 256>>>(a, b, c, n);
  cudaError_t err = cudaDeviceSynchronize();
  if (err != cudaSuccess) { printf("FAIL: %s\n", cudaGetErrorString(err)); return 1; }
  for (int i = 0; i < n; i++) if (c[i] != 3 * i) { printf("FAIL: c[%d] is wrong\n", i); return 1; }
  printf("aimachine-steps vector add PASSED n=%d\n", n);
  return 0;
}
`

func (w *World) theCUDAToolkitWorks(ctx context.Context, major, minor int) error {
	out, err := w.sh(ctx, "/usr/local/cuda/bin/nvcc --version")
	if err != nil {
		return err
	}
	m := nvccRE.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("nvcc --version shows no release:\n%s", out)
	}
	ma, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	if ma < major || ma == major && mi < minor {
		return fmt.Errorf("nvcc is CUDA %d.%d, want %d.%d or newer (Blackwell needs 12.8)", ma, mi, major, minor)
	}
	r, err := w.ssh(ctx)
	if err != nil {
		return err
	}
	src := "/tmp/aimachine-steps-cuda/vadd.cu"
	if err := r.Put(ctx, src, 0o644, []byte(cudaSample)); err != nil {
		return fmt.Errorf("copy the CUDA sample into the VM: %w", err)
	}
	// Built as the SSH user (Put may write as root); sm_120 is Blackwell (RTX 50xx): a toolkit
	// older than 12.8 refuses it.
	out, err = w.sh(ctx, `mkdir -p "$HOME/aimachine-steps-cuda" && /usr/local/cuda/bin/nvcc -arch=sm_120 -o "$HOME/aimachine-steps-cuda/vadd" `+src+` && "$HOME/aimachine-steps-cuda/vadd"`)
	if err != nil {
		return fmt.Errorf("the CUDA sample: %w", err)
	}
	if !strings.Contains(out, "vector add PASSED n=65536") {
		return fmt.Errorf("the CUDA sample did not pass:\n%s", out)
	}
	return w.check(ctx, "a CUDA sample compiles with nvcc and runs")
}

func (w *World) theGPUIsVisibleInLspci(ctx context.Context, id string) error {
	out, err := w.sh(ctx, "lspci -nn")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "["+id+"]") {
		return fmt.Errorf("lspci -nn does not show [%s]:\n%s", id, out)
	}
	return nil
}

// ---- scenario 3 ----

// theVMIsRunningUbuntu provisions the VM up to a reachable guest (no guest phase yet).
func (w *World) theVMIsRunningUbuntu(ctx context.Context, name string) error {
	w.vmName = name
	if err := w.deploy(ctx, provision.DeployOptions{InfraOnly: true}); err != nil {
		return fmt.Errorf("provision %s: %w", name, err)
	}
	out, err := w.sh(ctx, "cat /etc/os-release")
	if err != nil {
		return err
	}
	if !strings.Contains(out, `VERSION_ID="24.04"`) {
		return fmt.Errorf("the guest is not Ubuntu 24.04:\n%s", out)
	}
	return nil
}

func (w *World) theGPUIsVisibleViaPCIe(ctx context.Context) error {
	vm, _ := w.dcat.VM(w.vmName)
	return w.theGPUIsVisibleInLspci(ctx, strings.ToLower(vm.GPU.Expect.PCIID))
}

// theDriverInstallationTasksRun runs provision's guest phase (driver first) over the SSH runner.
func (w *World) theDriverInstallationTasksRun(ctx context.Context) error {
	r, err := w.ssh(ctx)
	if err != nil {
		return err
	}
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return err
	}
	mark := w.eventCount()
	sum, err := provision.RunGuestPhase(ctx, r, w.dcat, vm, provision.GuestOptions{Reporter: w, ReportDir: reportsDir()})
	w.guestErr = err
	for _, e := range w.eventsSince(mark) {
		if e.Task == driverTask && e.Status != "" {
			if e.Status == provision.StatusFailed {
				return fmt.Errorf("guest phase: %w", err)
			}
			// This scenario is about the driver: a later task's failure is scenario 4's or 5's.
			if err != nil {
				w.logf("the driver task finished (%s); a later guest task failed: %v", e.Status, err)
			}
			w.logf("driver task %s (%d changed in the phase)", e.Status, sum.Changed)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("guest phase stopped before %q: %w", driverTask, err)
	}
	return fmt.Errorf("the guest phase did not run %q", driverTask)
}

// driverTask is the name provision reports for the driver installation.
const driverTask = "install the NVIDIA open driver"

var udRE = regexp.MustCompile(`nvidia(?:-driver-|-headless-no-dkms-|:)(\d+)(-server)?(-open)?\b`)

func (w *World) ubuntuDriversListsDrivers(ctx context.Context) error {
	out, err := w.sh(ctx, "ubuntu-drivers list --gpgpu")
	if err != nil {
		return err
	}
	if len(udRE.FindAllString(out, -1)) == 0 {
		return fmt.Errorf("ubuntu-drivers list --gpgpu lists no NVIDIA driver:\n%s", out)
	}
	return nil
}

// chosenDriver is the package the driver task reported choosing; on a VM whose driver was
// installed by an earlier run (live re-runs), the installed driver package as dpkg knows it.
func (w *World) chosenDriver(ctx context.Context) (string, error) {
	re := regexp.MustCompile(`chose (\S+)`)
	for _, e := range w.eventsSince(0) {
		if e.Task != driverTask {
			continue
		}
		if m := re.FindStringSubmatch(e.Message); m != nil {
			return m[1], nil
		}
	}
	out, err := w.sh(ctx, `dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' 'nvidia-headless-no-dkms-*' 'nvidia-driver-*' 2>/dev/null; true`)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "="))
		if len(f) == 2 && f[0] == "ii" && udRE.MatchString(f[1]) {
			w.logf("the driver was installed before this run: %s", f[1])
			return f[1], nil
		}
	}
	return "", errors.New("the driver task did not report which driver it chose, and dpkg knows no installed NVIDIA driver")
}

func (w *World) theNewestOpenDriverIsSelected(ctx context.Context) error {
	out, err := w.sh(ctx, "ubuntu-drivers list --gpgpu")
	if err != nil {
		return err
	}
	newest := 0
	for _, m := range udRE.FindAllStringSubmatch(out, -1) {
		if m[3] == "" {
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n > newest {
			newest = n
		}
	}
	if newest == 0 {
		return fmt.Errorf("ubuntu-drivers offers no -open driver:\n%s", out)
	}
	chosen, err := w.chosenDriver(ctx)
	if err != nil {
		return err
	}
	m := udRE.FindStringSubmatch(chosen)
	if m == nil || m[3] == "" {
		return fmt.Errorf("the chosen driver %s is not an -open driver", chosen)
	}
	if n, _ := strconv.Atoi(m[1]); n != newest {
		return fmt.Errorf("chose %s, but the newest -open driver is %d", chosen, newest)
	}
	return nil
}

func (w *World) theDriverIsConfirmedByDpkg(ctx context.Context) error {
	chosen, err := w.chosenDriver(ctx)
	if err != nil {
		return err
	}
	m := udRE.FindStringSubmatch(chosen)
	branch := m[1] + m[2] + m[3] // 595-server-open
	out, err := w.sh(ctx, `dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\n' 'linux-modules-nvidia-`+branch+`-*' 'nvidia-*-`+branch+`' 2>/dev/null; true`)
	if err != nil {
		return err
	}
	var mods, user bool
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "="))
		if len(f) < 2 || f[0] != "ii" {
			continue
		}
		switch {
		case strings.HasPrefix(f[1], "linux-modules-nvidia-"+branch) || strings.HasPrefix(f[1], "nvidia-dkms-"+branch):
			mods = true
		case strings.HasPrefix(f[1], "nvidia-"):
			user = true
		}
	}
	if !mods || !user {
		return fmt.Errorf("dpkg-query does not confirm the %s kernel modules and userspace as installed (ii):\n%s", branch, out)
	}
	return nil
}

func (w *World) theOpenModuleIsLoaded(ctx context.Context) error {
	out, err := w.sh(ctx, "cat /proc/driver/nvidia/version; echo; modinfo -F license nvidia")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Open Kernel Module") || !strings.Contains(out, "Dual MIT/GPL") {
		return fmt.Errorf("the loaded nvidia module is not the open kernel module:\n%s", out)
	}
	return nil
}

func (w *World) nvidiaSMIIsAvailable(ctx context.Context) error {
	vm, _ := w.dcat.VM(w.vmName)
	out, err := w.sh(ctx, "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader")
	if err != nil {
		return err
	}
	if !strings.Contains(out, vm.GPU.Expect.Model) {
		return fmt.Errorf("nvidia-smi does not show %s:\n%s", vm.GPU.Expect.Model, out)
	}
	return nil
}
