package guest

import (
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/aimachine/aimachine/fakes/pve"
)

// simMagic starts every simulated binary: "\x7fELF" so `file`-like checks see a binary, then the
// name of the Go program that implements it.
const simMagic = "\x7fELF\x02\x01\x01 aimachine-sim:"

func simBinary(prog string) []byte { return []byte(simMagic + prog + "\n") }

// baseCommands are the programs of the cloud image: path -> simulated program.
var baseCommands = map[string]string{}

func init() {
	for _, n := range []string{"cat", "tee", "grep", "egrep", "sed", "awk", "mawk", "head", "tail", "wc", "sort", "uniq",
		"cut", "tr", "mkdir", "rm", "rmdir", "cp", "mv", "ln", "chmod", "chown", "chgrp", "install", "touch", "ls",
		"readlink", "realpath", "dirname", "basename", "env", "id", "whoami", "hostname", "uname", "sleep", "date",
		"which", "xargs", "stat", "getent", "sha256sum", "md5sum", "seq", "yes", "nproc", "df", "free", "find", "printenv",
		"sudo", "sh", "bash", "dash", "dpkg", "dpkg-query", "apt-get", "apt", "apt-cache", "systemctl", "journalctl",
		"curl", "wget", "python3", "python3.12", "lspci", "cloud-init", "dmesg", "lsmod", "modinfo", "mokutil", "ip",
		"gpg", "base64", "file", "timeout", "nohup", "su", "ps", "kill", "pgrep", "lscpu", "tar", "gzip", "mktemp", "systemd-detect-virt",
		"test", "true", "false", "echo", "printf", "sync", "update-alternatives", "lsb_release", "groups", "diff", "cmp", "systemd-run"} {
		baseCommands["/usr/bin/"+n] = n
	}
	for _, n := range []string{"modprobe", "rmmod", "insmod", "reboot", "poweroff", "shutdown", "halt", "useradd", "groupadd",
		"usermod", "userdel", "adduser", "ldconfig", "sysctl", "update-initramfs", "sshd", "visudo"} {
		baseCommands["/usr/sbin/"+n] = n
	}
}

// installImage lays out the noble cloud image in the guest's root.
func (g *Guest) installImage() error {
	v := g.fs
	root := owner{}
	if err := os.Chmod(v.root, 0o755); err != nil {
		return err
	}
	for _, d := range []struct {
		p string
		m fs.FileMode
	}{{"/usr/bin", 0o755}, {"/usr/sbin", 0o755}, {"/usr/lib", 0o755}, {"/usr/lib64", 0o755}, {"/usr/local/bin", 0o755},
		{"/usr/local/sbin", 0o755}, {"/usr/share", 0o755}, {"/usr/src", 0o755}, {"/etc/systemd/system", 0o755}, {"/usr/lib/systemd/system", 0o755},
		{"/etc/sudoers.d", 0o750}, {"/etc/apt/sources.list.d", 0o755}, {"/etc/apt/keyrings", 0o755}, {"/etc/profile.d", 0o755},
		{"/etc/modprobe.d", 0o755}, {"/etc/ssh/sshd_config.d", 0o755}, {"/etc/netplan", 0o755}, {"/var/lib/dpkg", 0o755},
		{"/var/lib/apt/lists", 0o755}, {"/var/cache/apt/archives", 0o755}, {"/var/log", 0o755}, {"/var/lib/cloud", 0o755},
		{"/var/tmp", 0o777}, {"/home", 0o755}, {"/root", 0o700}, {"/opt", 0o755}, {"/srv", 0o755}, {"/mnt", 0o755},
		{"/proc/driver", 0o555}, {"/sys/class", 0o555}, {"/dev", 0o755}, {"/run", 0o755}, {"/boot", 0o755},
		{"/usr/lib/modules/" + kernelRelease + "/kernel", 0o755}} {
		if err := v.mkdirAll(d.p, d.m, root); err != nil {
			return err
		}
	}
	if err := v.mkdirAll("/tmp", 0o755, root); err != nil {
		return err
	}
	for _, d := range []string{"/tmp", "/var/tmp"} {
		if err := chmodGuest(v, d, fs.ModeSticky|0o777); err != nil {
			return err
		}
	}
	for l, t := range map[string]string{"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"} {
		if err := v.symlink(t, l); err != nil {
			return err
		}
	}
	if err := v.writeFile("/dev/null", nil, 0o666, root); err != nil {
		return err
	}
	for p, prog := range baseCommands {
		if err := v.writeFile(p, simBinary(prog), 0o755, root); err != nil {
			return err
		}
	}
	v.symlink("python3.12", "/usr/bin/python3")
	v.writeFile("/usr/lib/systemd/systemd-socket-proxyd", simBinary("systemd-socket-proxyd"), 0o755, root)
	v.mkdirAll("/etc/modules-load.d", 0o755, root)
	v.symlink("bash", "/usr/bin/rbash")
	files := map[string]string{
		"/etc/os-release":  pve.UbuntuNobleOSRelease,
		"/etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=24.04\nDISTRIB_CODENAME=noble\nDISTRIB_DESCRIPTION=\"Ubuntu 24.04.3 LTS\"\n",
		"/etc/passwd": `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin
systemd-timesync:x:996:996:systemd Time Synchronization:/:/usr/sbin/nologin
messagebus:x:100:102::/nonexistent:/usr/sbin/nologin
systemd-resolve:x:992:992:systemd Resolver:/:/usr/sbin/nologin
syslog:x:102:104::/nonexistent:/usr/sbin/nologin
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
sshd:x:105:65534::/run/sshd:/usr/sbin/nologin
`,
		"/etc/group": `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:syslog
tty:x:5:
disk:x:6:
man:x:12:
sudo:x:27:
audio:x:29:
dip:x:30:
video:x:44:
plugdev:x:46:
staff:x:50:
users:x:100:
nogroup:x:65534:
systemd-network:x:998:
systemd-timesync:x:996:
render:x:993:
lxd:x:101:
syslog:x:104:
`,
		"/etc/shadow":          "root:*:20000:0:99999:7:::\n",
		"/etc/sudoers":         "Defaults\tenv_reset\nDefaults\tmail_badpass\nDefaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin\"\nDefaults\tuse_pty\nroot\tALL=(ALL:ALL) ALL\n%admin ALL=(ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
		"/etc/hostname":        "ubuntu\n",
		"/etc/hosts":           "127.0.0.1 localhost\n\n# The following lines are desirable for IPv6 capable hosts\n::1 ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n",
		"/etc/debian_version":  "trixie/sid\n",
		"/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n",
		"/etc/ssh/sshd_config.d/60-cloudimg-settings.conf":   "PasswordAuthentication no\n",
		"/etc/apt/sources.list.d/ubuntu.sources":             "Types: deb\nURIs: http://archive.ubuntu.com/ubuntu/\nSuites: noble noble-updates noble-backports\nComponents: main universe restricted multiverse\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\nTypes: deb\nURIs: http://security.ubuntu.com/ubuntu/\nSuites: noble-security\nComponents: main universe restricted multiverse\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n",
		"/etc/environment":                                   "PATH=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/snap/bin\"\n",
		"/boot/vmlinuz-" + kernelRelease:                     "kernel image (simulated)\n",
		"/var/lib/dpkg/lock-frontend":                        "",
		"/var/lib/dpkg/lock":                                 "",
		"/usr/lib/modules/" + kernelRelease + "/modules.dep": "",
	}
	for p, c := range files {
		mode := fs.FileMode(0o644)
		switch p {
		case "/etc/shadow":
			mode = 0o640
		case "/etc/sudoers":
			mode = 0o440
		}
		if err := v.writeFile(p, []byte(c), mode, root); err != nil {
			return err
		}
	}
	if err := v.writeFile("/usr/lib/os-release", []byte(files["/etc/os-release"]), 0o644, root); err != nil {
		return err
	}
	g.sys.installBasePackages()
	return nil
}

func chmodGuest(v *vfs, p string, m fs.FileMode) error {
	hp, _, err := v.host(p, true)
	if err != nil {
		return err
	}
	return chmodHost(hp, m)
}

// cpuFlags returns /proc/cpuinfo flags for a PVE cpu type.
func cpuFlags(cpu string) (model string, flags []string) {
	base := strings.Fields("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx lm constant_tsc nopl xtopology cpuid tsc_known_freq pni cx16 x2apic hypervisor lahf_lm")
	typ, _, _ := strings.Cut(cpu, ",")
	if strings.HasPrefix(typ, "cputype=") {
		typ = strings.TrimPrefix(typ, "cputype=")
	}
	switch typ {
	case "kvm64", "qemu64", "":
		return "Common KVM processor", base
	case "x86-64-v2", "x86-64-v2-AES":
		return "QEMU Virtual CPU version 2.5+", append(base, strings.Fields("ssse3 sse4_1 sse4_2 popcnt aes")...)
	case "x86-64-v3":
		return "QEMU Virtual CPU version 2.5+", append(base, strings.Fields("ssse3 fma sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand abm bmi1 avx2 bmi2")...)
	default: // host and named modern models
		return "AMD Ryzen 9 7950X 16-Core Processor", append(base, strings.Fields("ssse3 fma sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand abm bmi1 avx2 bmi2 avx512f avx512dq avx512bw avx512vl avx512_bf16 sha_ni")...)
	}
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// writeProcFiles regenerates /proc files that depend on hardware and loaded modules.
func (s *system) writeProcFiles() {
	b := s.g.bootInfo()
	model, flags := cpuFlags(b.CPU)
	cores := b.Cores
	if cores <= 0 {
		cores = 1
	}
	var sb strings.Builder
	for i := 0; i < cores; i++ {
		fmt.Fprintf(&sb, "processor\t: %d\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: %s\ncpu MHz\t\t: 4491.540\ncache size\t: 512 KB\ncpu cores\t: %d\nflags\t\t: %s\n\n", i, model, cores, strings.Join(flags, " "))
	}
	s.g.fs.writeFile("/proc/cpuinfo", []byte(sb.String()), 0o444, owner{})
	mem := b.MemoryMiB
	if mem <= 0 {
		mem = 2048
	}
	s.g.fs.writeFile("/proc/meminfo", []byte(fmt.Sprintf("MemTotal:       %8d kB\nMemFree:        %8d kB\nMemAvailable:   %8d kB\n", mem*1024-180000, mem*1024-900000, mem*1024-600000)), 0o444, owner{})
	s.g.fs.writeFile("/proc/version", []byte("Linux version "+kernelRelease+" (buildd@lcy02-amd64-080) (x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0, GNU ld (GNU Binutils for Ubuntu) 2.42) "+kernelVersion+"\n"), 0o444, owner{})
	s.mu.Lock()
	mod := s.loadedNvidia
	s.mu.Unlock()
	if mod != nil {
		kind := "NVIDIA UNIX Open Kernel Module for x86_64"
		if !mod.open {
			kind = "NVIDIA UNIX x86_64 Kernel Module"
		}
		s.g.fs.writeFile("/proc/driver/nvidia/version", []byte(fmt.Sprintf("NVRM version: %s  %s  Release Build  (dvs-builder@U22-I3-AF03-09-1)  Wed Jul 29 00:52:31 UTC 2026\nGCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n", kind, mod.version)), 0o444, owner{})
	} else {
		s.g.fs.remove("/proc/driver/nvidia")
	}
}
