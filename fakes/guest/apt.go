package guest

import (
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// pkgDef is one package of the simulated archives.
type pkgDef struct {
	name    string
	version string
	repo    string // ubuntu | nvidia
	suite   string // noble-updates/restricted
	deps    []string
	files   map[string]string // guest path -> simulated program, or "text:" content, or "link:" target
	sizeKB  int
	seconds int // realistic unpack+configure time

	// NVIDIA driver family facts.
	branch string // 580
	server bool
	open   bool
	role   string // modules | dkms | utils | compute | headless | driver | common | cuda | ...
}

const (
	ubuntuURL = "http://archive.ubuntu.com/ubuntu"
	nvidiaURL = "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64"
)

var nvBranches = map[string]string{"580": "580.173.02", "595": "595.84"}

// nvidiaRepoDriver is the driver version of NVIDIA's own packages (nvidia-open, cuda-drivers) in
// its CUDA repository: the same 580 build as noble-updates (guest.md §0), so that every place the
// simulator prints a 580 version agrees.
var nvidiaRepoDriver = nvBranches["580"]

var archive = map[string]*pkgDef{}

func addPkg(p *pkgDef) {
	if p.repo == "" {
		p.repo = "ubuntu"
	}
	if p.suite == "" {
		p.suite = "noble/main"
	}
	if p.sizeKB == 0 {
		p.sizeKB = 240
	}
	if p.seconds == 0 {
		p.seconds = 2
	}
	archive[p.name] = p
}

func init() {
	bin := func(paths ...string) map[string]string {
		m := map[string]string{}
		for _, p := range paths {
			m[p] = path.Base(p)
		}
		return m
	}
	addPkg(&pkgDef{name: "ubuntu-drivers-common", version: "1:0.9.7.6ubuntu3.6", suite: "noble-updates/main", files: bin("/usr/bin/ubuntu-drivers"), deps: []string{"pciutils"}})
	addPkg(&pkgDef{name: "pciutils", version: "1:3.10.0-2build1", files: bin("/usr/bin/lspci")})
	addPkg(&pkgDef{name: "zstd", version: "1.5.5+dfsg2-2build1.1", suite: "noble-updates/main", files: bin("/usr/bin/zstd")})
	addPkg(&pkgDef{name: "jq", version: "1.7.1-3build1", files: bin("/usr/bin/jq")})
	addPkg(&pkgDef{name: "gcc-13", version: "13.3.0-6ubuntu2~24.04", suite: "noble-updates/main", files: map[string]string{"/usr/bin/gcc-13": "gcc", "/usr/bin/x86_64-linux-gnu-gcc-13": "gcc"}, sizeKB: 20000, seconds: 6})
	addPkg(&pkgDef{name: "gcc", version: "4:13.2.0-7ubuntu1", deps: []string{"gcc-13"}, files: map[string]string{"/usr/bin/gcc": "gcc", "/usr/bin/cc": "gcc"}})
	addPkg(&pkgDef{name: "g++", version: "4:13.2.0-7ubuntu1", deps: []string{"gcc"}, files: map[string]string{"/usr/bin/g++": "gcc", "/usr/bin/c++": "gcc"}})
	addPkg(&pkgDef{name: "make", version: "4.3-4.1build2", files: bin("/usr/bin/make")})
	addPkg(&pkgDef{name: "libc6-dev", version: "2.39-0ubuntu8.6", suite: "noble-updates/main", files: map[string]string{"/usr/include/stdio.h": "text:/* stdio.h */\n"}})
	addPkg(&pkgDef{name: "dpkg-dev", version: "1.22.6ubuntu6.5", suite: "noble-updates/main"})
	addPkg(&pkgDef{name: "build-essential", version: "12.10ubuntu1", deps: []string{"gcc", "g++", "make", "libc6-dev", "dpkg-dev"}})
	addPkg(&pkgDef{name: "python3-pip-whl", version: "24.0+dfsg-1ubuntu1.3", suite: "noble-updates/universe"})
	addPkg(&pkgDef{name: "python3-setuptools-whl", version: "68.1.2-2ubuntu1.2", suite: "noble-updates/universe"})
	addPkg(&pkgDef{name: "python3.12-venv", version: "3.12.3-1ubuntu0.8", suite: "noble-updates/universe", deps: []string{"python3-pip-whl", "python3-setuptools-whl"},
		files: map[string]string{"/usr/lib/python3.12/ensurepip/__init__.py": "text:# ensurepip\n"}})
	addPkg(&pkgDef{name: "python3-venv", version: "3.12.3-0ubuntu2", suite: "noble-updates/universe", deps: []string{"python3.12-venv"}})
	addPkg(&pkgDef{name: "libpython3.12-dev", version: "3.12.3-1ubuntu0.8", suite: "noble-updates/main", sizeKB: 5000})
	addPkg(&pkgDef{name: "python3.12-dev", version: "3.12.3-1ubuntu0.8", suite: "noble-updates/main", deps: []string{"libpython3.12-dev"},
		files: map[string]string{"/usr/include/python3.12/Python.h": "text:/* Python.h */\n"}})
	addPkg(&pkgDef{name: "python3-dev", version: "3.12.3-0ubuntu2", suite: "noble-updates/main", deps: []string{"python3.12-dev"}})
	addPkg(&pkgDef{name: "python3-pip", version: "24.0+dfsg-1ubuntu1.3", suite: "noble-updates/universe", deps: []string{"python3-pip-whl"}, files: map[string]string{"/usr/bin/pip3": "pip", "/usr/bin/pip": "pip"}})
	addPkg(&pkgDef{name: "qemu-guest-agent", version: "1:8.2.2+ds-0ubuntu1.10", suite: "noble-updates/main", role: "qga",
		files: map[string]string{"/usr/sbin/qemu-ga": "qemu-ga", "/usr/lib/systemd/system/qemu-guest-agent.service": "text:[Unit]\nDescription=QEMU Guest Agent\nBindsTo=dev-virtio\\x2dports-org.qemu.guest_agent.0.device\nAfter=dev-virtio\\x2dports-org.qemu.guest_agent.0.device\n\n[Service]\nExecStart=/usr/sbin/qemu-ga\nRestart=always\nRestartSec=0\n\n[Install]\n"}})
	addPkg(&pkgDef{name: "nvidia-cuda-toolkit", version: "12.0.140~12.0.1-4build4", suite: "noble/multiverse", sizeKB: 2100000, seconds: 40,
		files: map[string]string{"/usr/bin/nvcc": "nvcc", "/usr/lib/nvidia-cuda-toolkit/version": "text:12.0.140\n"}})
	addPkg(&pkgDef{name: "dkms", version: "3.0.11-1ubuntu13", files: bin("/usr/sbin/dkms")})
	addPkg(&pkgDef{name: "linux-headers-" + kernelRelease, version: "6.8.0-88.89", suite: "noble-updates/main", role: "headers", sizeKB: 25000, seconds: 5,
		files: map[string]string{"/usr/src/linux-headers-" + kernelRelease + "/Makefile": "text:# kernel headers\n", "/usr/lib/modules/" + kernelRelease + "/build": "link:/usr/src/linux-headers-" + kernelRelease}})
	addPkg(&pkgDef{name: "linux-headers-generic", version: "6.8.0-88.89", suite: "noble-updates/main", deps: []string{"linux-headers-" + kernelRelease}})

	for branch, ver := range nvBranches {
		for _, server := range []bool{false, true} {
			sv := ""
			if server {
				sv = "-server"
			}
			uver := ver + "-0ubuntu0.24.04.1"
			suite := "noble-updates/restricted"
			common := "nvidia-kernel-common-" + branch + sv
			compute := "libnvidia-compute-" + branch + sv
			utils := "nvidia-utils-" + branch + sv
			cutils := "nvidia-compute-utils-" + branch + sv
			fw := "nvidia-firmware-" + branch + sv + "-" + ver
			nv := func(p *pkgDef) {
				p.version, p.suite, p.branch, p.server = uver, suite, branch, server
				addPkg(p)
			}
			nv(&pkgDef{name: fw, role: "firmware", sizeKB: 70000, files: map[string]string{"/usr/lib/firmware/nvidia/" + ver + "/gsp_ga10x.bin": "text:gsp\n"}})
			nv(&pkgDef{name: common, role: "common", deps: []string{fw}, files: map[string]string{"/usr/lib/udev/rules.d/71-nvidia.rules": "text:# nvidia udev\n"}})
			nv(&pkgDef{name: compute, role: "compute", sizeKB: 60000, files: map[string]string{"/usr/lib/x86_64-linux-gnu/libcuda.so.1": "text:libcuda " + ver + "\n", "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1": "text:nvml " + ver + "\n"}})
			nv(&pkgDef{name: utils, role: "utils", deps: []string{compute}, files: map[string]string{"/usr/bin/nvidia-smi": "nvidia-smi", "/usr/bin/nvidia-debugdump": "true"}})
			nv(&pkgDef{name: cutils, role: "cutils", deps: []string{compute}, files: map[string]string{"/usr/bin/nvidia-persistenced": "true", "/usr/bin/nvidia-cuda-mps-control": "true", "/usr/bin/nvidia-modprobe": "nvidia-modprobe"}})
			for _, open := range []bool{false, true} {
				op := ""
				if open {
					op = "-open"
				}
				fl := branch + sv + op
				mods := "linux-modules-nvidia-" + fl + "-" + kernelRelease
				nv(&pkgDef{name: mods, role: "modules", open: open, version: "6.8.0-88.89+1", sizeKB: 40000, seconds: 4, deps: []string{common},
					files: map[string]string{"/usr/lib/modules/" + kernelRelease + "/kernel/nvidia-" + fl + "/nvidia.ko": "text:nvidia module " + ver + " signed\n"}})
				archive[mods].version = "6.8.0-88.89+1"
				nv(&pkgDef{name: "linux-modules-nvidia-" + fl + "-generic", role: "modules-meta", open: open, deps: []string{mods}})
				archive["linux-modules-nvidia-"+fl+"-generic"].version = "6.8.0-88.89+1"
				nv(&pkgDef{name: "nvidia-kernel-source-" + fl, role: "source", open: open, sizeKB: 50000})
				nv(&pkgDef{name: "nvidia-dkms-" + fl, role: "dkms", open: open, deps: []string{"dkms", "nvidia-kernel-source-" + fl, common}, seconds: 90})
				nv(&pkgDef{name: "nvidia-headless-no-dkms-" + fl, role: "headless", open: open, deps: []string{compute, cutils, common}})
				nv(&pkgDef{name: "nvidia-headless-" + fl, role: "headless", open: open, deps: []string{"nvidia-headless-no-dkms-" + fl, "nvidia-dkms-" + fl}})
				nv(&pkgDef{name: "nvidia-driver-" + fl, role: "driver", open: open, deps: []string{compute, utils, cutils, common}, sizeKB: 5000})
			}
		}
	}
	// 570 is transitional to 580 on noble-updates.
	for _, fl := range []string{"", "-open", "-server", "-server-open"} {
		addPkg(&pkgDef{name: "nvidia-driver-570" + fl, version: "580.173.02-0ubuntu0.24.04.1", suite: "noble-updates/restricted", deps: []string{"nvidia-driver-580" + fl}, role: "transitional"})
	}

	// NVIDIA's CUDA repository (after cuda-keyring + apt-get update).
	cuda := func(p *pkgDef) {
		p.repo, p.suite = "nvidia", ""
		addPkg(p)
		p.suite = ""
	}
	for _, v := range []struct{ mm, full string }{{"12-8", "12.8.1-1"}, {"12-9", "12.9.1-1"}, {"13-0", "13.0.2-1"}} {
		dot := strings.Replace(v.mm, "-", ".", 1)
		cuda(&pkgDef{name: "cuda-nvcc-" + v.mm, version: v.full, sizeKB: 120000, seconds: 8, role: "cuda",
			files: map[string]string{"/usr/local/cuda-" + dot + "/bin/nvcc": "nvcc", "/usr/local/cuda-" + dot + "/version.json": fmt.Sprintf("text:{\n   \"cuda\" : {\n      \"name\" : \"CUDA SDK\",\n      \"version\" : \"%s\"\n   }\n}\n", strings.TrimSuffix(v.full, "-1"))}})
		cuda(&pkgDef{name: "cuda-libraries-" + v.mm, version: v.full, sizeKB: 2500000, seconds: 40})
		cuda(&pkgDef{name: "cuda-toolkit-" + v.mm, version: v.full, deps: []string{"cuda-nvcc-" + v.mm, "cuda-libraries-" + v.mm}, role: "cuda-toolkit", seconds: 10})
	}
	cuda(&pkgDef{name: "cuda-toolkit", version: "13.0.2-1", deps: []string{"cuda-toolkit-13-0"}})
	cuda(&pkgDef{name: "nvidia-open", version: nvidiaRepoDriver + "-0ubuntu1", role: "nvidia-repo-driver", deps: []string{"nvidia-driver-cuda", "nvidia-kernel-open-dkms"}})
	cuda(&pkgDef{name: "nvidia-driver-cuda", version: nvidiaRepoDriver + "-0ubuntu1", role: "nvidia-repo-driver", files: map[string]string{"/usr/bin/nvidia-smi": "nvidia-smi"}})
	cuda(&pkgDef{name: "nvidia-kernel-open-dkms", version: nvidiaRepoDriver + "-0ubuntu1", role: "nvidia-repo-driver", deps: []string{"dkms"}})
	cuda(&pkgDef{name: "cuda-drivers", version: nvidiaRepoDriver + "-1", role: "nvidia-repo-driver", deps: []string{"nvidia-open"}})
	cuda(&pkgDef{name: "cuda-keyring", version: "1.1-1", role: "keyring"})
}

// basePackages are installed in the cloud image.
var basePackages = map[string]string{
	"base-files": "13ubuntu10.3", "bash": "5.2.21-2ubuntu4", "coreutils": "9.4-3ubuntu6.1", "openssh-server": "1:9.6p1-3ubuntu13.14",
	"sudo": "1.9.15p5-3ubuntu5.24.04.1", "curl": "8.5.0-2ubuntu10.6", "wget": "1.21.4-1ubuntu4.1", "python3": "3.12.3-0ubuntu2",
	"python3.12": "3.12.3-1ubuntu0.8", "pciutils": "1:3.10.0-2build1", "kmod": "31+20240202-2ubuntu7.1", "systemd": "255.4-1ubuntu8.11",
	"cloud-init": "25.2-0ubuntu1~24.04.1", "apt": "2.8.3", "dpkg": "1.22.6ubuntu6.5", "gpg": "2.4.4-2ubuntu17.3", "ca-certificates": "20240203",
	"linux-image-" + kernelRelease: "6.8.0-88.89", "linux-image-virtual": "6.8.0-88.89", "mokutil": "0.6.0-2build3", "grep": "3.11-4build1",
	"sed": "4.9-2build1", "mawk": "1.3.4.20240123-1build1", "tar": "1.35+dfsg-3build1", "unattended-upgrades": "2.9.1+nmu4ubuntu1",
}

func (s *system) installBasePackages() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range basePackages {
		s.installed[k] = v
	}
}

// pkgStatus is dpkg's view: "" not installed, "ii", "iF" (half-configured), "rc".
func (s *system) pkgVersion(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.installed[name]
	return v, ok
}

// available returns the package if its repository's lists are downloaded and it is not faulted away.
func (s *system) available(name string) *pkgDef {
	p := archive[name]
	if p == nil {
		return nil
	}
	s.mu.Lock()
	fresh := s.lists[p.repo]
	s.mu.Unlock()
	if !fresh {
		return nil
	}
	if p.role == "headers" && s.g.f.hasFault(FaultMissingHeaders, s.g.id.VMID) != nil {
		return nil
	}
	if (p.role == "modules" || p.role == "modules-meta") && s.g.f.hasFault(FaultNoPrebuiltModules, s.g.id.VMID) != nil {
		return nil
	}
	return p
}

func (s *system) isInstalled(name string) bool {
	_, ok := s.pkgVersion(name)
	return ok
}

// installedMatching lists installed packages whose names match a glob.
func (s *system) installedMatching(glob string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.installed {
		if ok, _ := path.Match(glob, n); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// installFiles lays down a package's files.
func (s *system) installFiles(p *pkgDef) {
	for fp, what := range p.files {
		switch {
		case strings.HasPrefix(what, "text:"):
			s.g.fs.writeFile(fp, []byte(strings.TrimPrefix(what, "text:")), 0o644, owner{})
		case strings.HasPrefix(what, "link:"):
			s.g.fs.symlink(strings.TrimPrefix(what, "link:"), fp)
		default:
			s.g.fs.writeFile(fp, simBinary(what), 0o755, owner{})
		}
	}
	s.g.fs.writeFile("/var/lib/dpkg/info/"+p.name+".list", []byte(strings.Join(keys(p.files), "\n")+"\n"), 0o644, owner{})
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// aptOpts are the apt-get options that change behaviour.
type aptOpts struct {
	yes, quiet, noRecommends, dryRun bool
	lockTimeout                      time.Duration
	fixBroken                        bool
}

// dpkgLockWait waits for the frontend lock (DPkg::Lock::Timeout) or fails like apt.
func (s *system) dpkgLock(p *proc, o aptOpts) bool {
	deadline := time.Now().Add(p.g.scale(o.lockTimeout))
	waited := false
	// a count-limited dpkg-lock fault holds the lock for this run's first attempt
	counted := s.g.f.fault(FaultDpkgLock, s.g.id.VMID, func(f *Fault) bool { return f.Count > 0 }) != nil
	for {
		pid, holder := s.lockHolder()
		if counted {
			pid, holder, counted = 1187, "unattended-upgr", false
		}
		if pid == 0 {
			return true
		}
		if o.lockTimeout <= 0 || time.Now().After(deadline) {
			if waited {
				p.printf("\n")
			}
			p.errorf("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process %d (%s)\nN: Be aware that removing the lock file is not a solution and may break your system.\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n", pid, holder)
			return false
		}
		if !waited {
			p.printf("Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process %d (%s)...", pid, holder)
			waited = true
		}
		if p.g.sleep(p.ctx, 2*time.Second) != nil {
			return false
		}
		if p.g.f.scale == 0 {
			// nothing can change in zero time except a count-limited fault
			continue
		}
	}
}

func parseAptArgs(args []string) (cmd string, pkgs []string, o aptOpts, bad string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-y" || a == "--yes" || a == "--assume-yes" || a == "-qy" || a == "-yq":
			o.yes = true
		case a == "-q" || a == "-qq" || a == "--quiet":
			o.quiet = true
			if a == "-qq" {
				o.yes = true
			}
		case a == "--no-install-recommends":
			o.noRecommends = true
		case a == "-s" || a == "--simulate" || a == "--dry-run":
			o.dryRun = true
		case a == "-f" || a == "--fix-broken":
			o.fixBroken = true
		case a == "-o" && i+1 < len(args):
			i++
			k, v, _ := strings.Cut(args[i], "=")
			if strings.EqualFold(k, "DPkg::Lock::Timeout") {
				n, _ := strconv.Atoi(v)
				o.lockTimeout = time.Duration(n) * time.Second
			}
		case strings.HasPrefix(a, "-o"):
		case strings.HasPrefix(a, "--"):
		case strings.HasPrefix(a, "-"):
			if strings.Contains(a, "y") {
				o.yes = true
			}
		default:
			if cmd == "" {
				cmd = a
			} else {
				pkgs = append(pkgs, a)
			}
		}
	}
	return
}

func init() {
	programs["apt-get"] = progAptGet
	programs["apt"] = progAptGet
	programs["apt-cache"] = progAptCache
	programs["dpkg"] = progDpkg
	programs["dpkg-query"] = progDpkgQuery
}

func progAptGet(p *proc) int {
	s := p.g.sys
	if p.name == "apt" {
		p.errorf("\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n\n")
	}
	cmd, pkgs, o, _ := parseAptArgs(p.args[1:])
	switch cmd {
	case "":
		p.printf("apt 2.8.3 (amd64)\nUsage: apt-get [options] command\n")
		return 1
	case "update", "install", "remove", "purge", "upgrade", "dist-upgrade", "full-upgrade", "autoremove", "reinstall":
	case "clean", "autoclean":
		return 0
	default:
		p.errorf("E: Invalid operation %s\n", cmd)
		return 100
	}
	if !p.root() {
		if cmd == "update" {
			p.errorf("Reading package lists... Done\nE: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)\nE: Unable to lock directory /var/lib/apt/lists/\n")
		} else {
			p.errorf("E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?\n")
		}
		return 100
	}
	if cmd != "update" && !o.dryRun && !s.dpkgLock(p, o) {
		return 100
	}
	if cmd == "update" {
		return s.aptUpdate(p)
	}
	p.printf("Reading package lists...\nBuilding dependency tree...\nReading state information...\n")
	switch cmd {
	case "install", "reinstall":
		return s.aptInstall(p, pkgs, o)
	case "remove", "purge", "autoremove":
		return s.aptRemove(p, pkgs, o, cmd == "purge")
	default:
		p.printf("Calculating upgrade...\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")
		return 0
	}
}

func (s *system) aptUpdate(p *proc) int {
	s.mu.Lock()
	busy := s.ci.dpkgBusy > 0
	s.mu.Unlock()
	if busy {
		pid := 1034
		p.errorf("E: Could not get lock /var/lib/apt/lists/lock. It is held by process %d (apt-get)\nN: Be aware that removing the lock file is not a solution and may break your system.\nE: Unable to lock directory /var/lib/apt/lists/\n", pid)
		return 100
	}
	nvidiaRepo := s.g.fs.exists("/etc/apt/sources.list.d/cuda-ubuntu2404-x86_64.list")
	n := 1
	for _, suite := range []string{"noble", "noble-updates", "noble-backports"} {
		verb := "Hit"
		s.mu.Lock()
		if !s.lists["ubuntu"] {
			verb = "Get"
		}
		s.mu.Unlock()
		if verb == "Get" {
			p.printf("Get:%d %s %s InRelease [126 kB]\n", n, ubuntuURL, suite)
		} else {
			p.printf("Hit:%d %s %s InRelease\n", n, ubuntuURL, suite)
		}
		n++
	}
	p.printf("Hit:%d http://security.ubuntu.com/ubuntu noble-security InRelease\n", n)
	n++
	failed := ""
	if ft := s.g.f.fault(FaultApt404, s.g.id.VMID, func(f *Fault) bool { return f.Pattern == "update" || f.Pattern == "" }); ft != nil {
		if nvidiaRepo {
			failed = nvidiaURL + "  InRelease"
		} else {
			failed = ubuntuURL + " noble-updates InRelease"
		}
	}
	if nvidiaRepo {
		if failed != "" && strings.HasPrefix(failed, nvidiaURL) {
			p.printf("Err:%d %s  InRelease\n  404  Not Found [IP: 152.199.39.144 443]\n", n, nvidiaURL)
		} else {
			p.printf("Get:%d %s  InRelease [1581 B]\nGet:%d %s  Packages [1043 kB]\n", n, nvidiaURL, n+1, nvidiaURL)
			n++
		}
		n++
	}
	if err := s.g.sleep(p.ctx, 4*time.Second); err != nil {
		return 100
	}
	p.printf("Fetched 1170 kB in 2s (585 kB/s)\nReading package lists...\n")
	if failed != "" {
		if strings.HasPrefix(failed, nvidiaURL) {
			p.errorf("E: Failed to fetch %s/InRelease  404  Not Found [IP: 152.199.39.144 443]\nE: The repository '%s  InRelease' is no longer signed.\n", nvidiaURL, nvidiaURL)
		} else {
			p.errorf("E: Failed to fetch %s/dists/noble-updates/InRelease  404  Not Found [IP: 185.125.190.83 80]\nE: Some index files failed to download. They have been ignored, or old ones used instead.\n", ubuntuURL)
		}
		s.mu.Lock()
		s.lists["ubuntu"] = true
		s.mu.Unlock()
		return 100
	}
	s.mu.Lock()
	s.lists["ubuntu"] = true
	if nvidiaRepo {
		s.lists["nvidia"] = true
	}
	s.mu.Unlock()
	p.printf("All packages are up to date.\n")
	return 0
}

// driverFamily names a package's NVIDIA driver family ("" when not a driver package).
func driverFamily(p *pkgDef) string {
	if p.repo == "nvidia" && p.role == "nvidia-repo-driver" {
		return "nvidia-repo"
	}
	if p.branch == "" {
		return ""
	}
	f := p.branch
	if p.server {
		f += "-server"
	}
	return f
}

// resolve computes the install set in dependency order.
func (s *system) resolve(names []string, o aptOpts) (order []*pkgDef, missing string) {
	seen := map[string]bool{}
	requested := map[string]bool{}
	for _, n := range names {
		requested[n] = true
	}
	var visit func(n string) string
	visit = func(n string) string {
		if seen[n] {
			return ""
		}
		seen[n] = true
		if s.isInstalled(n) && s.dpkgState(n) == "ii" {
			return ""
		}
		pd := s.available(n)
		if pd == nil {
			return n
		}
		deps := pd.deps
		if pd.role == "driver" {
			// the desktop metapackage needs kernel modules: prebuilt ones if present, else DKMS
			fl := pd.branch
			if pd.server {
				fl += "-server"
			}
			if pd.open {
				fl += "-open"
			}
			mods := "linux-modules-nvidia-" + fl + "-" + kernelRelease
			if !requested["linux-modules-nvidia-"+fl+"-generic"] && !requested[mods] && !s.isInstalled(mods) {
				deps = append(append([]string{}, deps...), "nvidia-dkms-"+fl)
			}
		}
		for _, d := range deps {
			if m := visit(d); m != "" {
				return m
			}
		}
		order = append(order, pd)
		return ""
	}
	for _, n := range names {
		if m := visit(n); m != "" {
			return nil, m
		}
	}
	return order, ""
}

func (s *system) aptInstall(p *proc, names []string, o aptOpts) int {
	var want []string
	for _, n := range names {
		n, _, _ = strings.Cut(n, "=")
		if strings.HasSuffix(n, ".deb") {
			b, err := p.readFile(n)
			name, ver, ok := parseDeb(b)
			if err != nil || !ok || !strings.Contains(n, "/") {
				p.errorf("E: Unsupported file %s given on commandline\n", n)
				return 100
			}
			p.printf("Note, selecting '%s' instead of '%s'\n", name, n)
			if !s.isInstalled(name) {
				p.printf("The following NEW packages will be installed:\n  %s\n0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.\nGet:1 %s %s all %s [4328 B]\nSelecting previously unselected package %s.\nPreparing to unpack %s ...\nUnpacking %s (%s) ...\nSetting up %s (%s) ...\n", name, n, name, ver, name, n, name, ver, name, ver)
				s.mu.Lock()
				s.installed[name] = ver
				s.mu.Unlock()
				if pd := archive[name]; pd != nil {
					s.postinst(p, pd)
				}
			}
			continue
		}
		if s.available(n) == nil && !s.isInstalled(n) {
			p.errorf("E: Unable to locate package %s\n", n)
			return 100
		}
		want = append(want, n)
	}
	order, missing := s.resolve(want, o)
	if missing != "" {
		p.printf("Some packages could not be installed. This may mean that you have\nrequested an impossible situation or if you are using the unstable\ndistribution that some required packages have not yet been created\nor been moved out of Incoming.\nThe following information may help to resolve the situation:\n\nThe following packages have unmet dependencies:\n %s : Depends: %s but it is not installable\n", want[0], missing)
		p.errorf("E: Unable to correct problems, you have held broken packages.\n")
		return 100
	}
	// conflicts between NVIDIA driver families (noble SRU 3.5 prevents co-installation)
	newFam := map[string]string{}
	for _, pd := range order {
		if f := driverFamily(pd); f != "" {
			newFam[f] = pd.name
		}
	}
	if len(newFam) > 0 {
		if ft := s.g.f.fault(FaultDriverConflict, s.g.id.VMID, nil); ft != nil {
			var first string
			for _, n := range newFam {
				first = n
				break
			}
			p.printf("Some packages could not be installed. This may mean that you have\nrequested an impossible situation or if you are using the unstable\ndistribution that some required packages have not yet been created\nor been moved out of Incoming.\nThe following information may help to resolve the situation:\n\nThe following packages have unmet dependencies:\n %s : Depends: libnvidia-gl-%s but it is not going to be installed\n", first, strings.TrimSuffix(strings.TrimPrefix(first, "nvidia-driver-"), "-open"))
			p.errorf("E: Unable to correct problems, you have held broken packages.\n")
			return 100
		}
		for fam, n := range newFam {
			for inst := range s.installedFamilies() {
				if inst != fam && (inst == "nvidia-repo" || fam == "nvidia-repo") {
					p.printf("Some packages could not be installed. This may mean that you have\nrequested an impossible situation or if you are using the unstable\ndistribution that some required packages have not yet been created\nor been moved out of Incoming.\nThe following information may help to resolve the situation:\n\nThe following packages have unmet dependencies:\n %s : Conflicts: nvidia-kernel-common-%s but it is installed\n", n, strings.SplitN(inst+"-", "-", 2)[0])
					p.errorf("E: Error, pkgProblemResolver::Resolve generated breaks, this may be caused by held packages.\n")
					return 100
				}
			}
		}
	}
	// another Ubuntu driver branch/flavour is replaced (Conflicts/Replaces between the families)
	var replaced []string
	for fam := range newFam {
		if fam == "nvidia-repo" {
			continue
		}
		s.mu.Lock()
		for n := range s.installed {
			if pd := archive[n]; pd != nil && driverFamily(pd) != "" && driverFamily(pd) != fam && driverFamily(pd) != "nvidia-repo" {
				replaced = append(replaced, n)
			}
		}
		s.mu.Unlock()
	}
	sort.Strings(replaced)
	var newPkgs []*pkgDef
	for _, pd := range order {
		if !s.isInstalled(pd.name) {
			newPkgs = append(newPkgs, pd)
		}
	}
	for _, n := range want {
		if v, ok := s.pkgVersion(n); ok && s.dpkgState(n) == "ii" {
			p.printf("%s is already the newest version (%s).\n", n, v)
		}
	}
	// Packages left half-configured by an earlier failed postinst are configured again by every
	// install run, requested or not ("N not fully installed or removed."), as apt does.
	pending := s.halfConfiguredPackages()
	if len(newPkgs) == 0 && len(pending) == 0 {
		p.printf("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")
		return 0
	}
	extra := false
	reqSet := map[string]bool{}
	for _, n := range want {
		reqSet[n] = true
	}
	var names2 []string
	var extras []string
	totalKB := 0
	for _, pd := range newPkgs {
		names2 = append(names2, pd.name)
		if !reqSet[pd.name] {
			extra = true
			extras = append(extras, pd.name)
		}
		totalKB += pd.sizeKB
	}
	if len(extras) > 0 {
		p.printf("The following additional packages will be installed:\n  %s\n", strings.Join(extras, " "))
	}
	if len(replaced) > 0 {
		p.printf("The following packages will be REMOVED:\n  %s\n", strings.Join(replaced, " "))
		extra = true
	}
	if len(names2) > 0 {
		p.printf("The following NEW packages will be installed:\n  %s\n", strings.Join(names2, " "))
	}
	p.printf("0 upgraded, %d newly installed, %d to remove and 0 not upgraded.\n", len(newPkgs), len(replaced))
	if len(pending) > 0 {
		p.printf("%d not fully installed or removed.\n", len(pending))
	}
	if len(newPkgs) > 0 {
		p.printf("Need to get %s of archives.\n", humanKB(totalKB/3))
	}
	p.printf("After this operation, %s of additional disk space will be used.\n", humanKB(totalKB))
	if extra && !o.yes && !o.dryRun {
		p.printf("Do you want to continue? [Y/n] ")
		b := make([]byte, 16)
		n, _ := p.stdin.Read(b)
		ans := strings.TrimSpace(string(b[:n]))
		if n == 0 || (ans != "" && !strings.EqualFold(ans, "y")) {
			p.printf("Abort.\n")
			return 1
		}
	}
	if o.dryRun {
		for _, pd := range newPkgs {
			p.printf("Inst %s (%s Ubuntu:24.04/%s [amd64])\n", pd.name, pd.version, pd.suite)
		}
		return 0
	}
	for i, pd := range newPkgs {
		if ft := s.g.f.fault(FaultApt404, s.g.id.VMID, func(f *Fault) bool {
			if f.Pattern == "update" {
				return false
			}
			ok, _ := path.Match(f.Pattern, pd.name)
			return f.Pattern == "" || ok
		}); ft != nil {
			p.printf("Err:%d %s %s\n  404  Not Found [IP: 185.125.190.83 80]\n", i+1, pd.url(), pd.name)
			p.errorf("E: Failed to fetch %s  404  Not Found [IP: 185.125.190.83 80]\nE: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?\n", pd.debURL())
			return 100
		}
		p.printf("Get:%d %s %s amd64 %s [%s]\n", i+1, pd.url(), pd.name, pd.version, humanKB(pd.sizeKB/3))
	}
	if len(newPkgs) > 0 {
		p.printf("Fetched %s in 3s (%s/s)\n", humanKB(totalKB/3), humanKB(totalKB/9))
	}
	s.mu.Lock()
	s.ci.dpkgBusy++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.ci.dpkgBusy--
		s.mu.Unlock()
	}()
	for _, n := range replaced {
		v, _ := s.pkgVersion(n)
		p.printf("Removing %s (%s) ...\n", n, v)
		s.removePackage(n, false)
	}
	for _, pd := range newPkgs {
		p.printf("Selecting previously unselected package %s.\nPreparing to unpack .../%s_%s_amd64.deb ...\nUnpacking %s (%s) ...\n", pd.name, pd.name, pd.version, pd.name, pd.version)
	}
	failed := []string{}
	for _, pd := range newPkgs {
		if err := s.g.sleep(p.ctx, time.Duration(pd.seconds)*time.Second); err != nil {
			return 100
		}
		s.mu.Lock()
		s.installed[pd.name] = pd.version
		delete(s.halfConfigured, pd.name)
		s.mu.Unlock()
		s.installFiles(pd)
		p.printf("Setting up %s (%s) ...\n", pd.name, pd.version)
		if code := s.postinst(p, pd); code != 0 {
			s.mu.Lock()
			s.halfConfigured[pd.name] = true
			s.mu.Unlock()
			p.errorf("dpkg: error processing package %s (--configure):\n installed %s package post-installation script subprocess returned error exit status %d\n", pd.name, pd.name, code)
			failed = append(failed, pd.name)
		}
	}
	for _, n := range pending {
		if s.dpkgState(n) == "iF" && !contains(failed, n) {
			pd := archive[n]
			if pd != nil {
				p.printf("Setting up %s (%s) ...\n", pd.name, pd.version)
				if code := s.postinst(p, pd); code != 0 {
					p.errorf("dpkg: error processing package %s (--configure):\n installed %s package post-installation script subprocess returned error exit status %d\n", pd.name, pd.name, code)
					failed = append(failed, pd.name)
				} else {
					s.mu.Lock()
					delete(s.halfConfigured, pd.name)
					s.mu.Unlock()
				}
			}
		}
	}
	if len(failed) > 0 {
		p.errorf("Errors were encountered while processing:\n %s\nE: Sub-process /usr/bin/dpkg returned an error code (1)\n", strings.Join(failed, "\n "))
		return 100
	}
	p.printf("Processing triggers for man-db (2.12.0-4build2) ...\nProcessing triggers for libc-bin (2.39-0ubuntu8.6) ...\n")
	return 0
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (s *system) installedFamilies() map[string]bool {
	out := map[string]bool{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.installed {
		if pd := archive[n]; pd != nil {
			if f := driverFamily(pd); f != "" {
				out[f] = true
			}
		}
	}
	return out
}

func (pd *pkgDef) url() string {
	if pd.repo == "nvidia" {
		return nvidiaURL
	}
	suite, comp, _ := strings.Cut(pd.suite, "/")
	return ubuntuURL + " " + suite + "/" + comp
}

func (pd *pkgDef) debURL() string {
	if pd.repo == "nvidia" {
		return nvidiaURL + "/" + pd.name + "_" + pd.version + "_amd64.deb"
	}
	src := pd.name
	if pd.branch != "" {
		src = "nvidia-graphics-drivers-" + pd.branch
		if pd.server {
			src += "-server"
		}
	}
	_, comp, _ := strings.Cut(pd.suite, "/")
	return fmt.Sprintf("%s/pool/%s/%s/%s/%s_%s_amd64.deb", ubuntuURL, comp, src[:1], src, pd.name, strings.ReplaceAll(pd.version, ":", "%3a"))
}

func humanKB(kb int) string {
	switch {
	case kb >= 1024*1024:
		return fmt.Sprintf("%.1f GB", float64(kb)/1024/1024)
	case kb >= 1024:
		return fmt.Sprintf("%.1f MB", float64(kb)/1024)
	default:
		return fmt.Sprintf("%d kB", kb)
	}
}

// halfConfiguredPackages lists the installed packages dpkg still has to configure, sorted.
func (s *system) halfConfiguredPackages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.halfConfigured {
		if _, ok := s.installed[n]; ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (s *system) dpkgState(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.installed[name]; !ok {
		if s.removed[name] {
			return "rc"
		}
		return ""
	}
	if s.halfConfigured[name] {
		return "iF"
	}
	return "ii"
}

func (s *system) aptRemove(p *proc, names []string, o aptOpts, purge bool) int {
	var rm []string
	for _, n := range names {
		if strings.ContainsAny(n, "*?") {
			rm = append(rm, s.installedMatching(n)...)
			continue
		}
		if !s.isInstalled(n) {
			if archive[n] == nil && basePackages[n] == "" {
				p.errorf("E: Unable to locate package %s\n", n)
				return 100
			}
			p.printf("Package '%s' is not installed, so not removed\n", n)
			continue
		}
		rm = append(rm, n)
	}
	if len(rm) == 0 {
		p.printf("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")
		return 0
	}
	p.printf("The following packages will be REMOVED:\n  %s\n0 upgraded, 0 newly installed, %d to remove and 0 not upgraded.\n", strings.Join(rm, " "), len(rm))
	for _, n := range rm {
		v, _ := s.pkgVersion(n)
		p.printf("Removing %s (%s) ...\n", n, v)
		s.removePackage(n, purge)
	}
	return 0
}

func (s *system) removePackage(n string, purge bool) {
	if pd := archive[n]; pd != nil {
		for fp := range pd.files {
			s.g.fs.remove(fp)
		}
		if pd.role == "cuda" {
			s.g.fs.remove("/usr/local/cuda")
		}
	}
	s.mu.Lock()
	delete(s.installed, n)
	delete(s.halfConfigured, n)
	delete(s.dkmsBuilt, n)
	if !purge {
		s.removed[n] = true
	} else {
		delete(s.removed, n)
	}
	s.mu.Unlock()
}

func progAptCache(p *proc) int {
	s := p.g.sys
	if len(p.args) < 2 {
		return 1
	}
	switch p.args[1] {
	case "policy":
		for _, n := range p.args[2:] {
			pd := s.available(n)
			inst, ok := s.pkgVersion(n)
			if pd == nil && !ok {
				continue
			}
			if !ok {
				inst = "(none)"
			}
			cand := "(none)"
			if pd != nil {
				cand = pd.version
			}
			p.printf("%s:\n  Installed: %s\n  Candidate: %s\n  Version table:\n", n, inst, cand)
			if pd != nil {
				mark := "   "
				if ok && inst == pd.version {
					mark = "***"
				}
				p.printf(" %s %s 500\n        500 %s amd64 Packages\n", mark, pd.version, pd.url())
				if ok && inst == pd.version {
					p.printf("        100 /var/lib/dpkg/status\n")
				}
			}
		}
		return 0
	case "show":
		code := 0
		for _, n := range p.args[2:] {
			pd := s.available(n)
			if pd == nil {
				p.errorf("N: Unable to locate package %s\nE: No packages found\n", n)
				code = 100
				continue
			}
			p.printf("Package: %s\nVersion: %s\nArchitecture: amd64\nDepends: %s\n\n", pd.name, pd.version, strings.Join(pd.deps, ", "))
		}
		return code
	case "search":
		if len(p.args) < 3 {
			return 1
		}
		var names []string
		for n := range archive {
			if s.available(n) != nil && strings.Contains(n, p.args[2]) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			p.printf("%s - %s\n", n, n)
		}
		return 0
	}
	return 0
}

func progDpkg(p *proc) int {
	s := p.g.sys
	if len(p.args) < 2 {
		p.errorf("dpkg: error: need an action option\n")
		return 2
	}
	switch p.args[1] {
	case "-l", "--list", "-s", "--status", "-L", "--listfiles", "-S", "--search":
		q := *p
		q.args = append([]string{"dpkg-query"}, p.args[1:]...)
		q.name = "dpkg-query"
		return progDpkgQuery(&q)
	case "--print-architecture":
		p.printf("amd64\n")
		return 0
	case "--configure":
		if !p.root() {
			p.errorf("dpkg: error: requested operation requires superuser privilege\n")
			return 2
		}
		// re-run the maintainer scripts of half-configured packages
		s.mu.Lock()
		var half []string
		for n := range s.halfConfigured {
			half = append(half, n)
		}
		s.mu.Unlock()
		sort.Strings(half)
		var failed []string
		for _, n := range half {
			pd := archive[n]
			if pd == nil {
				continue
			}
			p.printf("Setting up %s (%s) ...\n", pd.name, pd.version)
			if code := s.postinst(p, pd); code != 0 {
				p.errorf("dpkg: error processing package %s (--configure):\n installed %s package post-installation script subprocess returned error exit status %d\n", n, n, code)
				failed = append(failed, n)
				continue
			}
			s.mu.Lock()
			delete(s.halfConfigured, n)
			s.mu.Unlock()
		}
		if len(failed) > 0 {
			p.errorf("Errors were encountered while processing:\n %s\n", strings.Join(failed, "\n "))
			return 1
		}
		return 0
	case "-i", "--install":
		if !p.root() {
			p.errorf("dpkg: error: requested operation requires superuser privilege\n")
			return 2
		}
		if !s.dpkgLock(p, aptOpts{}) {
			return 2
		}
		code := 0
		for _, f := range p.args[2:] {
			b, err := p.readFile(f)
			if err != nil {
				p.errorf("dpkg: error: cannot access archive '%s': No such file or directory\n", f)
				code = 1
				continue
			}
			name, ver, ok := parseDeb(b)
			if !ok {
				p.errorf("dpkg-deb: error: '%s' is not a Debian format archive\ndpkg: error processing archive %s (--install):\n dpkg-deb --control subprocess returned error exit status 2\nErrors were encountered while processing:\n %s\n", f, f, f)
				code = 1
				continue
			}
			p.printf("Selecting previously unselected package %s.\n(Reading database ... 74221 files and directories currently installed.)\nPreparing to unpack %s ...\nUnpacking %s (%s) ...\nSetting up %s (%s) ...\n", name, f, name, ver, name, ver)
			s.mu.Lock()
			s.installed[name] = ver
			s.mu.Unlock()
			if pd := archive[name]; pd != nil {
				s.postinst(p, pd)
			}
		}
		return code
	case "-r", "--remove", "-P", "--purge":
		q := *p
		q.args = append([]string{"apt-get", "remove", "-y"}, p.args[2:]...)
		return progAptGet(&q)
	}
	p.errorf("dpkg: error: unknown option %s\n", p.args[1])
	return 2
}

// parseDeb recognises the simulated .deb files the fake internet serves.
func parseDeb(b []byte) (name, ver string, ok bool) {
	const magic = "!<arch>\ndebian-binary   aimachine-sim-deb "
	if !strings.HasPrefix(string(b), magic) {
		return "", "", false
	}
	f := strings.Fields(strings.TrimPrefix(string(b), magic))
	if len(f) < 2 {
		return "", "", false
	}
	return f[0], f[1], true
}

func debFile(name, ver string) []byte {
	return []byte("!<arch>\ndebian-binary   aimachine-sim-deb " + name + " " + ver + "\n")
}

func progDpkgQuery(p *proc) int {
	s := p.g.sys
	args := p.args[1:]
	format := "${binary:Package}\t${Version}\n"
	mode := ""
	var pats []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-W" || a == "--show":
			mode = "W"
		case a == "-l" || a == "--list":
			mode = "l"
		case a == "-s" || a == "--status":
			mode = "s"
		case a == "-L" || a == "--listfiles":
			mode = "L"
		case a == "-f" && i+1 < len(args):
			format = args[i+1]
			i++
		case strings.HasPrefix(a, "-f"):
			format = strings.TrimPrefix(a[2:], "=") // -f='${Status}' as guest.md writes it

		case strings.HasPrefix(a, "--showformat="):
			format = strings.TrimPrefix(a, "--showformat=")
		case strings.HasPrefix(a, "-Wf"):
			mode, format = "W", a[3:]
		default:
			pats = append(pats, a)
		}
	}
	known := func() []string {
		s.mu.Lock()
		defer s.mu.Unlock()
		var out []string
		for n := range s.installed {
			out = append(out, n)
		}
		for n := range s.removed {
			out = append(out, n)
		}
		sort.Strings(out)
		return out
	}
	match := func(pat string) []string {
		var out []string
		for _, n := range known() {
			if ok, _ := path.Match(pat, n); ok {
				out = append(out, n)
			}
		}
		return out
	}
	status := func(n string) string {
		switch s.dpkgState(n) {
		case "ii":
			return "install ok installed"
		case "iF":
			return "install ok half-configured"
		case "rc":
			return "deinstall ok config-files"
		}
		return "unknown ok not-installed"
	}
	code := 0
	switch mode {
	case "s":
		for _, n := range pats {
			v, ok := s.pkgVersion(n)
			if !ok {
				p.errorf("dpkg-query: package '%s' is not installed and no information is available\nUse dpkg --info (= dpkg-deb --info) to examine archive files.\n", n)
				code = 1
				continue
			}
			p.printf("Package: %s\nStatus: %s\nPriority: optional\nArchitecture: amd64\nVersion: %s\n\n", n, status(n), v)
		}
		return code
	case "L":
		for _, n := range pats {
			b := p.g.fs.readString("/var/lib/dpkg/info/" + n + ".list")
			if b == "" {
				p.errorf("dpkg-query: package '%s' is not installed\n", n)
				code = 1
				continue
			}
			p.printf("%s", b)
		}
		return code
	case "l":
		if len(pats) == 0 {
			pats = []string{"*"}
		}
		p.printf("Desired=Unknown/Install/Remove/Purge/Hold\n| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend\n|/ Err?=(none)/Reinst-required (Status,Err: uppercase=bad)\n||/ Name                Version             Architecture Description\n+++-===================-===================-============-=================================\n")
		for _, pat := range pats {
			ms := match(pat)
			if len(ms) == 0 {
				p.errorf("dpkg-query: no packages found matching %s\n", pat)
				code = 1
			}
			for _, n := range ms {
				v, _ := s.pkgVersion(n)
				if v == "" {
					v = "<none>"
				}
				p.printf("%-3s %-19s %-19s %-12s %s\n", s.dpkgState(n), n, v, "amd64", n)
			}
		}
		return code
	}
	if len(pats) == 0 {
		pats = []string{"*"}
	}
	format = strings.NewReplacer(`\n`, "\n", `\t`, "\t").Replace(format)
	for _, pat := range pats {
		ms := match(pat)
		if len(ms) == 0 {
			p.errorf("dpkg-query: no packages found matching %s\n", pat)
			code = 1
			continue
		}
		for _, n := range ms {
			v, _ := s.pkgVersion(n)
			st := status(n)
			out := format
			for _, kv := range [][2]string{{"${binary:Package}", n}, {"${Package}", n}, {"${Version}", v}, {"${Status}", st},
				{"${db:Status-Abbrev}", s.dpkgState(n) + " "}, {"${Architecture}", "amd64"}, {"${db:Status-Status}", strings.Fields(st)[2]}} {
				out = strings.ReplaceAll(out, kv[0], kv[1])
			}
			p.printf("%s", out)
		}
	}
	return code
}

var _ = io.EOF
