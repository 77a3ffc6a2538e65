package guest

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aimachine/aimachine/fakes/nvgpu"
)

func init() {
	programs["ubuntu-drivers"] = progUbuntuDrivers
	programs["modprobe"] = progModprobe
	programs["insmod"] = progModprobe
	programs["rmmod"] = progRmmod
	programs["lsmod"] = progLsmod
	programs["modinfo"] = progModinfo
	programs["nvidia-smi"] = progNvidiaSmi
	programs["nvidia-modprobe"] = progNvidiaModprobe
	programs["lspci"] = progLspci
	programs["dmesg"] = progDmesg
	programs["mokutil"] = progMokutil
	programs["dkms"] = progDkms
}

func cudaVersionFor(branch string) string {
	switch branch {
	case "580":
		return "13.0"
	case "595":
		return "13.2"
	}
	return "13.0"
}

// nvidiaInstalled returns the NVIDIA kernel module installed for the running kernel, if any.
func (s *system) nvidiaInstalled() *nvModule {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.installed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pd := archive[n]
		if pd == nil || s.halfConfigured[n] {
			continue
		}
		if pd.role == "modules" {
			return &nvModule{version: nvBranches[pd.branch], branch: pd.branch, open: pd.open, signed: true, pkg: n}
		}
	}
	for _, n := range names {
		pd := archive[n]
		if pd != nil && pd.role == "dkms" && s.dkmsBuilt[n] != "" {
			return &nvModule{version: nvBranches[pd.branch], branch: pd.branch, open: pd.open, signed: false, pkg: n}
		}
		if pd != nil && n == "nvidia-kernel-open-dkms" && s.dkmsBuilt[n] != "" {
			return &nvModule{version: nvidiaRepoDriver, branch: "580", open: true, signed: false, pkg: n}
		}
	}
	return nil
}

// userspaceVersion is the installed libnvidia-compute (NVML) version, "" when none.
func (s *system) userspaceVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.installed {
		if pd := archive[n]; pd != nil && pd.role == "compute" {
			return nvBranches[pd.branch]
		}
	}
	if _, ok := s.installed["nvidia-driver-cuda"]; ok {
		return nvidiaRepoDriver
	}
	return ""
}

// loadNvidia loads the nvidia module (modprobe or udev at boot); it returns modprobe's error text.
func (s *system) loadNvidia(boot bool) string {
	s.mu.Lock()
	if s.loaded["nvidia"] {
		s.mu.Unlock()
		return ""
	}
	s.mu.Unlock()
	mod := s.nvidiaInstalled()
	if mod == nil {
		return "modprobe: FATAL: Module nvidia not found in directory /lib/modules/" + kernelRelease
	}
	if !mod.signed && s.secureBootOn() {
		s.kmsg("Loading of unsigned module is rejected")
		return "modprobe: ERROR: could not insert 'nvidia': Key was rejected by service"
	}
	gpu := s.nvidiaGPU()
	kind := "NVIDIA UNIX Open Kernel Module for x86_64"
	if !mod.open {
		kind = "NVIDIA UNIX x86_64 Kernel Module"
	}
	s.kmsg("nvidia: loading out-of-tree module taints kernel.")
	if !mod.open {
		s.kmsg("nvidia: module license 'NVIDIA' taints kernel.", "Disabling lock debugging due to kernel taint")
	}
	if !mod.signed {
		s.kmsg("nvidia: module verification failed: signature and/or required key missing - tainting kernel")
	}
	if gpu == nil {
		s.kmsg("NVRM: No NVIDIA devices probed.")
		return "modprobe: ERROR: could not insert 'nvidia': No such device"
	}
	s.kmsg("nvidia-nvlink: Nvlink Core is being initialized, major device number 236",
		fmt.Sprintf("nvidia 0000:%s: vgaarb: VGA decodes changed: olddecodes=io+mem,decodes=none:owns=none", gpu.guestAddr))
	if mod.open && gpu.openUnsupported() {
		// open nvidia.ko needs the GPU System Processor (Turing and later); it refuses the GPU
		// and modprobe fails (nvgpu [open]; real kernel log lines)
		s.kmsg(fmt.Sprintf("NVRM: The NVIDIA GPU 0000:%s (PCI ID: 10de:%s)", gpu.guestAddr, gpu.device),
			"NVRM: installed in this system is not supported by open",
			"NVRM: nvidia.ko because it does not include the required GPU",
			"NVRM: System Processor (GSP).",
			"NVRM: Please see the 'Open Linux Kernel Modules' and 'GSP",
			"NVRM: Firmware' sections in the driver README, available on",
			"NVRM: the Linux graphics driver download page at",
			"NVRM: www.nvidia.com.",
			fmt.Sprintf("nvidia 0000:%s: probe with driver nvidia failed with error -1", gpu.guestAddr),
			"NVRM: None of the NVIDIA devices were initialized.")
		return "modprobe: ERROR: could not insert 'nvidia': No such device"
	}
	if !mod.open && gpu.openRequired() {
		s.kmsgOpenModuleRequired(gpu)
	}
	s.kmsg(fmt.Sprintf("NVRM: loading %s  %s  Release Build  (dvs-builder@U22-I3-AF03-09-1)  Wed Jul 29 00:52:31 UTC 2026", kind, mod.version))
	s.mu.Lock()
	s.loaded["nvidia"] = true
	s.loadedNvidia = mod
	desktop := false
	for n := range s.installed {
		if pd := archive[n]; pd != nil && pd.role == "driver" {
			desktop = true
		}
	}
	s.mu.Unlock()
	if boot && desktop {
		s.kmsg(fmt.Sprintf("nvidia-modeset: Loading NVIDIA UNIX Open Kernel Mode Setting Driver for x86_64  %s  Release Build  (dvs-builder@U22-I3-AF03-09-1)", mod.version),
			"[drm] [nvidia-drm] [GPU ID 0x00000100] Loading driver",
			fmt.Sprintf("[drm] Initialized nvidia-drm 0.0.0 for 0000:%s on minor 1", gpu.guestAddr))
		s.mu.Lock()
		s.loaded["nvidia_modeset"] = true
		s.loaded["nvidia_drm"] = true
		s.mu.Unlock()
	}
	s.writeProcFiles()
	return ""
}

// kmsgOpenModuleRequired logs the proprietary module's refusal of a Blackwell GPU; the driver
// repeats it on every attempt to initialise the GPU (guest.md §4.2).
func (s *system) kmsgOpenModuleRequired(gpu *gpuDev) {
	s.kmsg(fmt.Sprintf("NVRM: The NVIDIA GPU 0000:%s (PCI ID: 10de:%s)", gpu.guestAddr, gpu.device),
		"               NVRM: installed in this system requires use of the NVIDIA open kernel modules.",
		fmt.Sprintf("NVRM: GPU 0000:%s: RmInitAdapter failed! (0x22:0x56:884)", gpu.guestAddr),
		fmt.Sprintf("NVRM: GPU 0000:%s: rm_init_adapter failed, device minor number 0", gpu.guestAddr))
}

func (s *system) loadUVM() string {
	s.mu.Lock()
	nv := s.loaded["nvidia"]
	uvm := s.loaded["nvidia_uvm"]
	s.mu.Unlock()
	if uvm {
		return ""
	}
	if !nv {
		if msg := s.loadNvidia(false); msg != "" {
			return strings.Replace(msg, "'nvidia'", "'nvidia_uvm'", 1)
		}
	}
	s.kmsg("nvidia-uvm: Loaded the UVM driver, major device number 234.")
	s.mu.Lock()
	s.loaded["nvidia_uvm"] = true
	s.mu.Unlock()
	return ""
}

// gpuUsable reports whether CUDA can use the GPU now; otherwise the reason (CUDA-ish text).
func (s *system) gpuUsable() (ok bool, reason string) {
	s.mu.Lock()
	mod := s.loadedNvidia
	s.mu.Unlock()
	if mod == nil {
		return false, "no CUDA-capable device is detected"
	}
	gpu := s.nvidiaGPU()
	if gpu == nil || (!mod.open && gpu.openRequired()) {
		return false, "no CUDA-capable device is detected"
	}
	if uv := s.userspaceVersion(); uv == "" {
		return false, "CUDA driver library (libcuda.so.1) not found"
	} else if uv != mod.version {
		return false, "system has unsupported display driver / cuda driver combination"
	}
	return true, ""
}

// cudaInit is what libcuda does on first use: load nvidia_uvm through nvidia-modprobe if possible.
func (s *system) cudaInit() (bool, string) {
	ok, reason := s.gpuUsable()
	if !ok {
		return false, reason
	}
	s.mu.Lock()
	uvm := s.loaded["nvidia_uvm"]
	s.mu.Unlock()
	if !uvm {
		if !s.g.fs.exists("/usr/bin/nvidia-modprobe") {
			return false, "unknown error"
		}
		if msg := s.loadUVM(); msg != "" {
			return false, "unknown error"
		}
	}
	return true, ""
}

// postinst runs package maintainer scripts that matter to the simulation.
func (s *system) postinst(p *proc, pd *pkgDef) int {
	switch pd.role {
	case "dkms":
		return s.dkmsBuild(p, pd.name, nvBranches[pd.branch], false)
	case "nvidia-repo-driver":
		if pd.name == "nvidia-kernel-open-dkms" {
			return s.dkmsBuild(p, pd.name, nvidiaRepoDriver, false)
		}
	case "qga":
		s.daemonReload()
		s.startUnitByName(p.ctx, "qemu-guest-agent.service", nil)
	case "keyring":
		s.g.fs.writeFile("/usr/share/keyrings/cuda-archive-keyring.gpg", []byte("gpg keyring (simulated)\n"), 0o644, owner{})
		s.g.fs.writeFile("/etc/apt/sources.list.d/cuda-ubuntu2404-x86_64.list", []byte("deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] "+nvidiaURL+"/ /\n"), 0o644, owner{})
	case "cuda":
		for fp := range pd.files {
			if strings.HasSuffix(fp, "/bin/nvcc") {
				dir := path.Dir(path.Dir(fp))
				s.g.fs.symlink(dir, "/usr/local/cuda")
				s.g.fs.symlink(dir, "/etc/alternatives/cuda")
				major := strings.SplitN(strings.TrimPrefix(dir, "/usr/local/cuda-"), ".", 2)[0]
				s.g.fs.symlink(dir, "/usr/local/cuda-"+major)
			}
		}
	case "driver":
		if pd.open || true {
			s.g.fs.writeFile("/usr/lib/modprobe.d/nvidia-kms.conf", []byte("# This file was generated by nvidia-driver-"+pd.branch+"\n# Set value to 0 to disable modesetting\noptions nvidia-drm modeset=1\n"), 0o644, owner{})
		}
	}
	return 0
}

// dkmsBuild builds an NVIDIA DKMS module for the running kernel. From a package's postinst
// (explicit=false) missing headers only skip the build, as dkms_common.postinst does; `dkms build`
// or `dkms install` (explicit=true) fail with the headers error of guest.md §10.2. A failed build
// leaves /var/lib/dkms/nvidia/<ver>/build/make.log and returns 10, dkms's status for a bad build,
// which dpkg reports as the postinst's exit status (guest.md §10.2).
func (s *system) dkmsBuild(p *proc, pkg, ver string, explicit bool) int {
	if !explicit {
		p.printf("Loading new nvidia-%s DKMS files...\n", ver)
	}
	if !s.isInstalled("linux-headers-" + kernelRelease) {
		if !explicit {
			p.printf("Module build for kernel %s was skipped since the\nkernel headers for this kernel do not seem to be installed.\n", kernelRelease)
			return 0
		}
		p.errorf("Error! Your kernel headers for kernel %s cannot be found at /lib/modules/%s/build or /lib/modules/%s/source.\nPlease install the linux-headers-%s package or use the --kernelsourcedir option to tell DKMS where it's located.\n", kernelRelease, kernelRelease, kernelRelease, kernelRelease)
		return 1
	}
	if !explicit {
		p.printf("Building for %s\nBuilding initial module for %s\n", kernelRelease, kernelRelease)
	}
	if err := s.g.sleep(p.ctx, 60*time.Second); err != nil {
		return 1
	}
	if s.g.f.fault(FaultDKMSBuild, s.g.id.VMID, nil) != nil {
		s.g.fs.writeFile("/var/lib/dkms/nvidia/"+ver+"/build/make.log", []byte(dkmsMakeLog(ver)), 0o644, owner{})
		p.errorf("Error! Bad return status for module build on kernel: %s (x86_64)\nConsult /var/lib/dkms/nvidia/%s/build/make.log for more information.\n", kernelRelease, ver)
		return 10
	}
	if s.secureBootOn() {
		p.printf("Secure Boot is enabled: the module must be signed with a key enrolled in the MOK list.\n")
	}
	// A good build moves its log under <kver>/x86_64/log and cleans build/ (dkms 3.x).
	s.g.fs.remove("/var/lib/dkms/nvidia/" + ver + "/build/make.log")
	s.g.fs.writeFile("/var/lib/dkms/nvidia/"+ver+"/"+kernelRelease+"/x86_64/log/make.log", []byte("DKMS make.log for nvidia-"+ver+" for kernel "+kernelRelease+" (x86_64)\n"), 0o644, owner{})
	p.printf("Signing module /var/lib/dkms/nvidia/%s/build/nvidia.ko\ndepmod...\n", ver)
	if !explicit {
		p.printf("Done.\n")
	}
	s.mu.Lock()
	s.dkmsBuilt[pkg] = ver
	s.mu.Unlock()
	return 0
}

// dkmsMakeLog is the make.log of a failed kbuild of the NVIDIA module: dkms's header, the kbuild
// directory lines, one compiler error and make's error cascade. The layout follows kbuild's; the
// particular compiler error is illustrative (a kernel API the module source does not know).
func dkmsMakeLog(ver string) string {
	b := "/var/lib/dkms/nvidia/" + ver + "/build"
	hdr := "/usr/src/linux-headers-" + kernelRelease
	return "DKMS make.log for nvidia-" + ver + " for kernel " + kernelRelease + " (x86_64)\n" +
		"Mon Nov 23 09:14:02 UTC 2026\n" +
		"make[1]: Entering directory '" + hdr + "'\n" +
		"  CC [M]  " + b + "/nvidia/nv.o\n" +
		"  CC [M]  " + b + "/nvidia/os-interface.o\n" +
		b + "/nvidia/os-interface.c: In function 'os_get_current_time':\n" +
		b + "/nvidia/os-interface.c:441:5: error: implicit declaration of function 'ktime_get_real_ts64_compat' [-Werror=implicit-function-declaration]\n" +
		"cc1: some warnings being treated as errors\n" +
		"make[3]: *** [scripts/Makefile.build:243: " + b + "/nvidia/os-interface.o] Error 1\n" +
		"make[2]: *** [" + hdr + "/Makefile:1925: " + b + "] Error 2\n" +
		"make[1]: *** [Makefile:240: __sub-make] Error 2\n" +
		"make[1]: Leaving directory '" + hdr + "'\n" +
		"make: *** [Makefile:82: modules] Error 2\n"
}

// dkmsPackages lists installed DKMS packages and their driver versions.
func (s *system) dkmsPackages() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for n := range s.installed {
		pd := archive[n]
		switch {
		case pd == nil:
		case pd.role == "dkms":
			out[n] = nvBranches[pd.branch]
		case n == "nvidia-kernel-open-dkms":
			out[n] = nvidiaRepoDriver
		}
	}
	return out
}

func progDkms(p *proc) int {
	s := p.g.sys
	cmd := ""
	if len(p.args) > 1 {
		cmd = p.args[1]
	}
	switch cmd {
	case "status":
		for pkg, ver := range s.dkmsPackages() {
			s.mu.Lock()
			built := s.dkmsBuilt[pkg] != ""
			s.mu.Unlock()
			if built {
				p.printf("nvidia/%s, %s, x86_64: installed\n", ver, kernelRelease)
			} else {
				p.printf("nvidia/%s: added\n", ver)
			}
		}
		return 0
	case "build", "install", "autoinstall":
		if !p.root() {
			p.errorf("Error! You must be root to use this command.\n")
			return 1
		}
		code := 0
		for pkg, ver := range s.dkmsPackages() {
			s.mu.Lock()
			built := s.dkmsBuilt[pkg] != ""
			s.mu.Unlock()
			if built {
				continue
			}
			if c := s.dkmsBuild(p, pkg, ver, true); c != 0 {
				code = c
			}
		}
		return code
	}
	p.errorf("Error! No action was specified.\n")
	return 1
}

type udCandidate struct {
	pkg    string
	fl     string // 580-server-open
	branch string
	open   bool
	server bool
	// modules is the package that provides the kernel modules: Canonical's prebuilt
	// linux-modules-nvidia-<fl>-generic, or the nvidia-dkms-<fl> fallback when no prebuilt package
	// exists for the running kernel (noble detect.get_linux_modules_metapackage, guest.md §2.4).
	modules string
}

// dkms reports whether the candidate's kernel modules would come only from a DKMS build.
func (c udCandidate) dkms() bool { return strings.HasPrefix(c.modules, "nvidia-dkms-") }

// driverCandidates lists the NVIDIA packages ubuntu-drivers offers for the passed-through GPU.
func (s *system) driverCandidates() []udCandidate {
	gpu := s.nvidiaGPU()
	if gpu == nil {
		return nil
	}
	var out []udCandidate
	for _, b := range []string{"595", "580"} {
		for _, fl := range []string{"-server-open", "-open", "-server", ""} {
			// a package is a candidate only if its Modaliases carry the GPU (nvgpu Supports:
			// Pascal only up to 580 and never -open; an unknown device id matches nothing)
			bn, _ := strconv.Atoi(b)
			if gpu.card == nil || !gpu.card.Supports(bn, strings.HasSuffix(fl, "open")) {
				continue
			}
			name := "nvidia-driver-" + b + fl
			if s.available(name) == nil {
				continue
			}
			mods := "linux-modules-nvidia-" + b + fl + "-generic"
			if s.available(mods) == nil {
				mods = "nvidia-dkms-" + b + fl
			}
			out = append(out, udCandidate{pkg: name, fl: b + fl, branch: b, open: strings.HasSuffix(fl, "open"), server: strings.Contains(fl, "server"), modules: mods})
		}
	}
	return out
}

// recommended mirrors noble's choice: -open is preferred only with a Prefer-Variant header, which
// these packages lack, so the closed build of the newest branch gets the mark.
func recommended(c []udCandidate) string {
	for _, x := range c {
		if !x.open && !x.server {
			return x.pkg
		}
	}
	return ""
}

func progUbuntuDrivers(p *proc) int {
	s := p.g.sys
	args := p.args[1:]
	gpgpu := false
	groupGpgpu := false
	var cmd string
	var rest []string
	for _, a := range args {
		switch {
		case a == "--gpgpu" && cmd == "":
			groupGpgpu = true
		case a == "--gpgpu":
			gpgpu = true
		case cmd == "" && !strings.HasPrefix(a, "-"):
			cmd = a
		default:
			rest = append(rest, a)
		}
	}
	if groupGpgpu {
		p.printf("This is gpgpu mode\n")
	}
	includeDKMS := contains(rest, "--include-dkms")
	p.errorf("ERROR:root:aplay command not found\n")
	cands := s.driverCandidates()
	rec := recommended(cands)
	gpu := s.nvidiaGPU()
	switch cmd {
	case "devices":
		if gpu == nil {
			return 0
		}
		p.printf("== /sys/devices/pci0000:00/0000:00:1c.0/0000:%s ==\n", gpu.guestAddr)
		sv, sd := gpu.subsystem()
		p.printf("modalias : pci:v000010DEd0000%ssv0000%ssd0000%sbc%ssc%si%s\n", strings.ToUpper(gpu.device), strings.ToUpper(sv), strings.ToUpper(sd),
			strings.ToUpper(gpu.class[0:2]), strings.ToUpper(gpu.class[2:4]), strings.ToUpper(gpu.class[4:6]))
		p.printf("vendor   : NVIDIA Corporation\n")
		// `model` comes from udev's hwdb (ID_MODEL_FROM_DATABASE, generated from pci.ids): only
		// for ids noble's pci.ids knows (guest.md §2.2; nvgpu NoblePCIName)
		if gpu.card != nil && gpu.card.NoblePCIName != "" {
			p.printf("model    : %s\n", gpu.card.NoblePCIName)
		}
		for _, c := range cands {
			mark := ""
			if c.pkg == rec {
				mark = " recommended"
			}
			p.printf("driver   : %s - distro non-free%s\n", c.pkg, mark)
		}
		if s.isInstalled("cuda-keyring") {
			p.printf("driver   : nvidia-driver-open - third-party non-free\n")
		}
		p.printf("driver   : xserver-xorg-video-nouveau - distro free builtin\n\n")
		return 0
	case "list":
		recOnly := contains(rest, "--recommended")
		for _, c := range cands {
			if c.dkms() && !includeDKMS {
				// DKMS-only entries are hidden unless --include-dkms (guest.md §2.3).
				continue
			}
			line := fmt.Sprintf("%s, (kernel modules provided by %s)", c.pkg, c.modules)
			if recOnly {
				if gpgpu {
					p.printf("%s %s\n", c.pkg, c.modules)
				} else if c.pkg == rec {
					p.printf("%s\n", line)
				}
				if gpgpu || c.pkg == rec {
					break
				}
				continue
			}
			p.printf("%s\n", line)
		}
		return 0
	case "debug":
		p.printf("=== log messages ===\n=== matching driver packages ===\n")
		for _, c := range cands {
			p.printf("%s\n", c.pkg)
		}
		return 0
	case "install", "autoinstall":
		if !p.root() {
			p.errorf("Error: 'ubuntu-drivers %s' must be run as root. Try using 'sudo'.\n", cmd)
			return 1
		}
		var want string
		for _, r := range rest {
			if strings.HasPrefix(r, "nvidia:") {
				want = strings.TrimPrefix(r, "nvidia:")
			}
		}
		var pick *udCandidate
		for i, c := range cands {
			if want == "" {
				if gpgpu && i == 0 || !gpgpu && c.pkg == rec {
					pick = &cands[i]
					break
				}
				continue
			}
			if ok, _ := path.Match("nvidia*"+want, c.pkg); ok {
				pick = &cands[i]
				break
			}
		}
		if pick == nil {
			p.printf("No drivers found for installation.\n")
			return 0
		}
		var pkgs []string
		if gpgpu {
			pkgs = []string{"nvidia-headless-no-dkms-" + pick.fl, pick.modules}
			for _, x := range pkgs {
				p.printf("%s\n", x)
			}
		} else {
			pkgs = []string{pick.pkg, pick.modules}
		}
		if pick.dkms() && !includeDKMS {
			// No prebuilt modules for the running kernel and no --include-dkms: noble installs
			// nothing, says so in words that sound like success, and exits 0 (guest.md §2.4 step 4).
			p.printf("All the available drivers are already installed.\n")
			return 0
		}
		allInstalled := true
		for _, x := range pkgs {
			if !s.isInstalled(x) {
				allInstalled = false
			}
		}
		if allInstalled {
			p.printf("All the available drivers are already installed.\n")
			return 0
		}
		q := *p
		q.env = map[string]string{}
		for k, v := range p.env {
			q.env[k] = v
		}
		q.env["DEBIAN_FRONTEND"] = "noninteractive"
		q.name = "apt-get"
		q.args = append([]string{"apt-get", "install", "-o", "DPkg::options::=--force-confnew", "--no-install-recommends", "-y"}, pkgs...)
		progAptGet(&q) // the exit status is dropped, as on noble
		return 0
	case "":
		p.printf("Usage: ubuntu-drivers [OPTIONS] COMMAND [ARGS]...\n")
		return 0
	}
	p.errorf("Usage: ubuntu-drivers [OPTIONS] COMMAND [ARGS]...\nTry 'ubuntu-drivers --help' for help.\n\nError: No such command '%s'.\n", cmd)
	return 2
}

func progModprobe(p *proc) int {
	s := p.g.sys
	_, ops := splitFlags(p.args[1:], "")
	remove := contains(p.args, "-r")
	if len(ops) == 0 {
		p.errorf("modprobe: ERROR: missing parameters. See -h.\n")
		return 1
	}
	if !p.root() {
		p.errorf("modprobe: ERROR: could not insert '%s': Operation not permitted\n", ops[0])
		return 1
	}
	for _, m := range ops {
		m = strings.ReplaceAll(m, "-", "_")
		if remove {
			s.unload(m)
			continue
		}
		switch m {
		case "nvidia":
			if msg := s.loadNvidia(false); msg != "" {
				p.errorf("%s\n", msg)
				return 1
			}
		case "nvidia_uvm", "nvidia_modeset", "nvidia_drm":
			if s.nvidiaInstalled() == nil {
				p.errorf("modprobe: FATAL: Module %s not found in directory /lib/modules/%s\n", m, kernelRelease)
				return 1
			}
			if m == "nvidia_uvm" {
				if msg := s.loadUVM(); msg != "" {
					p.errorf("%s\n", msg)
					return 1
				}
				continue
			}
			if msg := s.loadNvidia(false); msg != "" {
				p.errorf("%s\n", strings.Replace(msg, "'nvidia'", "'"+m+"'", 1))
				return 1
			}
			s.mu.Lock()
			s.loaded[m] = true
			s.mu.Unlock()
		case "nouveau":
			p.errorf("modprobe: FATAL: Module nouveau not found in directory /lib/modules/%s\n", kernelRelease)
			return 1
		default:
			s.mu.Lock()
			s.loaded[m] = true
			s.mu.Unlock()
		}
	}
	return 0
}

func (s *system) unload(m string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.loaded, m)
	if m == "nvidia" {
		s.loadedNvidia = nil
		delete(s.loaded, "nvidia_uvm")
		delete(s.loaded, "nvidia_modeset")
		delete(s.loaded, "nvidia_drm")
	}
}

func progRmmod(p *proc) int {
	if !p.root() {
		p.errorf("rmmod: ERROR: ../libkmod/libkmod-module.c:856 kmod_module_remove_module() could not remove '%s': Operation not permitted\n", p.args[len(p.args)-1])
		return 1
	}
	for _, m := range p.args[1:] {
		p.g.sys.unload(strings.ReplaceAll(m, "-", "_"))
	}
	p.g.sys.writeProcFiles()
	return 0
}

func progLsmod(p *proc) int {
	s := p.g.sys
	s.mu.Lock()
	defer s.mu.Unlock()
	p.printf("Module                  Size  Used by\n")
	type mod struct {
		name string
		size int
		deps []string // modules using this one
	}
	users := func(m string, cands ...string) []string {
		var out []string
		for _, c := range cands {
			if s.loaded[c] {
				out = append(out, c)
			}
		}
		return out
	}
	mods := []mod{
		{"nvidia_uvm", 2076672, nil}, {"nvidia_drm", 135168, nil}, {"nvidia_modeset", 1638400, users("", "nvidia_drm")},
		{"nvidia", 11640832, users("", "nvidia_uvm", "nvidia_modeset")},
	}
	for _, m := range mods {
		if !s.loaded[m.name] {
			continue
		}
		p.printf("%-19s %8d  %d %s\n", m.name, m.size, len(m.deps), strings.Join(m.deps, ","))
	}
	p.printf("%-19s %8d  %d\n", "virtio_net", 77824, 0)
	p.printf("%-19s %8d  %d\n", "virtio_scsi", 28672, 2)
	return 0
}

func progModinfo(p *proc) int {
	s := p.g.sys
	flags, ops := splitFlags(p.args[1:], "F")
	if len(ops) == 0 {
		return 1
	}
	m := strings.ReplaceAll(ops[0], "-", "_")
	mod := s.nvidiaInstalled()
	if !strings.HasPrefix(m, "nvidia") || mod == nil {
		p.errorf("modinfo: ERROR: Module %s not found.\n", ops[0])
		return 1
	}
	lic := "NVIDIA"
	if mod.open {
		lic = "Dual MIT/GPL"
	}
	fields := map[string]string{"version": mod.version, "license": lic, "filename": fmt.Sprintf("/lib/modules/%s/kernel/nvidia-%s/%s.ko", kernelRelease, strings.TrimPrefix(mod.pkg, "linux-modules-nvidia-"), m),
		"description": "NVIDIA kernel module", "vermagic": kernelRelease + " SMP preempt mod_unload modversions"}
	if !mod.signed {
		fields["filename"] = fmt.Sprintf("/lib/modules/%s/updates/dkms/%s.ko.zst", kernelRelease, m)
	} else {
		fields["signer"] = "Canonical Ltd. Kernel Module Signing"
	}
	if f, ok := flags["F"]; ok {
		if v, ok := fields[f]; ok {
			p.printf("%s\n", v)
		}
		return 0
	}
	for _, k := range []string{"filename", "version", "license", "description", "vermagic", "signer"} {
		if v, ok := fields[k]; ok {
			p.printf("%-16s%s\n", k+":", v)
		}
	}
	return 0
}

func progNvidiaModprobe(p *proc) int {
	if contains(p.args, "-u") {
		if msg := p.g.sys.loadUVM(); msg != "" {
			return 1
		}
		return 0
	}
	if msg := p.g.sys.loadNvidia(false); msg != "" {
		return 1
	}
	return 0
}

func busID(guestAddr string) string { return "00000000:" + strings.ToUpper(guestAddr) }

func (s *system) gpuMemUsed() (int, []struct {
	pid  int
	name string
	mib  int
}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var procs []struct {
		pid  int
		name string
		mib  int
	}
	total := 0
	var pids []int
	for pid := range s.gpuProcs {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	for _, pid := range pids {
		gp := s.gpuProcs[pid]
		if !gp.until.IsZero() && time.Now().After(gp.until) {
			continue
		}
		procs = append(procs, struct {
			pid  int
			name string
			mib  int
		}{pid, gp.name, gp.mib})
		total += gp.mib
	}
	return total, procs
}

func progNvidiaSmi(p *proc) int {
	s := p.g.sys
	s.mu.Lock()
	mod := s.loadedNvidia
	s.mu.Unlock()
	if mod == nil {
		p.printf("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n\n")
		return 9
	}
	uv := s.userspaceVersion()
	if uv == "" {
		p.printf("NVIDIA-SMI couldn't find libnvidia-ml.so library in your system. Please make sure that the NVIDIA Display Driver is properly installed and present in your system.\nPlease also try adding directory that contains libnvidia-ml.so to your system PATH.\n")
		return 12
	}
	if uv != mod.version {
		short := uv
		if parts := strings.Split(uv, "."); len(parts) > 2 {
			short = parts[0] + "." + parts[1]
		}
		p.printf("Failed to initialize NVML: Driver/library version mismatch\nNVML library version: %s\n", short)
		return 18
	}
	gpu := s.nvidiaGPU()
	if gpu == nil || (!mod.open && gpu.openRequired()) {
		if gpu != nil {
			s.kmsgOpenModuleRequired(gpu)
		}
		p.printf("No devices were found\n")
		return 6
	}
	used, procs := s.gpuMemUsed()
	if used > 0 {
		used += 2
	}
	cudaV := cudaVersionFor(mod.branch)
	persist := "Off"
	args := p.args[1:]
	var query, format string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "--query-gpu="):
			query = strings.TrimPrefix(a, "--query-gpu=")
		case a == "--query-gpu" && i+1 < len(args):
			query = args[i+1]
			i++
		case strings.HasPrefix(a, "--format="):
			format = strings.TrimPrefix(a, "--format=")
		case a == "--format" && i+1 < len(args):
			format = args[i+1]
			i++
		case a == "-L" || a == "--list-gpus":
			p.printf("GPU 0: %s (UUID: GPU-b75c61a8-fba6-aa18-344a-8a8871ba6af9)\n", gpu.model)
			return 0
		case a == "--version":
			p.printf("NVIDIA-SMI version  : %s\nNVML version        : %s\nDRIVER version      : %s\nCUDA Version        : %s\n", mod.version, strings.Join(strings.Split(mod.version, ".")[:2], "."), mod.version, cudaV)
			return 0
		case a == "-q" || a == "--query":
			p.printf("\n==============NVSMI LOG==============\n\nTimestamp                                              : %s\nDriver Version                                         : %s\nCUDA Version                                           : %s\n\nAttached GPUs                                          : 1\nGPU %s\n    Product Name                                       : %s\n    FB Memory Usage\n        Total                                          : %d MiB\n        Used                                           : %d MiB\n        Free                                           : %d MiB\n",
				time.Now().Format("Mon Jan _2 15:04:05 2006"), mod.version, cudaV, busID(gpu.guestAddr), gpu.model, gpu.memMiB, used, gpu.memMiB-used)
			return 0
		case strings.HasPrefix(a, "-"):
			if a != "-i" && !strings.HasPrefix(a, "--id") {
				p.printf("\nInvalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n\n")
				return 2
			}
		}
	}
	if query != "" {
		if !strings.HasPrefix(format, "csv") {
			p.printf("Field \"--format\" is mandatory with --query-gpu.\n")
			return 2
		}
		noheader := strings.Contains(format, "noheader")
		nounits := strings.Contains(format, "nounits")
		mem := func(v int) string {
			if nounits {
				return fmt.Sprint(v)
			}
			return fmt.Sprintf("%d MiB", v)
		}
		var head, vals []string
		for _, f := range strings.Split(query, ",") {
			f = strings.TrimSpace(f)
			var h, v string
			switch f {
			case "name", "gpu_name":
				h, v = "name", gpu.model
			case "memory.total":
				h, v = "memory.total [MiB]", mem(gpu.memMiB)
			case "memory.used":
				h, v = "memory.used [MiB]", mem(used)
			case "memory.free":
				h, v = "memory.free [MiB]", mem(gpu.memMiB-used)
			case "driver_version":
				h, v = "driver_version", mod.version
			case "pci.bus_id", "gpu_bus_id":
				h, v = "pci.bus_id", busID(gpu.guestAddr)
			case "compute_cap":
				h, v = "compute_cap", orDefault(gpu.computeCap(), "[N/A]")
			case "uuid", "gpu_uuid":
				h, v = "uuid", "GPU-b75c61a8-fba6-aa18-344a-8a8871ba6af9"
			case "index":
				h, v = "index", "0"
			case "persistence_mode":
				h, v = "persistence_mode", "Disabled"
			case "temperature.gpu":
				h, v = "temperature.gpu", "35"
			case "utilization.gpu":
				h, v = "utilization.gpu [%]", "0 %"
				if nounits {
					v = "0"
				}
			case "power.limit":
				h, v = "power.limit [W]", fmt.Sprintf("%d.00 W", gpu.powerW())
				if nounits {
					v = fmt.Sprintf("%d.00", gpu.powerW())
				}
			case "pci.device_id":
				h, v = "pci.device_id", "0x"+strings.ToUpper(gpu.device)+"10DE"
			case "vbios_version":
				h, v = "vbios_version", "98.06.1F.00.9C"
			default:
				p.printf("Field \"%s\" is not a valid field to query.\n\n", f)
				return 2
			}
			head = append(head, h)
			vals = append(vals, v)
		}
		if !noheader {
			p.printf("%s\n", strings.Join(head, ", "))
		}
		p.printf("%s\n", strings.Join(vals, ", "))
		return 0
	}
	// default table (580/595 header spelling)
	line := "+-----------------------------------------------------------------------------------------+"
	sep3 := "+-----------------------------------------+------------------------+----------------------+"
	p.printf("%s\n%s\n", time.Now().Format("Mon Jan _2 15:04:05 2006"), line)
	p.printf("| NVIDIA-SMI %-23sDriver Version: %-15sCUDA Version: %-9s|\n", mod.version, mod.version, cudaV)
	p.printf("%s\n", sep3)
	p.printf("| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |\n")
	p.printf("| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |\n")
	p.printf("|                                         |                        |               MIG M. |\n")
	p.printf("|=========================================+========================+======================|\n")
	left := fmt.Sprintf("%4d  %s", 0, gpu.model)
	p.printf("|%s%s%s |%19s %3s |%21s |\n", left, strings.Repeat(" ", max(1, 40-len(left)-len(persist))), persist, busID(gpu.guestAddr), "Off", "N/A")
	pwr := fmt.Sprintf("13W / %4dW", gpu.powerW())
	util := "0%"
	if used > 0 {
		pwr = fmt.Sprintf("38W / %4dW", gpu.powerW())
	}
	l2 := " 30%   35C    P0"
	if used > 0 {
		l2 = " 30%   41C    P2"
	}
	memCell := fmt.Sprintf("%dMiB / %6dMiB", used, gpu.memMiB)
	p.printf("|%s%*s |%23s |%8s      %s |\n", l2, 40-len(l2), pwr, memCell, util, "Default")
	p.printf("|                                         |                        |                  N/A |\n")
	p.printf("%s\n\n", sep3)
	p.printf("%s\n", line)
	p.printf("| Processes:                                                                              |\n")
	p.printf("|  GPU   GI   CI              PID   Type   Process name                        GPU Memory |\n")
	p.printf("|        ID   ID                                                               Usage      |\n")
	p.printf("|=========================================================================================|\n")
	if len(procs) == 0 {
		p.printf("|  No running processes found                                                             |\n")
	}
	for _, pr := range procs {
		memS := fmt.Sprintf("%dMiB", pr.mib)
		name := pr.name
		if w := 46 - len(memS) - 1; len(name) > w {
			name = "..." + name[len(name)-(w-3):]
		}
		p.printf("|  %3d   N/A  N/A  %14d      C   %-*s%s |\n", 0, pr.pid, 46-len(memS), name, memS)
	}
	p.printf("%s\n", line)
	return 0
}

func progLspci(p *proc) int {
	s := p.g.sys
	flags, _ := splitFlags(p.args[1:], "ds")
	numeric := has(flags, "n")
	kernel := has(flags, "k")
	filter := flags["d"]
	type dev struct{ addr, cls, clsName, vendor, device, name, rev string }
	devs := []dev{
		{"00:00.0", "0600", "Host bridge", "8086", "29c0", "Intel Corporation 82G33/G31/P35/P31 Express DRAM Controller", ""},
		{"00:1f.0", "0601", "ISA bridge", "8086", "2918", "Intel Corporation 82801IB (ICH9) LPC Interface Controller", " (rev 02)"},
		{"00:12.0", "0200", "Ethernet controller", "1af4", "1000", "Red Hat, Inc. Virtio network device", ""},
	}
	for _, g := range s.gpus() {
		cls, cn, name := "0300", "VGA compatible controller", "NVIDIA Corporation Device"
		// names from noble's pci.ids (nvgpu NoblePCIName): newer cards print as "Device"
		if c, ok := nvgpu.Lookup(g.device); ok && g.vendor == "10de" {
			name = nvgpu.NobleLspciName(c.NoblePCIName)
		}
		if strings.HasPrefix(g.class, "0302") {
			cls, cn = "0302", "3D controller" // data-centre boards (nvgpu Class)
		}
		if strings.HasPrefix(g.class, "0403") {
			cls, cn = "0403", "Audio device"
			if c, ok := nvgpu.LookupAudio(g.device); ok && g.vendor == "10de" {
				name = nvgpu.NobleLspciName(c.NobleAudioPCIName)
			}
		}
		if g.vendor != "10de" {
			name = "Device"
		}
		devs = append(devs, dev{g.guestAddr, cls, cn, g.vendor, g.device, name, " (rev a1)"})
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].addr < devs[j].addr })
	s.mu.Lock()
	bound := s.loadedNvidia != nil
	s.mu.Unlock()
	for _, d := range devs {
		if filter != "" {
			v, dv, _ := strings.Cut(filter, ":")
			if v != "" && v != d.vendor || dv != "" && dv != d.device {
				continue
			}
		}
		// lspci puts the revision after the [vendor:device] pair (guest.md §5).
		if numeric {
			p.printf("%s %s [%s]: %s [%s:%s]%s\n", d.addr, d.clsName, d.cls, d.name, d.vendor, d.device, d.rev)
		} else {
			p.printf("%s %s: %s%s\n", d.addr, d.clsName, d.name, d.rev)
		}
		if kernel && d.vendor == "10de" {
			var sv, sd string
			for _, g := range s.gpus() {
				if g.guestAddr == d.addr {
					sv, sd = g.subsystem()
				}
			}
			vendors := map[string]string{"1043": "ASUSTeK Computer Inc.", "1458": "Gigabyte Technology Co., Ltd", "1462": "Micro-Star International Co., Ltd. [MSI]", "10de": "NVIDIA Corporation", "19da": "ZOTAC International (MCO) Ltd."}
			p.printf("\tSubsystem: %s Device [%s:%s]\n", orDefault(vendors[sv], "Device"), sv, sd)
			if bound && d.cls == "0300" {
				p.printf("\tKernel driver in use: nvidia\n")
			}
			if d.cls == "0300" {
				p.printf("\tKernel modules: nvidiafb, nouveau, nvidia_drm, nvidia\n")
			} else {
				p.printf("\tKernel modules: snd_hda_intel\n")
			}
		}
	}
	return 0
}

func progDmesg(p *proc) int {
	if !p.root() {
		p.errorf("dmesg: read kernel buffer failed: Operation not permitted\n")
		return 1
	}
	s := p.g.sys
	s.mu.Lock()
	lines := append([]string{}, s.dmesg...)
	s.mu.Unlock()
	for _, l := range lines {
		p.printf("%s\n", l)
	}
	return 0
}

func progMokutil(p *proc) int {
	if !contains(p.args, "--sb-state") {
		p.errorf("Usage:\n  mokutil OPTIONS [ARGS...]\n")
		return 1
	}
	if !strings.Contains(p.g.bootInfo().BIOS, "ovmf") && p.g.f.hasFault(FaultSecureBoot, p.g.id.VMID) == nil {
		p.errorf("EFI variables are not supported on this system\n")
		return 1
	}
	if p.g.sys.secureBootOn() {
		p.printf("SecureBoot enabled\n")
	} else {
		p.printf("SecureBoot disabled\n")
	}
	return 0
}
