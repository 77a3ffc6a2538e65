package tasks

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/engine"
)

// task is a Task built from functions.
type task struct {
	name     string
	check    func(ctx context.Context) (bool, error)
	apply    func(ctx context.Context) error
	waitOnly func() bool
	message  func() string
}

func (t *task) Message() string {
	if t.message == nil {
		return ""
	}
	return t.message()
}

func (t *task) Name() string                            { return t.name }
func (t *task) Check(ctx context.Context) (bool, error) { return t.check(ctx) }
func (t *task) Apply(ctx context.Context) error {
	if t.apply == nil {
		return errors.New("nothing to apply")
	}
	return t.apply(ctx)
}
func (t *task) WaitOnly() bool { return t.waitOnly != nil && t.waitOnly() }

func always() bool { return true }

// Tasks is the guest phase in order (guest.md §11).
func (h *Host) Tasks() []engine.Task {
	ts := []engine.Task{
		h.cloudInitTask(),
		h.osTask(),
		h.basePackagesTask(),
	}
	if h.P.VLLM != nil || h.P.Ollama != nil {
		ts = append(ts, h.avxTask())
	}
	if h.P.GPU != nil {
		ts = append(ts,
			h.detectGPUTask(),
			h.driverTask(),
			h.modulesLoadTask(),
			h.loadModuleTask(),
			h.cudaRepoTask(),
			h.cudaToolkitTask(),
		)
	}
	if h.P.VLLM != nil {
		ts = append(ts, h.vllmTasks()...)
	}
	if h.P.Ollama != nil {
		ts = append(ts, h.ollamaTasks()...)
		if len(h.P.Ollama.Models) > 0 {
			ts = append(ts, h.ollamaModelsTask())
		}
	}
	return ts
}

func (h *Host) dpkg(ctx context.Context) (map[string]Package, error) {
	f, err := h.Fact(ctx, "dpkg")
	if err != nil {
		return nil, err
	}
	return ParseDpkg(f.Out), nil
}

// --- cloud-init, OS, base packages, CPU ---

func (h *Host) cloudInitTask() engine.Task {
	return &task{
		name: "wait for cloud-init to finish",
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "cloud_init")
			if err != nil {
				return false, err
			}
			out := strings.TrimSpace(f.Out)
			switch st := CloudInitStatus(out); {
			case out == "finished" || out == "absent" || st == "done" || st == "disabled":
				return true, nil
			case st == "error":
				return false, engine.Fail(errors.New("cloud-init finished with status error"), "read /var/log/cloud-init.log and 'cloud-init status --long' on the VM", out)
			}
			return false, nil
		},
		apply: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, h.P.ReadyTimeout)
			defer cancel()
			res, err := h.Root(ctx, "cloud-init status --wait; rc=$?; cloud-init status --long; exit $rc")
			var ee *guest.ExitError
			if errors.As(err, &ee) && ee.Code == 2 {
				h.progress("wait for cloud-init to finish", "cloud-init finished with recoverable errors (exit 2, \"degraded done\"): going on")
				return nil
			}
			if err != nil {
				return engine.Fail(fmt.Errorf("cloud-init status --wait: %w", err), "cloud-init crashed (exit 1): read /var/log/cloud-init.log on the VM", guest.Tail(res.Stdout+res.Stderr, 20))
			}
			return nil
		},
		waitOnly: always,
	}
}

func (h *Host) progress(task, msg string) {
	if h.P.Progress != nil {
		h.P.Progress(task, msg)
	}
}

func (h *Host) osTask() engine.Task {
	return &task{
		name: "check the OS is Ubuntu 24.04",
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "os")
			if err != nil {
				return false, err
			}
			if strings.TrimSpace(f.Out) != "ubuntu 24.04" {
				return false, engine.Fail(fmt.Errorf("the machine runs %q, want Ubuntu 24.04 (noble)", strings.TrimSpace(f.Out)), "the guest phase supports the Ubuntu 24.04 cloud image only", "")
			}
			return true, nil
		},
	}
}

func (h *Host) basePackagesTask() engine.Task {
	return &task{
		name: "install base packages",
		check: func(ctx context.Context) (bool, error) {
			d, err := h.dpkg(ctx)
			if err != nil {
				return false, err
			}
			return len(packagesMissing(d, basePackages...)) == 0, nil
		},
		apply: func(ctx context.Context) error {
			d, err := h.dpkg(ctx)
			if err != nil {
				return err
			}
			missing := packagesMissing(d, basePackages...)
			if _, err := h.aptGet(ctx, "install base packages", "update"); err != nil {
				return err
			}
			_, err = h.aptGet(ctx, "install base packages", "install --no-install-recommends "+strings.Join(missing, " "))
			return err
		},
	}
}

func (h *Host) avxTask() engine.Task {
	return &task{
		name: "check the CPU exposes AVX",
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "cpu_flags")
			if err != nil {
				return false, err
			}
			flags := strings.Fields(f.Out)
			for _, fl := range flags {
				if fl == "avx" {
					return true, nil
				}
			}
			return false, engine.Fail(errors.New("the VM's CPU does not expose AVX (/proc/cpuinfo has no avx flag): Ollama and PyTorch's CPU paths need it"),
				"set the VM's cpu type to host in the catalog (cpu: host; kvm64 hides AVX), apply it to the VM and reboot it, then re-run", guest.Tail(f.Out, 2))
		},
	}
}

// --- GPU and driver ---

func (h *Host) arch() string { return Arch(h.P.GPU.PCIID) }

func (h *Host) detectGPUTask() engine.Task {
	id := strings.ToLower(h.P.GPU.PCIID)
	return &task{
		name: "detect the GPU " + id,
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "lspci")
			if err != nil {
				return false, err
			}
			for _, d := range ParseLspci(f.Out) {
				if d.ID == id {
					return true, nil
				}
			}
			seen := strings.TrimSpace(f.Out)
			if seen == "" {
				seen = "(no NVIDIA device)"
			}
			return false, engine.Fail(fmt.Errorf("lspci does not show the GPU [%s]", id),
				"the GPU is not passed through: check the VM's hostpci / PCI mapping and the host's IOMMU, then restart the VM", "lspci -nn -d 10de:\n"+seen)
		},
	}
}

// installedDriver finds an installed NVIDIA driver flavour from dpkg.
type installedDriver struct {
	Branch       int
	Server, Open bool
	Userspace    string // the headless or desktop metapackage
	Modules      string // linux-modules-nvidia-… or nvidia-dkms-…
	Utils        bool
	UtilsPackage string
}

var userspaceRE = regexp.MustCompile(`^nvidia-(?:headless-no-dkms|driver)-(\d+)(-server)?(-open)?$`)

func findDriver(d map[string]Package) (installedDriver, bool) {
	var best installedDriver
	found := false
	for name, p := range d {
		if !p.Installed() {
			continue
		}
		m := userspaceRE.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		b, _ := strconv.Atoi(m[1])
		cand := installedDriver{Branch: b, Server: m[2] != "", Open: m[3] != "", Userspace: name}
		if found && (cand.Branch < best.Branch || (cand.Branch == best.Branch && !cand.Open && best.Open)) {
			continue
		}
		best, found = cand, true
	}
	if !found {
		return best, false
	}
	flav := strconv.Itoa(best.Branch)
	if best.Server {
		flav += "-server"
	}
	if best.Open {
		flav += "-open"
	}
	for name, p := range d {
		if p.Installed() && (strings.HasPrefix(name, "linux-modules-nvidia-"+flav+"-") || name == "nvidia-dkms-"+flav) {
			best.Modules = name
		}
	}
	best.UtilsPackage = "nvidia-utils-" + strconv.Itoa(best.Branch)
	if best.Server {
		best.UtilsPackage += "-server"
	}
	best.Utils = d[best.UtilsPackage].Installed()
	return best, true
}

func (h *Host) secureBoot(ctx context.Context) (bool, error) {
	f, err := h.Fact(ctx, "secure_boot")
	if err != nil {
		return false, err
	}
	return strings.Contains(f.Out, "SecureBoot enabled"), nil
}

func (h *Host) driverTask() engine.Task {
	name := "install the NVIDIA open driver"
	resumed := "" // what this run finished of an earlier, failed install
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			d, err := h.dpkg(ctx)
			if err != nil {
				return false, err
			}
			if len(unfinishedDriverPackages(d)) > 0 {
				return false, nil // an earlier install stopped half-way (a failed DKMS build)
			}
			drv, ok := findDriver(d)
			if !ok {
				return false, nil
			}
			if !drv.Open && NeedsOpenModule(h.arch()) {
				return false, engine.Fail(fmt.Errorf("the proprietary driver %s is installed, but a %s GPU works only with the open kernel module", drv.Userspace, h.arch()),
					fmt.Sprintf("remove it on the VM (sudo apt-get purge '%s' 'linux-modules-nvidia-%d*'), then re-run: the tool installs the newest -open driver", drv.Userspace, drv.Branch), "")
			}
			return drv.Modules != "" && drv.Utils, nil
		},
		apply: func(ctx context.Context) error {
			d, err := h.dpkg(ctx)
			if err != nil {
				return err
			}
			if broken := unfinishedDriverPackages(d); len(broken) > 0 {
				// ubuntu-drivers install counts a half-configured package as installed and does
				// nothing: finish it explicitly, then go on from what dpkg has.
				if resumed, err = h.finishUnfinished(ctx, name, broken); err != nil {
					return err
				}
				if d, err = h.dpkg(ctx); err != nil {
					return err
				}
			}
			sb, err := h.secureBoot(ctx)
			if err != nil {
				return err
			}
			var cand DriverCandidate
			if drv, ok := findDriver(d); ok && drv.Open && drv.Modules != "" {
				// Resume: the driver is in, only the utilities are missing.
				cand = DriverCandidate{Branch: drv.Branch, Server: drv.Server, Open: true, Package: drv.Userspace, Modules: drv.Modules}
			} else {
				res, err := h.Root(ctx, "ubuntu-drivers list --gpgpu")
				if err != nil {
					return engine.Fail(fmt.Errorf("ubuntu-drivers list --gpgpu: %w", err), "is ubuntu-drivers-common installed?", guest.Tail(res.Stdout+res.Stderr, 20))
				}
				listed := "ubuntu-drivers list --gpgpu:\n" + guest.Tail(res.Stdout+res.Stderr, 20)
				cands := ParseDriverList(res.Stdout)
				if !anyOpen(cands) {
					// No prebuilt -open modules for the running kernel: look at DKMS builds too
					// (hidden by default, guest.md §2.3).
					if r2, err := h.Root(ctx, "ubuntu-drivers list --gpgpu --include-dkms"); err == nil {
						cands = append(cands, ParseDriverList(r2.Stdout)...)
						listed += "\nubuntu-drivers list --gpgpu --include-dkms:\n" + guest.Tail(r2.Stdout+r2.Stderr, 20)
					}
				}
				cand, err = ChooseDriver(cands, NeedsOpenModule(h.arch()), h.arch())
				if err != nil {
					hint := "check that the GPU is passed through (lspci) and run 'sudo apt-get update' on the VM"
					var po *ErrProprietaryOnly
					if errors.As(err, &po) {
						hint = "the package index offers no -open flavour for this GPU: run 'sudo apt-get update' (noble-updates carries nvidia-driver-580/595-open) and re-run; a proprietary driver would load but refuse the GPU"
					}
					return engine.Fail(err, hint, listed)
				}
				if cand.DKMS() && sb {
					return engine.Fail(fmt.Errorf("Secure Boot is on and %s would come from DKMS (%s), an unsigned module the kernel rejects (\"Key was rejected by service\")", cand.Package, cand.Modules),
						"use a kernel for which Ubuntu ships signed prebuilt linux-modules-nvidia-* (apt-get update; the generic/virtual kernel), or turn Secure Boot off in the VM's OVMF settings", listed)
				}
				h.progress(name, fmt.Sprintf("chose %s (modules %s) from ubuntu-drivers list --gpgpu; Secure Boot %s", cand.Package, cand.Modules, onOff(sb)))
				script := "ubuntu-drivers install --gpgpu nvidia:" + cand.Flavour()
				if cand.DKMS() {
					// DKMS builds against the running kernel's headers.
					if err := h.driverAptGet(ctx, name, "install --no-install-recommends linux-headers-$(uname -r)"); err != nil {
						return err
					}
					script = "ubuntu-drivers install --gpgpu --include-dkms nvidia:" + cand.Flavour()
				}
				out, err := h.rootWithLockWait(ctx, name, script)
				if err != nil {
					return err
				}
				// ubuntu-drivers exits 0 even when nothing was installed: dpkg decides below.
				if err := h.confirmDriver(ctx, cand, script, out.Stdout+out.Stderr); err != nil {
					return err
				}
			}
			if d[cand.UtilsPackage()].Installed() {
				return nil
			}
			return h.driverAptGet(ctx, name, "install --no-install-recommends "+cand.UtilsPackage())
		},
		message: func() string {
			m := h.driverMessage()
			if resumed != "" && m != "" {
				m = resumed + "; " + m
			}
			return m
		},
	}
}

// driverAptGet is aptGet for the driver task: apt re-runs the postinst of a half-configured
// nvidia-dkms-* on every install, so a failure there is explained as the DKMS failure it is.
func (h *Host) driverAptGet(ctx context.Context, task, args string) error {
	res, err := h.aptGet(ctx, task, args)
	if err != nil && ctx.Err() == nil && isDKMSFailure(res.Stdout+res.Stderr) {
		return h.dkmsFailure(ctx, dkmsEvidence{cmd: "apt-get " + args, out: res.Stdout + res.Stderr, cause: err})
	}
	return err
}

func anyOpen(cs []DriverCandidate) bool {
	for _, c := range cs {
		if c.Open {
			return true
		}
	}
	return false
}

// driverMessage describes the installed driver from the (cached) facts.
func (h *Host) driverMessage() string {
	f := h.facts
	if f == nil {
		return ""
	}
	drv, ok := findDriver(ParseDpkg(f["dpkg"].Out))
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s with %s and %s, confirmed by dpkg-query", drv.Userspace, drv.Modules, drv.UtilsPackage)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// confirmDriver checks with dpkg-query that the driver really got installed.
func (h *Host) confirmDriver(ctx context.Context, c DriverCandidate, cmd, out string) error {
	pkgs := []string{c.HeadlessPackage()}
	if c.Modules != "" {
		pkgs = append(pkgs, c.Modules)
	}
	res, _ := h.Root(ctx, "dpkg-query -W --showformat='${Package}\\t${Status}\\t${Version}\\n' "+strings.Join(pkgs, " ")+" 2>&1; echo ::make.log; tail -n 30 /var/lib/dkms/nvidia/*/build/make.log 2>/dev/null")
	q, makeLog, _ := strings.Cut(res.Stdout, "::make.log\n")
	missing := packagesMissing(ParseDpkg(q), pkgs...)
	if len(missing) == 0 {
		return nil
	}
	if len(unfinishedDriverPackages(ParseDpkg(q))) > 0 || isDKMSFailure(out) {
		// ubuntu-drivers' apt-get stopped in a postinst (a DKMS build): explain that.
		return h.dkmsFailure(ctx, dkmsEvidence{cmd: cmd, out: out, exited0: true, pkgs: pkgs, makeLog: makeLog})
	}
	log := "$ " + cmd + " (exit code ignored: it is always 0)\n" + aptLog(out) + "\n$ dpkg-query\n" + strings.TrimSpace(q)
	if strings.TrimSpace(makeLog) != "" {
		log += "\n$ tail /var/lib/dkms/nvidia/*/build/make.log\n" + strings.TrimSpace(makeLog)
	}
	hint := aptHint(out + makeLog)
	if strings.Contains(out, "All the available drivers are already installed") || strings.Contains(out, "No drivers found") {
		hint = "ubuntu-drivers installed nothing (no prebuilt modules for the running kernel?): run 'sudo apt-get update && sudo apt-get full-upgrade', reboot the VM and re-run"
	}
	return engine.Fail(fmt.Errorf("%s exited 0 but dpkg does not have %s installed", cmd, strings.Join(missing, ", ")), hint, log)
}

func (h *Host) modulesLoadTask() engine.Task {
	return &task{
		name: "load nvidia_uvm at boot",
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "modules_load")
			if err != nil {
				return false, err
			}
			return f.RC == 0 && f.Out == RenderModulesLoad(), nil
		},
		apply: func(ctx context.Context) error {
			return h.R.Put(ctx, modulesLoadPath, 0o644, []byte(RenderModulesLoad()))
		},
	}
}

type moduleState struct {
	loaded, uvm, nouveau bool
	smiRC                int
	smiOut               string
	mod                  ModuleVersion
	modOK                bool
}

func (h *Host) moduleState(ctx context.Context) (moduleState, error) {
	var s moduleState
	f, err := h.Facts(ctx)
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(f["lsmod"].Out, "\n") {
		switch strings.Fields(line + " x")[0] {
		case "nvidia":
			s.loaded = true
		case "nvidia_uvm":
			s.uvm = true
		case "nouveau":
			s.nouveau = true
		}
	}
	s.smiRC, s.smiOut = f["smi"].RC, f["smi"].Out
	s.mod, s.modOK = ParseModuleVersion(f["nv_version"].Out)
	return s, nil
}

func (h *Host) loadModuleTask() engine.Task {
	name := "load the NVIDIA kernel module"
	rebooted := false
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			s, err := h.moduleState(ctx)
			if err != nil {
				return false, err
			}
			if !s.loaded || !s.uvm || s.smiRC != 0 || !s.modOK {
				return false, nil
			}
			if NeedsOpenModule(h.arch()) && !s.mod.Open {
				return false, nil
			}
			return true, nil
		},
		apply: func(ctx context.Context) error {
			s, err := h.moduleState(ctx)
			if err != nil {
				return err
			}
			needReboot := s.nouveau || strings.Contains(s.smiOut, "version mismatch") || s.smiRC == 18 ||
				(s.loaded && s.modOK && NeedsOpenModule(h.arch()) && !s.mod.Open)
			if !needReboot {
				res, err := h.Root(ctx, "modprobe nvidia && modprobe nvidia_uvm")
				if err != nil {
					out := res.Stdout + res.Stderr
					switch {
					case strings.Contains(out, "Key was rejected by service"):
						return engine.Fail(fmt.Errorf("modprobe nvidia: the kernel rejected the unsigned module (Secure Boot)"), "install Ubuntu's signed linux-modules-nvidia-* instead of a DKMS build, or turn Secure Boot off", out)
					case strings.Contains(out, "not found in directory") && !rebooted:
						needReboot = true // modules built for a newer kernel: boot it
					default:
						dm, _ := h.Root(ctx, "dmesg | grep -E 'NVRM|nvidia' | tail -n 20")
						hint := kernelLogHint(out + "\n" + dm.Stdout)
						if hint == "" {
							hint = "see the kernel log above: a wrong flavour, or the GPU's BARs not mapped by the VM firmware"
						}
						return engine.Fail(fmt.Errorf("modprobe nvidia: %w", err), hint, strings.TrimSpace(out+"\n"+dm.Stdout))
					}
				}
			}
			if needReboot {
				if rebooted {
					dm, _ := h.Root(ctx, "dmesg | grep -E 'NVRM|nvidia' | tail -n 20")
					hint := kernelLogHint(s.smiOut + "\n" + dm.Stdout)
					if hint == "" && s.nouveau {
						hint = kernelLogHints[0].hint // nouveau is still loaded after the reboot
					}
					if hint == "" {
						hint = "read 'dmesg | grep NVRM' and 'nvidia-smi' on the VM"
					}
					return engine.Fail(errors.New("the NVIDIA module is still not usable after a reboot"), hint, strings.TrimSpace(s.smiOut+"\n"+dm.Stdout))
				}
				if err := h.reboot(ctx, name); err != nil {
					return err
				}
				rebooted = true
				if _, err := h.Root(ctx, "modprobe nvidia && modprobe nvidia_uvm"); err != nil {
					var ee *guest.ExitError
					if !errors.As(err, &ee) {
						return err
					}
				}
			}
			h.Invalidate()
			s, err = h.moduleState(ctx)
			if err != nil {
				return err
			}
			if s.smiRC != 0 {
				dm, _ := h.Root(ctx, "dmesg | grep -E 'NVRM|nvidia' | tail -n 20")
				hint := kernelLogHint(s.smiOut + "\n" + dm.Stdout)
				if hint == "" && s.nouveau {
					hint = kernelLogHints[0].hint // lsmod: nouveau holds the GPU (a driver conflict)
				}
				if hint == "" {
					hint = smiHint(s.smiRC)
				}
				return engine.Fail(fmt.Errorf("nvidia-smi exits %d after loading the module", s.smiRC), hint, strings.TrimSpace(s.smiOut+"\n"+dm.Stdout))
			}
			return nil
		},
	}
}

func smiHint(rc int) string {
	switch rc {
	case 6:
		return "the driver refused the GPU: on Blackwell only the -open module works; check dmesg for 'requires use of the NVIDIA open kernel modules' or RmInitAdapter failures"
	case 9:
		return "the NVIDIA module is not loaded: modprobe nvidia, check dmesg"
	case 18:
		return "driver/library version mismatch: reboot the VM"
	case 127:
		return "nvidia-smi is missing: install nvidia-utils-<branch>"
	}
	return "see nvidia-smi's output and dmesg"
}

// reboot restarts the guest and waits (bounded) until SSH answers from a new boot.
func (h *Host) reboot(ctx context.Context, task string) error {
	before, err := h.Root(ctx, "cat /proc/sys/kernel/random/boot_id")
	if err != nil {
		return err
	}
	h.progress(task, "rebooting the VM to load the driver")
	if _, err := h.Root(ctx, "systemctl reboot"); err != nil && !errors.Is(err, guest.ErrConnectionLost) {
		var ee *guest.ExitError
		if !errors.As(err, &ee) || ee.Code != 255 {
			return fmt.Errorf("reboot: %w", err)
		}
	}
	err = h.poll(ctx, task, "SSH after the reboot", h.P.RebootTimeout, func(ctx context.Context) (bool, string, error) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := h.R.Reconnect(rctx); err != nil {
			if errors.Is(err, guest.ErrHostKey) {
				return false, "", err
			}
			return false, "not answering yet", nil
		}
		after, err := h.Root(ctx, "cat /proc/sys/kernel/random/boot_id")
		if err != nil {
			return false, "connected, but " + err.Error(), nil
		}
		if strings.TrimSpace(after.Stdout) == strings.TrimSpace(before.Stdout) {
			return false, "still the old boot", nil
		}
		return true, "", nil
	})
	if err != nil {
		return engine.Fail(fmt.Errorf("reboot: %w", err), "open the VM's console in Proxmox: the GPU may not come back after a reset (vfio 'not ready after FLR'); a host power cycle may be needed", "")
	}
	h.Invalidate()
	return nil
}

// --- CUDA ---

const cudaKeyringURL = "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/cuda-keyring_1.1-1_all.deb"

func (h *Host) cudaRepoTask() engine.Task {
	name := "add NVIDIA's CUDA repository (cuda-keyring)"
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			d, err := h.dpkg(ctx)
			if err != nil {
				return false, err
			}
			return d["cuda-keyring"].Installed(), nil
		},
		apply: func(ctx context.Context) error {
			res, err := h.rootWithLockWait(ctx, name, "set -e; cd /tmp; curl -fsSL -o cuda-keyring_1.1-1_all.deb "+cudaKeyringURL+"; dpkg -i cuda-keyring_1.1-1_all.deb; rm -f cuda-keyring_1.1-1_all.deb")
			if err != nil {
				return engine.Fail(fmt.Errorf("install cuda-keyring: %w", err), "the VM must reach developer.download.nvidia.com", guest.Tail(res.Stdout+res.Stderr, 20))
			}
			_, err = h.aptGet(ctx, name, "update")
			return err
		},
	}
}

func (h *Host) toolkitPackage() string {
	return "cuda-toolkit-" + strings.ReplaceAll(h.P.CUDAToolkit, ".", "-")
}

func (h *Host) cudaToolkitTask() engine.Task {
	name := "install the CUDA toolkit " + h.P.CUDAToolkit
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Facts(ctx)
			if err != nil {
				return false, err
			}
			if !ParseDpkg(f["dpkg"].Out)[h.toolkitPackage()].Installed() {
				return false, nil
			}
			v, ok := ParseNvcc(f["nvcc"].Out)
			return ok && v.AtLeast(MinCUDA(h.arch())) && v.AtLeast("12.6"), nil
		},
		apply: func(ctx context.Context) error {
			want, _ := ParseVersion(h.P.CUDAToolkit)
			if !want.AtLeast(MinCUDA(h.arch())) {
				return engine.Fail(fmt.Errorf("CUDA %s cannot compile for a %s GPU (needs %s or newer)", h.P.CUDAToolkit, h.arch(), MinCUDA(h.arch())), "ask for cuda 12.8 or newer", "")
			}
			f, err := h.Fact(ctx, "smi_header")
			if err != nil {
				return err
			}
			if _, cuda := ParseSMIHeader(f.Out); cuda != "" {
				if have, _ := ParseVersion(cuda); have.Compare(want) < 0 {
					return engine.Fail(fmt.Errorf("the driver supports CUDA %s, older than the toolkit %s", cuda, h.P.CUDAToolkit), "install a newer -open driver branch or pick an older toolkit", guest.Tail(f.Out, 5))
				}
			}
			_, err = h.aptGet(ctx, name, "install --no-install-recommends "+h.toolkitPackage())
			return err
		},
	}
}
