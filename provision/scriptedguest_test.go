package provision

// scriptedGuest is a unit-test Runner: a small stateful model of an Ubuntu 24.04 guest that
// answers the guest phase's commands by recognising them (the batched facts script section by
// section, apt, ubuntu-drivers, modprobe, systemctl, pip, curl probes). It is not a shell: it
// is shaped to the tool's own command strings, so it can only test what the engine does with
// the answers (idempotency, session counts, restarts, reconnects, which task fails with which
// hint), never whether the commands are right. Guest behaviour with real exit codes and state
// machines (dpkg's half-configured packages after a failed DKMS build and the re-run's
// `dpkg --configure -a`, reboots, ubuntu-drivers' exit 0) is proved against fakes/guest in
// provision/internal/guestsimtest; do not grow this model to imitate it.

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/aimachine/aimachine/provision/guest"
)

type sgService struct {
	enabled, active bool
	pid, starts     int
	since           string
}

type scriptedGuest struct {
	mu       sync.Mutex
	pkgs     map[string]bool
	files    map[string]string
	modes    map[string]fs.FileMode
	loaded   map[string]bool
	users    map[string]bool
	svcs     map[string]*sgService
	bootID   int
	vllmVer  string
	ollama   bool
	pidSeq   int
	stats    guest.Stats
	commands []string
	// faults
	nouveau    bool // nouveau holds the GPU until the next boot
	noPrebuilt bool // no signed linux-modules-nvidia-*-open for the running kernel: DKMS only
	secureBoot bool
	noAVX      bool
	aptLock    int // apt runs that still find the lock held
	vllmOOM    bool
	dropOn     string // drop the connection on the next command containing this
	connected  bool
	// nouveauStays: the blacklist does not reach the initramfs, nouveau holds the GPU after a reboot too.
	nouveauStays bool
	// reconnectErr: the VM does not answer SSH again after a drop.
	reconnectErr error
}

func newScriptedGuest() *scriptedGuest {
	return &scriptedGuest{
		pkgs:   map[string]bool{"pciutils": true, "curl": true, "ca-certificates": true, "ubuntu-drivers-common": true},
		files:  map[string]string{},
		modes:  map[string]fs.FileMode{},
		loaded: map[string]bool{},
		users:  map[string]bool{},
		svcs:   map[string]*sgService{},
		bootID: 1, pidSeq: 1000, connected: true,
		stats: guest.Stats{Connections: 1},
	}
}

func (g *scriptedGuest) Stats() guest.Stats { g.mu.Lock(); defer g.mu.Unlock(); return g.stats }
func (g *scriptedGuest) Close() error       { return nil }
func (g *scriptedGuest) Reconnect(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reconnectErr != nil {
		return g.reconnectErr
	}
	g.connected = true
	g.stats.Connections++
	g.stats.Reconnects++
	return nil
}

func (g *scriptedGuest) Put(ctx context.Context, path string, mode fs.FileMode, data []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats.Sessions++
	g.commands = append(g.commands, "put "+path)
	g.files[path] = string(data)
	g.modes[path] = mode
	return nil
}

var factNameRE = regexp.MustCompile(`::aimachine-fact ([a-z_]+)`)

func (g *scriptedGuest) Run(ctx context.Context, cmd string) (guest.Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.connected {
		return guest.Result{Cmd: cmd, ExitCode: -1}, fmt.Errorf("%w: not connected", guest.ErrConnectionLost)
	}
	g.stats.Sessions++
	g.commands = append(g.commands, cmd)
	if g.dropOn != "" && strings.Contains(cmd, g.dropOn) {
		g.dropOn = ""
		g.connected = false
		return guest.Result{Cmd: cmd, ExitCode: -1}, fmt.Errorf("%w: dropped", guest.ErrConnectionLost)
	}
	out, errOut, code := g.exec(cmd)
	res := guest.Result{Cmd: cmd, Stdout: out, Stderr: errOut, ExitCode: code}
	if code == -1 {
		g.connected = false
		return res, fmt.Errorf("%w: reboot", guest.ErrConnectionLost)
	}
	if code != 0 {
		return res, &guest.ExitError{Cmd: cmd, Code: code, StderrTail: guest.Tail(errOut, 10)}
	}
	return res, nil
}

func (g *scriptedGuest) exec(cmd string) (string, string, int) {
	if names := factNameRE.FindAllStringSubmatch(cmd, -1); names != nil {
		var b strings.Builder
		for _, n := range names {
			out, rc := g.fact(n[1])
			fmt.Fprintf(&b, "::aimachine-fact %s\n%s::aimachine-end %s rc=%d\n", n[1], out, n[1], rc)
		}
		return b.String(), "", 0
	}
	switch {
	case strings.Contains(cmd, "apt-get") && strings.Contains(cmd, " update"):
		return g.apt(func() (string, string, int) { return "Reading package lists... Done\n", "", 0 })
	case strings.Contains(cmd, "apt-get") && strings.Contains(cmd, " install "):
		return g.apt(func() (string, string, int) {
			args := strings.Fields(cmd[strings.Index(cmd, " install ")+9:])
			for _, a := range args {
				a = strings.Trim(a, "'")
				if !strings.HasPrefix(a, "-") {
					g.pkgs[a] = true
				}
			}
			return "Setting up ...\n", "", 0
		})
	case strings.Contains(cmd, "ubuntu-drivers list --gpgpu --include-dkms") && g.noPrebuilt:
		return "nvidia-driver-610, (kernel modules provided by linux-modules-nvidia-610-generic)\nnvidia-driver-595-open, (kernel modules provided by nvidia-dkms-595-open)\n", "", 0
	case strings.Contains(cmd, "ubuntu-drivers list --gpgpu") && g.noPrebuilt:
		return "nvidia-driver-610, (kernel modules provided by linux-modules-nvidia-610-generic)\n", "", 0
	case strings.Contains(cmd, "ubuntu-drivers list --gpgpu"):
		return "nvidia-driver-580-server-open, (kernel modules provided by linux-modules-nvidia-580-server-open-generic)\nnvidia-driver-595-open, (kernel modules provided by linux-modules-nvidia-595-open-generic)\nnvidia-driver-610, (kernel modules provided by linux-modules-nvidia-610-generic)\n", "ERROR:root:aplay command not found\n", 0
	case strings.Contains(cmd, "ubuntu-drivers install --gpgpu"):
		return g.apt(func() (string, string, int) {
			flav := strings.Fields(cmd[strings.Index(cmd, "nvidia:")+7:])[0]
			flav = strings.Trim(flav, "'")
			if g.noPrebuilt && !strings.Contains(cmd, "--include-dkms") {
				return "nvidia-headless-no-dkms-" + flav + "\nnvidia-dkms-" + flav + "\nAll the available drivers are already installed.\n", "", 0
			}
			if g.noPrebuilt {
				g.pkgs["nvidia-headless-no-dkms-"+flav] = true
				g.pkgs["nvidia-dkms-"+flav] = true
				return "nvidia-headless-no-dkms-" + flav + "\nnvidia-dkms-" + flav + "\nBuilding initial module for 6.8.0-36-generic\nDone.\n", "", 0
			}
			g.pkgs["nvidia-headless-no-dkms-"+flav] = true
			g.pkgs["linux-modules-nvidia-"+flav+"-generic"] = true
			return "nvidia-headless-no-dkms-" + flav + "\nlinux-modules-nvidia-" + flav + "-generic\n", "", 0
		})
	case strings.Contains(cmd, "dpkg-query -W"):
		// The driver task's confirmation query; the rest of that script (a make.log tail) has
		// nothing to say here: this model has no DKMS failures (see the type's comment).
		var b strings.Builder
		for _, f := range strings.Fields(cmd) {
			if f = strings.Trim(f, "'"); strings.HasPrefix(f, "nvidia-") || strings.HasPrefix(f, "linux-modules-") {
				if g.pkgs[f] {
					fmt.Fprintf(&b, "%s\tinstall ok installed\t595.84\n", f)
				} else {
					fmt.Fprintf(&b, "dpkg-query: no packages found matching %s\n", f)
				}
			}
		}
		return b.String(), "", 0
	case strings.Contains(cmd, "modprobe nvidia && modprobe nvidia_uvm"):
		if g.nouveau {
			return "", "modprobe: ERROR: could not insert 'nvidia': No such device\n", 1
		}
		if !g.pkgs["linux-modules-nvidia-595-open-generic"] && !g.pkgs["nvidia-dkms-595-open"] {
			return "", "modprobe: FATAL: Module nvidia not found in directory /lib/modules/6.8.0-36-generic\n", 1
		}
		g.loaded["nvidia"], g.loaded["nvidia_uvm"] = true, true
		return "", "", 0
	case strings.Contains(cmd, "boot_id"):
		return fmt.Sprintf("boot-%d\n", g.bootID), "", 0
	case strings.Contains(cmd, "systemctl reboot"):
		g.bootID++
		g.loaded = map[string]bool{}
		g.nouveau = g.nouveauStays // the driver packages blacklist it
		return "", "", -1
	case strings.Contains(cmd, "cuda-keyring"):
		g.pkgs["cuda-keyring"] = true
		return "", "", 0
	case strings.Contains(cmd, "useradd"):
		g.users["vllm"] = true
		return "", "", 0
	case strings.Contains(cmd, "/bin/hf download"):
		m := regexp.MustCompile(`--cache-dir (\S+)`).FindStringSubmatch(cmd)
		return m[1] + "/models--Qwen--Qwen2.5-3B-Instruct/snapshots/a09a3545\n", "", 0
	case strings.Contains(cmd, "pip install"):
		m := regexp.MustCompile(`vllm==([0-9.]+)`).FindStringSubmatch(cmd)
		g.vllmVer = m[1]
		return "Successfully installed vllm-" + m[1] + "\n", "", 0
	case strings.Contains(cmd, "daemon-reload") && !strings.Contains(cmd, "vllm-loopback"):
		return "", "", 0
	case strings.Contains(cmd, "vllm-loopback.socket") && strings.Contains(cmd, "enable"):
		g.svc("vllm-loopback.socket").enabled = true
		g.start("vllm-loopback.socket")
		return "", "", 0
	case strings.Contains(cmd, "systemctl enable ") && strings.Contains(cmd, "systemctl start ") || strings.Contains(cmd, "systemctl restart "):
		name := strings.TrimSuffix(strings.Fields(cmd[strings.Index(cmd, "systemctl enable ")+17:])[0], ".service")
		if strings.Contains(cmd, "restart ollama.service") && !strings.Contains(cmd, "enable") {
			name = "ollama"
		}
		g.svc(name).enabled = true
		g.start(name)
		return "", "", 0
	case strings.Contains(cmd, "ollama.com/install.sh"):
		g.ollama = true
		g.users["ollama"] = true
		g.svc("ollama").enabled = true
		g.start("ollama")
		return "", ">>> NVIDIA GPU installed.\n", 0
	case strings.Contains(cmd, "install -d -o ollama"):
		g.files["dir:/opt/ollama/models"] = "ollama"
		return "", "", 0
	case strings.Contains(cmd, "::models"):
		out, _ := g.fact("vllm_ready")
		return out, "", 0
	case strings.Contains(cmd, "::api"):
		out, _ := g.fact("ollama_ready")
		return out, "", 0
	case strings.Contains(cmd, "journalctl -u vllm"):
		return "ValueError: Free memory on device cuda:0 (3.25/15.48 GiB) on startup is less than desired GPU memory utilization (0.9, 13.93 GiB).\nRuntimeError: Engine core initialization failed. See root cause above.\n", "", 0
	case strings.Contains(cmd, "journalctl"), strings.Contains(cmd, "dmesg"):
		return "", "", 0
	}
	return "", "sh: unknown command in scriptedGuest: " + cmd + "\n", 127
}

func (g *scriptedGuest) apt(f func() (string, string, int)) (string, string, int) {
	if g.aptLock > 0 {
		g.aptLock--
		return "", "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (unattended-upgr)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n", 100
	}
	return f()
}

func (g *scriptedGuest) svc(n string) *sgService {
	if g.svcs[n] == nil {
		g.svcs[n] = &sgService{}
	}
	return g.svcs[n]
}

func (g *scriptedGuest) start(n string) {
	s := g.svc(n)
	g.pidSeq++
	s.active, s.pid, s.since = true, g.pidSeq, fmt.Sprintf("Mon 2026-11-23 10:%02d:00 UTC", g.pidSeq%60)
	s.starts++
	if n == "vllm" && g.vllmOOM {
		s.active = false
	}
}

func (g *scriptedGuest) show(n string) string {
	s := g.svc(n)
	st, fst := "inactive", "disabled"
	if s.active {
		st = "active"
	} else if n == "vllm" && g.vllmOOM && s.starts > 0 {
		st = "activating"
	}
	if s.enabled {
		fst = "enabled"
	}
	restarts := 0
	if n == "vllm" && g.vllmOOM && s.starts > 0 {
		restarts = s.starts * 3
		s.starts++
	}
	return fmt.Sprintf("LoadState=loaded\nActiveState=%s\nSubState=running\nUnitFileState=%s\nMainPID=%d\nActiveEnterTimestamp=%s\nNRestarts=%d\n", st, fst, s.pid, s.since, restarts)
}

func (g *scriptedGuest) file(p string) (string, int) {
	c, ok := g.files[p]
	if !ok {
		return "cat: " + p + ": No such file or directory\n", 1
	}
	return c, 0
}

func (g *scriptedGuest) fact(name string) (string, int) {
	smiOK := g.loaded["nvidia"] && g.pkgs["nvidia-utils-595"]
	switch name {
	case "os":
		return "ubuntu 24.04\n", 0
	case "boot_id":
		return fmt.Sprintf("boot-%d\n", g.bootID), 0
	case "kernel":
		return "6.8.0-36-generic\n", 0
	case "cloud_init":
		return "finished\n", 0
	case "dpkg":
		var ps []string
		for p := range g.pkgs {
			ps = append(ps, p)
		}
		sort.Strings(ps)
		var b strings.Builder
		for _, p := range ps {
			fmt.Fprintf(&b, "%s\tinstall ok installed\t1.0\n", p)
		}
		return b.String(), 0
	case "cpu_flags":
		if g.noAVX {
			return "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 syscall nx lm\n", 0
		}
		return "flags\t\t: fpu sse sse2 avx avx2 fma\n", 0
	case "lspci":
		return "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation Device [10de:2d04] (rev a1)\n01:00.1 Audio device [0403]: NVIDIA Corporation Device [10de:22eb] (rev a1)\n", 0
	case "secure_boot":
		if g.secureBoot {
			return "SecureBoot enabled\n", 0
		}
		return "SecureBoot disabled\n", 0
	case "lsmod":
		var b strings.Builder
		if g.nouveau {
			b.WriteString("nouveau  16384  0\n")
		}
		for _, m := range []string{"nvidia_uvm", "nvidia"} {
			if g.loaded[m] {
				fmt.Fprintf(&b, "%s  1234  0\n", m)
			}
		}
		if b.Len() == 0 {
			return "", 1
		}
		return b.String(), 0
	case "nv_version":
		if !g.loaded["nvidia"] {
			return "cat: /proc/driver/nvidia/version: No such file or directory\n", 1
		}
		return "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  595.84  Release Build  (dvs-builder@U22)  Wed Jul 29 00:52:31 UTC 2026\n", 0
	case "smi":
		if !g.pkgs["nvidia-utils-595"] {
			return "sh: 1: nvidia-smi: not found\n", 127
		}
		if !g.loaded["nvidia"] {
			return "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n", 9
		}
		return "NVIDIA GeForce RTX 5060 Ti, 16311, 595.84, 00000000:01:00.0, 0x2D0410DE\n", 0
	case "smi_header", "smi_full":
		if !smiOK {
			return "", 9
		}
		hdr := "Mon Nov 23 09:41:07 2026\n+----+\n| NVIDIA-SMI 595.84                 Driver Version: 595.84         CUDA Version: 13.2     |\n"
		if g.svc("vllm").active {
			hdr += fmt.Sprintf("|    0   N/A  N/A            %d      C   /opt/vllm/venv/bin/python3                   9800MiB |\n", g.svc("vllm").pid)
		}
		return hdr, 0
	case "modules_load":
		return g.file("/etc/modules-load.d/nvidia-uvm.conf")
	case "nvcc":
		if !g.pkgs["cuda-toolkit-12-8"] {
			return "sh: 1: /usr/local/cuda/bin/nvcc: not found\n", 127
		}
		return "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 12.8, V12.8.93\n", 0
	case "cuda_repo":
		return "", 0
	case "vllm_user":
		if g.users["vllm"] {
			return "vllm:x:998:998::/opt/vllm:/usr/sbin/nologin\n", 0
		}
		return "", 2
	case "vllm_dirs":
		if g.users["vllm"] {
			return "vllm /opt/vllm\nvllm /opt/vllm/hf\n", 0
		}
		return "stat: cannot statx '/opt/vllm': No such file or directory\n", 1
	case "vllm_pip":
		if g.vllmVer == "" {
			return "sh: 1: /opt/vllm/venv/bin/pip: not found\n", 127
		}
		return "Name: vllm\nVersion: " + g.vllmVer + "\n", 0
	case "vllm_applied":
		return g.file("/var/lib/aimachine/vllm.applied")
	case "ollama_applied":
		return g.file("/var/lib/aimachine/ollama.applied")
	case "vllm_unit":
		return g.file("/etc/systemd/system/vllm.service")
	case "vllm_env":
		c, rc := g.file("/etc/vllm/vllm.env")
		if rc == 0 {
			c += fmt.Sprintf("%o root\n", g.modes["/etc/vllm/vllm.env"].Perm())
		}
		h, hrc := g.file("/etc/vllm/auth.header")
		if rc == 0 && hrc == 0 {
			c += "::header\n" + h + fmt.Sprintf("%o root\n", g.modes["/etc/vllm/auth.header"].Perm())
		}
		return c, rc + hrc
	case "vllm_lo_socket":
		return g.file("/etc/systemd/system/vllm-loopback.socket")
	case "vllm_lo_service":
		return g.file("/etc/systemd/system/vllm-loopback.service")
	case "vllm_show":
		return g.show("vllm"), 0
	case "vllm_lo_show":
		return g.show("vllm-loopback.socket"), 0
	case "vllm_ready":
		code, lo := "000", "000"
		if g.svc("vllm").active {
			code = "200"
			if g.svc("vllm-loopback.socket").active {
				lo = "200"
			}
		}
		body := ""
		if code == "200" {
			body = `{"object":"list","data":[{"id":"Qwen/Qwen2.5-3B-Instruct","object":"model"}]}`
		}
		return fmt.Sprintf("health 192.168.0.140:8000 %s\nhealth 127.0.0.1:8000 %s\n::models\n%s\n::show\n%s", code, lo, body, g.show("vllm")), 0
	case "ollama_bin":
		if g.ollama {
			return "/usr/local/bin/ollama\n", 0
		}
		return "", 1
	case "ollama_version", "ollama_version_live":
		if g.ollama {
			return "ollama version is 0.33.2\n", 0
		}
		return "", 127
	case "ollama_list":
		return "NAME    ID    SIZE    MODIFIED\n", 0
	case "vllm_model":
		for p, c := range g.files {
			if strings.Contains(p, "/.aimachine/") {
				s := strings.TrimSpace(c)
				return "snapshot " + s + "\nfile 663 " + s + "/config.json\nfile 6180000000 " + s + "/model.safetensors\nincomplete 0\n", 0
			}
		}
		return "incomplete 0\n", 0
	case "ollama_dropin":
		return g.file("/etc/systemd/system/ollama.service.d/override.conf")
	case "ollama_dirs":
		if g.files["dir:/opt/ollama/models"] == "ollama" {
			return "ollama /opt/ollama/models\n", 0
		}
		return "stat: cannot statx\n", 1
	case "ollama_show":
		return g.show("ollama"), 0
	case "ollama_ready":
		if !g.svc("ollama").active {
			return "::api\n\n::show\n" + g.show("ollama"), 0
		}
		return `time=2026 level=INFO source=types.go:42 msg="inference compute" id=GPU-1 library=CUDA compute=12.0 name=CUDA0 description="NVIDIA GeForce RTX 5060 Ti" total="15.9 GiB"` + "\n::api\n{\"version\":\"0.33.2\"}\n::show\n" + g.show("ollama"), 0
	case "dmesg":
		return "[    4.9] nvidia: loading out-of-tree module taints kernel.\n", 0
	case "modinfo":
		return "Dual MIT/GPL\n", 0
	case "cuda_sample":
		return "PASS vector add of 65536 elements\n", 0
	}
	return "unknown fact " + name + "\n", 127
}
