package guest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/aimachine/aimachine/fakes/pve"
)

// Fixed facts of the simulated image (noble cloud image, GA kernel through linux-image-virtual).
const (
	kernelRelease = "6.8.0-88-generic"
	kernelVersion = "#89-Ubuntu SMP PREEMPT_DYNAMIC Sat Oct 11 01:02:46 UTC 2025"
	osPretty      = "Ubuntu 24.04.3 LTS"
	bootDuration  = 20 * time.Second // power-on to sshd accepting
	unattendedFor = 90 * time.Second // unattended-upgrades holds the dpkg lock after first boot
	cloudFinalFor = 25 * time.Second // cloud-init modules:final without packages
)

// PowerState is a guest's power state.
type PowerState string

const (
	PowerOff     PowerState = "off"
	PowerBooting PowerState = "booting"
	PowerRunning PowerState = "running"
)

// Guest is one simulated VM incarnation. It implements pve.Guest.
type Guest struct {
	f    *Factory
	id   pve.VMIdentity
	host pve.Host
	fs   *vfs

	hostKeys []ssh.Signer

	mu         sync.Mutex
	power      PowerState
	boot       pve.BootInfo
	gen        int
	bootCtx    context.Context
	bootCancel context.CancelFunc
	bootAt     time.Time
	netUp      bool
	sshUp      bool
	ip         string
	prefix     int
	mac        string
	boots      int
	destroyed  bool
	conns      map[net.Conn]struct{}
	secureBoot bool

	sys     *system // packages, modules, services (see system.go)
	agentSt agentState

	argvMu  sync.Mutex
	argvLog []string // every command line the simulated shell executed (what ps would show)
}

// maxArgvLog bounds the command-line record.
const maxArgvLog = 20000

// CommandLines returns the command lines of every program the guest ran (argv joined with
// spaces), oldest first, at most the last 20000.
func (g *Guest) CommandLines() []string {
	g.argvMu.Lock()
	defer g.argvMu.Unlock()
	return append([]string(nil), g.argvLog...)
}

func (g *Guest) recordArgv(args []string) {
	g.argvMu.Lock()
	g.argvLog = append(g.argvLog, strings.Join(args, " "))
	if len(g.argvLog) > maxArgvLog {
		g.argvLog = g.argvLog[len(g.argvLog)-maxArgvLog:]
	}
	g.argvMu.Unlock()
}

var _ pve.Guest = (*Guest)(nil)

func newGuest(f *Factory, id pve.VMIdentity, host pve.Host, root string) (*Guest, error) {
	g := &Guest{f: f, id: id, host: host, fs: newVFS(root), power: PowerOff, conns: map[net.Conn]struct{}{}}
	g.sys = newSystem(g)
	g.agentSt.execs = map[int]*agentExec{}
	if err := g.installImage(); err != nil {
		return nil, fmt.Errorf("prepare image of VM %d: %w", id.VMID, err)
	}
	return g, nil
}

// VMID returns the guest's VM id.
func (g *Guest) VMID() int { return g.id.VMID }

// Root returns the host directory holding the guest's filesystem (for debugging).
func (g *Guest) Root() string { return g.fs.root }

// IP returns the guest's IPv4 address from cloud-init ipconfig0 ("" before the first boot).
func (g *Guest) IP() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ip
}

// State returns the power state.
func (g *Guest) State() PowerState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.power
}

// HostKeys returns the SSH host public keys (empty before the first boot).
func (g *Guest) HostKeys() []ssh.PublicKey {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []ssh.PublicKey
	for _, s := range g.hostKeys {
		out = append(out, s.PublicKey())
	}
	return out
}

func (g *Guest) scale(d time.Duration) time.Duration { return g.f.Scale(d) }

// sleep waits a realistic duration scaled, or until ctx ends.
func (g *Guest) sleep(ctx context.Context, d time.Duration) error {
	d = g.scale(d)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PowerOn boots the guest (pve.Guest).
func (g *Guest) PowerOn(ctx context.Context, b pve.BootInfo) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.destroyed {
		return errors.New("guest destroyed")
	}
	if g.power != PowerOff {
		return fmt.Errorf("VM %d already running", g.id.VMID)
	}
	g.boot = b
	ip, prefix := parseIPConfig(b.CloudInit.IPConfig0, g.id.VMID)
	g.ip, g.prefix = ip, prefix
	g.mac = parseMAC(b.Config["net0"], g.id.VMID)
	g.startBootLocked()
	return nil
}

func (g *Guest) startBootLocked() {
	g.gen++
	g.boots++
	g.power = PowerBooting
	g.netUp, g.sshUp = false, false
	g.bootAt = time.Now()
	g.bootCtx, g.bootCancel = context.WithCancel(context.Background())
	g.f.count(g.id.VMID, func(s *GuestStats) { s.Boots++ })
	g.f.log.Info("guest booting", "vmid", g.id.VMID, "ip", g.ip, "boot", g.boots)
	go g.bootSequence(g.bootCtx, g.gen)
}

// bootSequence runs one boot: network, cloud-init local/network stages, sshd, services,
// cloud-init final.
func (g *Guest) bootSequence(ctx context.Context, gen int) {
	d := bootDuration
	if ft := g.f.hasFault(FaultSlowBoot, g.id.VMID); ft != nil {
		if x, err := time.ParseDuration(ft.Duration); err == nil {
			d = x
			g.f.fault(FaultSlowBoot, g.id.VMID, nil)
		}
	}
	g.sys.kernelBoot()
	if g.sleep(ctx, d/2) != nil {
		return
	}
	g.mu.Lock()
	if g.gen != gen {
		g.mu.Unlock()
		return
	}
	g.netUp = true
	first := g.boots == 1
	g.mu.Unlock()
	g.sys.cloudInitEarly(first)
	if g.sleep(ctx, d/2) != nil {
		return
	}
	g.mu.Lock()
	if g.gen != gen {
		g.mu.Unlock()
		return
	}
	g.sshUp = true
	g.power = PowerRunning
	g.mu.Unlock()
	g.f.log.Info("guest up", "vmid", g.id.VMID, "ip", g.ip)
	g.sys.afterBoot(ctx, first)
}

// stopLocked ends the current boot: connections dropped, services and modules gone.
func (g *Guest) stopLocked() []net.Conn {
	if g.bootCancel != nil {
		g.bootCancel()
	}
	g.gen++
	g.power = PowerOff
	g.netUp, g.sshUp = false, false
	conns := make([]net.Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.conns = map[net.Conn]struct{}{}
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// PowerOff stops the guest (pve.Guest); clean is an ACPI shutdown.
func (g *Guest) PowerOff(clean bool) error {
	g.mu.Lock()
	if g.power == PowerOff {
		g.mu.Unlock()
		return nil
	}
	conns := g.stopLocked()
	g.mu.Unlock()
	closeAll(conns)
	g.sys.shutdown(clean)
	g.f.log.Info("guest powered off", "vmid", g.id.VMID, "clean", clean)
	return nil
}

// Reboot restarts the guest (pve.Guest): every SSH connection drops, the guest is unreachable for
// the boot time, modules and services are recomputed on boot.
func (g *Guest) Reboot() error {
	g.mu.Lock()
	if g.destroyed {
		g.mu.Unlock()
		return errors.New("guest destroyed")
	}
	if g.power == PowerOff {
		g.mu.Unlock()
		return fmt.Errorf("VM %d not running", g.id.VMID)
	}
	conns := g.stopLocked()
	g.mu.Unlock()
	closeAll(conns)
	g.sys.shutdown(true)
	g.mu.Lock()
	g.startBootLocked()
	g.mu.Unlock()
	return nil
}

// poweroffFromInside is `poweroff` / `shutdown -h` run in the guest.
func (g *Guest) poweroffFromInside() {
	g.PowerOff(true)
	if g.host != nil {
		g.host.GuestPoweredOff(g.id.VMID)
	}
}

// Destroy releases the guest (pve.Guest).
func (g *Guest) Destroy() error {
	g.PowerOff(false)
	g.mu.Lock()
	g.destroyed = true
	g.mu.Unlock()
	g.f.forget(g)
	return os.RemoveAll(g.fs.root)
}

// Agent returns the guest agent when installed, started and enabled in the VM config (pve.Guest).
func (g *Guest) Agent() pve.Agent {
	if !g.sys.agentRunning() {
		return nil
	}
	return &agent{g: g}
}

// dial connects to a guest port in memory; errno is set when no connection can be made.
func (g *Guest) dial(ip string, port int) (net.Conn, syscall.Errno) {
	g.f.count(g.id.VMID, func(s *GuestStats) { s.Dials++ })
	g.mu.Lock()
	if !g.netUp {
		g.mu.Unlock()
		return nil, syscall.EHOSTUNREACH
	}
	if port == 22 {
		if !g.sshUp {
			g.mu.Unlock()
			return nil, syscall.ECONNREFUSED
		}
		g.mu.Unlock()
		cc, sc := memPipe(&net.TCPAddr{IP: net.IPv4(192, 168, 0, 2), Port: 40000 + g.id.VMID%20000}, &net.TCPAddr{IP: net.ParseIP(ip), Port: 22})
		g.mu.Lock()
		g.conns[sc] = struct{}{}
		g.mu.Unlock()
		go g.serveSSH(sc)
		return cc, 0
	}
	g.mu.Unlock()
	return g.sys.dialService(ip, port)
}

func (g *Guest) untrack(c net.Conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// parseIPConfig reads "ip=192.168.0.140/24,gw=..." ; dhcp or empty gives 10.0.2.<vmid%200+20>/24
// (a deterministic lease of the simulated DHCP server).
func parseIPConfig(s string, vmid int) (string, int) {
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k != "ip" || v == "dhcp" || v == "" {
			continue
		}
		addr, pfx, _ := strings.Cut(v, "/")
		n, err := strconv.Atoi(pfx)
		if err != nil {
			n = 24
		}
		if net.ParseIP(addr) != nil {
			return addr, n
		}
	}
	return fmt.Sprintf("10.0.2.%d", vmid%200+20), 24
}

// parseMAC reads the MAC of net0 ("virtio=BC:24:11:AA:BB:CC,bridge=vmbr0").
func parseMAC(s string, vmid int) string {
	for _, kv := range strings.Split(s, ",") {
		_, v, ok := strings.Cut(kv, "=")
		if ok && len(v) == 17 && strings.Count(v, ":") == 5 {
			return strings.ToLower(v)
		}
	}
	return fmt.Sprintf("bc:24:11:00:%02x:%02x", (vmid>>8)&0xff, vmid&0xff)
}

// ensureHostKeys generates the SSH host keys at first boot and writes them to /etc/ssh.
func (g *Guest) ensureHostKeys() error {
	g.mu.Lock()
	have := len(g.hostKeys) > 0
	g.mu.Unlock()
	if have {
		return nil
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	var signers []ssh.Signer
	for _, k := range []struct {
		name string
		key  any
	}{{"ed25519", edPriv}, {"ecdsa", ecPriv}} {
		s, err := ssh.NewSignerFromKey(k.key)
		if err != nil {
			return err
		}
		blk, err := ssh.MarshalPrivateKey(k.key, "root@"+g.hostname())
		if err != nil {
			return err
		}
		g.fs.writeFile("/etc/ssh/ssh_host_"+k.name+"_key", pem.EncodeToMemory(blk), 0o600, owner{})
		pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " root@" + g.hostname() + "\n"
		g.fs.writeFile("/etc/ssh/ssh_host_"+k.name+"_key.pub", []byte(pub), 0o644, owner{})
		signers = append(signers, s)
	}
	g.mu.Lock()
	g.hostKeys = signers
	g.mu.Unlock()
	return nil
}

func (g *Guest) hostname() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.boot.CloudInit.Hostname != "" {
		return g.boot.CloudInit.Hostname
	}
	if g.boot.Name != "" {
		return g.boot.Name
	}
	return "ubuntu"
}

func (g *Guest) bootInfo() pve.BootInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.boot
}
