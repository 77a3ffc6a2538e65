package pve

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// StaticGuestFactory makes minimal built-in guests: a cloud image that boots, runs cloud-init and,
// when the cloud-init data installs qemu-guest-agent (e.g. the vendor snippet), starts the agent
// after AgentDelay (scaled). The agent answers a few fixed commands; there is no SSH server.
type StaticGuestFactory struct {
	// AgentDelay is the realistic time from power-on to a ready agent (default 25 s, scaled by the host).
	AgentDelay time.Duration
	// AlwaysAgent starts the agent even when cloud-init does not install it.
	AlwaysAgent bool

	mu     sync.Mutex
	guests map[int]*StaticGuest
}

// NewStaticGuestFactory returns a factory of built-in guests.
func NewStaticGuestFactory() *StaticGuestFactory {
	return &StaticGuestFactory{AgentDelay: 25 * time.Second, guests: map[int]*StaticGuest{}}
}

// NewGuest implements GuestFactory.
func (f *StaticGuestFactory) NewGuest(id VMIdentity, h Host) (Guest, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	g := &StaticGuest{id: id, host: h, factory: f, hostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " root@ubuntu"}
	f.mu.Lock()
	if f.guests == nil {
		f.guests = map[int]*StaticGuest{}
	}
	f.guests[id.VMID] = g
	f.mu.Unlock()
	return g, nil
}

// Guest returns the current guest of a VM id (nil when none).
func (f *StaticGuestFactory) Guest(vmid int) *StaticGuest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.guests[vmid]
}

// StaticGuest is one built-in guest.
type StaticGuest struct {
	id      VMIdentity
	host    Host
	factory *StaticGuestFactory
	hostKey string

	mu        sync.Mutex
	on        bool
	boot      BootInfo
	gen       int // power cycle generation, invalidates pending agent timers
	agentUp   bool
	destroyed bool
	execs     map[int]ExecStatus
	nextPID   int
}

// HostKey is the guest's SSH ed25519 host public key line.
func (g *StaticGuest) HostKey() string { return g.hostKey }

// BootInfo is what the guest got at its last power-on.
func (g *StaticGuest) BootInfo() BootInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.boot
}

// Running reports whether the guest is powered on.
func (g *StaticGuest) Running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.on
}

func (g *StaticGuest) wantsAgent() bool {
	if g.factory.AlwaysAgent {
		return true
	}
	return strings.Contains(g.boot.CloudInit.VendorData, "qemu-guest-agent")
}

// PowerOn implements Guest.
func (g *StaticGuest) PowerOn(ctx context.Context, b BootInfo) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.destroyed {
		return fmt.Errorf("guest %s destroyed", g.id.Incarnation)
	}
	g.on, g.boot, g.agentUp = true, b, false
	g.gen++
	g.scheduleAgentLocked()
	return nil
}

func (g *StaticGuest) scheduleAgentLocked() {
	if !g.wantsAgent() {
		return
	}
	gen := g.gen
	d := g.host.Scale(g.factory.AgentDelay)
	up := func() {
		g.mu.Lock()
		if g.gen == gen && g.on {
			g.agentUp = true
		}
		g.mu.Unlock()
	}
	if d <= 0 {
		g.agentUp = true
		return
	}
	time.AfterFunc(d, up)
}

// PowerOff implements Guest.
func (g *StaticGuest) PowerOff(clean bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on, g.agentUp = false, false
	g.gen++
	return nil
}

// Reboot implements Guest.
func (g *StaticGuest) Reboot() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.agentUp = false
	g.gen++
	g.scheduleAgentLocked()
	return nil
}

// Destroy implements Guest.
func (g *StaticGuest) Destroy() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on, g.agentUp, g.destroyed = false, false, true
	g.gen++
	return nil
}

// PowerOffFromInside simulates `poweroff` inside the guest.
func (g *StaticGuest) PowerOffFromInside() {
	_ = g.PowerOff(true)
	g.host.GuestPoweredOff(g.id.VMID)
}

// Agent implements Guest.
func (g *StaticGuest) Agent() Agent {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.on || !g.agentUp {
		return nil
	}
	return (*staticAgent)(g)
}

type staticAgent StaticGuest

func (a *staticAgent) g() *StaticGuest { return (*StaticGuest)(a) }

func (a *staticAgent) Ready() bool {
	g := a.g()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.on && g.agentUp
}

func (a *staticAgent) files() map[string]string {
	g := a.g()
	g.mu.Lock()
	b := g.boot
	g.mu.Unlock()
	user := b.CloudInit.User
	if user == "" {
		user = "ubuntu"
	}
	return map[string]string{
		"/etc/hostname":                           b.CloudInit.Hostname + "\n",
		"/etc/ssh/ssh_host_ed25519_key.pub":       g.hostKey + "\n",
		"/etc/os-release":                         UbuntuNobleOSRelease,
		"/home/" + user + "/.ssh/authorized_keys": strings.Join(b.CloudInit.SSHKeys, "\n") + "\n",
		"/var/lib/cloud/data/status.json":         `{"v1": {"stage": null, "errors": []}}` + "\n",
	}
}

// UbuntuNobleOSRelease is /etc/os-release of the Ubuntu 24.04.3 cloud image; simulated guests share it.
const UbuntuNobleOSRelease = `PRETTY_NAME="Ubuntu 24.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.3 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
`

func (a *staticAgent) FileRead(path string) ([]byte, error) {
	if c, ok := a.files()[path]; ok {
		return []byte(c), nil
	}
	return nil, fmt.Errorf("Failed to open file '%s': No such file or directory", path)
}

// Exec runs one of the few commands the static guest knows; unknown programs fail like qemu-ga does.
func (a *staticAgent) Exec(argv []string, stdin []byte) (int, error) {
	g := a.g()
	if len(argv) == 0 {
		return 0, fmt.Errorf("Invalid parameter 'path'")
	}
	prog := argv[0]
	args := argv[1:]
	if (prog == "sh" || prog == "bash" || prog == "/bin/sh" || prog == "/bin/bash") && len(args) == 2 && args[0] == "-c" {
		args = strings.Fields(args[1])
		if len(args) == 0 {
			return a.done(0, "", "")
		}
		prog, args = args[0], args[1:]
		if !knownProg(prog) {
			return a.done(127, "", fmt.Sprintf("sh: 1: %s: not found\n", prog))
		}
	}
	switch prog {
	case "cat", "/usr/bin/cat", "/bin/cat":
		var out, errOut strings.Builder
		code := 0
		for _, p := range args {
			if c, ok := a.files()[p]; ok {
				out.WriteString(c)
			} else {
				fmt.Fprintf(&errOut, "cat: %s: No such file or directory\n", p)
				code = 1
			}
		}
		if len(args) == 0 {
			out.Write(stdin)
		}
		return a.done(code, out.String(), errOut.String())
	case "hostname", "/usr/bin/hostname":
		g.mu.Lock()
		h := g.boot.CloudInit.Hostname
		g.mu.Unlock()
		return a.done(0, h+"\n", "")
	case "true", "/usr/bin/true":
		return a.done(0, "", "")
	case "false", "/usr/bin/false":
		return a.done(1, "", "")
	case "uname":
		return a.done(0, "6.8.0-85-generic\n", "")
	case "cloud-init":
		if len(args) > 0 && args[0] == "status" {
			return a.done(0, "status: done\n", "")
		}
		return a.done(2, "", "usage: cloud-init [-h] [--version] [--debug] [--force]\n")
	case "systemctl":
		if len(args) == 2 && args[0] == "is-active" && args[1] == "qemu-guest-agent" {
			return a.done(0, "active\n", "")
		}
		return a.done(0, "", "")
	}
	if knownProg(prog) {
		return a.done(0, "", "")
	}
	return 0, fmt.Errorf("Failed to execute child process \u201c%s\u201d (No such file or directory)", prog)
}

func knownProg(p string) bool {
	switch strings.TrimPrefix(strings.TrimPrefix(p, "/usr/bin/"), "/bin/") {
	case "cat", "hostname", "true", "false", "uname", "cloud-init", "systemctl", "sync":
		return true
	}
	return false
}

func (a *staticAgent) done(code int, out, errOut string) (int, error) {
	g := a.g()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.execs == nil {
		g.execs = map[int]ExecStatus{}
		g.nextPID = 1200
	}
	g.nextPID += 3
	g.execs[g.nextPID] = ExecStatus{Exited: true, ExitCode: code, Stdout: []byte(out), Stderr: []byte(errOut)}
	return g.nextPID, nil
}

func (a *staticAgent) ExecStatus(pid int) (ExecStatus, error) {
	g := a.g()
	g.mu.Lock()
	defer g.mu.Unlock()
	st, ok := g.execs[pid]
	if !ok {
		return ExecStatus{}, fmt.Errorf("Invalid parameter 'pid'")
	}
	return st, nil
}

func (a *staticAgent) Interfaces() []NetInterface {
	g := a.g()
	g.mu.Lock()
	b := g.boot
	g.mu.Unlock()
	lo := NetInterface{Name: "lo", HardwareAddress: "00:00:00:00:00:00",
		IPs: []IPAddress{{Type: "ipv4", Addr: "127.0.0.1", Prefix: 8}, {Type: "ipv6", Addr: "::1", Prefix: 128}}}
	mac := strings.ToLower(netMAC(b.Config["net0"]))
	if mac == "" {
		return []NetInterface{lo}
	}
	ip, prefix := fmt.Sprintf("10.0.2.%d", 15+g.id.VMID%200), 24
	kv, _ := parsePropString(b.CloudInit.IPConfig0, "")
	if a4 := kv["ip"]; a4 != "" && a4 != "dhcp" {
		addr, p, _ := strings.Cut(a4, "/")
		ip = addr
		if n, err := strconv.Atoi(p); err == nil {
			prefix = n
		}
	}
	eth := NetInterface{Name: "ens18", HardwareAddress: mac, IPs: []IPAddress{
		{Type: "ipv4", Addr: ip, Prefix: prefix},
		{Type: "ipv6", Addr: "fe80::be24:11ff:fe" + strings.ReplaceAll(mac[9:], ":", "")[:2] + ":" + strings.ReplaceAll(mac[12:], ":", ""), Prefix: 64},
	}}
	return []NetInterface{lo, eth}
}

func (a *staticAgent) OSInfo() map[string]string {
	return map[string]string{
		"id": "ubuntu", "name": "Ubuntu", "pretty-name": "Ubuntu 24.04.3 LTS", "version": "24.04.3 LTS (Noble Numbat)",
		"version-id": "24.04", "machine": "x86_64", "kernel-release": "6.8.0-85-generic",
		"kernel-version": "#85-Ubuntu SMP PREEMPT_DYNAMIC Thu Sep 18 15:26:59 UTC 2025",
	}
}
