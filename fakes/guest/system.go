package guest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aimachine/aimachine/fakes/nvgpu"
)

// system is the simulated OS state of one guest: dpkg database, apt lists, kernel modules,
// kernel log, journal, systemd services, listening sockets, cloud-init.
type system struct {
	g *Guest

	mu             sync.Mutex
	installed      map[string]string // package -> version
	removed        map[string]bool   // removed, config files left (dpkg "rc")
	halfConfigured map[string]bool   // postinst failed (dpkg "iF")
	lists          map[string]bool   // repo -> package lists downloaded
	loaded         map[string]bool   // kernel modules
	loadedNvidia   *nvModule
	dkmsBuilt      map[string]string // dkms package -> version built for the running kernel
	dmesg          []string
	kmsgLast       float64 // timestamp of the last kernel message: the ring buffer is monotonic
	journal        []journalLine
	units          map[string]*unit    // unit configs as of the last daemon-reload
	services       map[string]*service // runtime state
	listeners      map[string]http.Handler
	gpuProcs       map[int]gpuProc
	nextPID        int
	bootTime       time.Time
	lockUntil      time.Time
	lockPID        int
	ci             cloudInit
}

type nvModule struct {
	version string
	branch  string
	open    bool
	signed  bool
	pkg     string
}

type journalLine struct {
	unit string
	at   time.Time
	text string
	boot int
}

type gpuProc struct {
	name  string
	mib   int
	until time.Time // memory released after this (zero = held until the process ends)
}

func newSystem(g *Guest) *system {
	return &system{
		g: g, installed: map[string]string{}, removed: map[string]bool{}, halfConfigured: map[string]bool{}, lists: map[string]bool{}, loaded: map[string]bool{},
		dkmsBuilt: map[string]string{}, units: map[string]*unit{}, services: map[string]*service{},
		listeners: map[string]http.Handler{}, gpuProcs: map[int]gpuProc{}, nextPID: 300,
	}
}

func (s *system) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextPID += 7 + s.nextPID%13
	return s.nextPID
}

// uptime is the simulated seconds since boot (real elapsed time divided by the time scale).
func (s *system) uptime() float64 {
	s.mu.Lock()
	bt := s.bootTime
	s.mu.Unlock()
	el := time.Since(bt).Seconds()
	if sc := s.g.f.scale; sc > 0 {
		el /= sc
	}
	return 22 + el
}

func (s *system) kmsg(lines ...string) {
	up := s.uptime()
	s.mu.Lock()
	defer s.mu.Unlock()
	if up <= s.kmsgLast {
		up = s.kmsgLast + 0.000731
	}
	for _, l := range lines {
		if strings.HasPrefix(l, " ") {
			s.dmesg = append(s.dmesg, l)
			continue
		}
		s.dmesg = append(s.dmesg, fmt.Sprintf("[%12.6f] %s", up, l))
		s.kmsgLast = up
		up += 0.000731
	}
}

// logUnit appends to the journal of a unit ("kernel" for the kernel ring).
func (s *system) logUnit(unit, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(fmt.Sprintf(format, args...), "\n"), "\n") {
		s.journal = append(s.journal, journalLine{unit: unit, at: time.Now(), text: l, boot: s.g.boots})
	}
	if len(s.journal) > 20000 {
		s.journal = append([]journalLine{}, s.journal[len(s.journal)-10000:]...)
	}
}

// kernelBoot resets the runtime state for a new boot and writes the early kernel log.
func (s *system) kernelBoot() {
	s.mu.Lock()
	s.bootTime = time.Now()
	s.loaded = map[string]bool{}
	s.loadedNvidia = nil
	s.gpuProcs = map[int]gpuProc{}
	s.listeners = map[string]http.Handler{}
	s.services = map[string]*service{}
	s.kmsgLast = 0
	s.dmesg = []string{
		"[    0.000000] Linux version " + kernelRelease + " (buildd@lcy02-amd64-080) (x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0, GNU ld (GNU Binutils for Ubuntu) 2.42) " + kernelVersion + " (Ubuntu 6.8.0-88.89-generic 6.8.12)",
		"[    0.000000] Command line: BOOT_IMAGE=/vmlinuz-" + kernelRelease + " root=LABEL=cloudimg-rootfs ro console=tty1 console=ttyS0",
		"[    0.000000] Hypervisor detected: KVM",
	}
	s.mu.Unlock()
	b := s.g.bootInfo()
	sb := strings.Contains(b.BIOS, "ovmf") && strings.Contains(b.Config["efidisk0"], "pre-enrolled-keys=1")
	if s.g.f.hasFault(FaultSecureBoot, s.g.id.VMID) != nil {
		sb = true
	}
	s.g.mu.Lock()
	s.g.secureBoot = sb
	s.g.mu.Unlock()
	if sb {
		s.kmsg("secureboot: Secure boot enabled")
	} else if strings.Contains(b.BIOS, "ovmf") {
		s.kmsg("secureboot: Secure boot disabled")
	}
	for _, d := range s.gpus() {
		s.kmsg(fmt.Sprintf("pci 0000:%s: [%s:%s] type 00 class 0x%s PCIe Legacy Endpoint", d.guestAddr, d.vendor, d.device, d.class))
	}
	s.writeProcFiles()
	bootID := make([]byte, 16)
	rand.Read(bootID)
	s.g.fs.writeFile("/proc/sys/kernel/random/boot_id", []byte(fmt.Sprintf("%x-%x-%x-%x-%x\n", bootID[0:4], bootID[4:6], bootID[6:8], bootID[8:10], bootID[10:])), 0o444, owner{})
	s.logUnit("", "-- Boot --")
}

func (s *system) secureBootOn() bool {
	if s.g.f.hasFault(FaultSecureBoot, s.g.id.VMID) != nil {
		return true
	}
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	return s.g.secureBoot
}

// afterBoot runs once sshd is up: module autoload by udev, enabled services, cloud-init final.
func (s *system) afterBoot(ctx context.Context, first bool) {
	if s.nvidiaInstalled() != nil {
		s.loadNvidia(true)
	}
	// systemd-modules-load.service
	for _, dir := range []string{"/usr/lib/modules-load.d", "/etc/modules-load.d"} {
		for _, f := range s.g.fs.glob(dir, "*.conf") {
			for _, line := range strings.Split(s.g.fs.readString(f), "\n") {
				m := strings.ReplaceAll(strings.TrimSpace(line), "-", "_")
				if m == "" || strings.HasPrefix(m, "#") || strings.HasPrefix(m, ";") {
					continue
				}
				var msg string
				switch m {
				case "nvidia":
					msg = s.loadNvidia(true)
				case "nvidia_uvm":
					msg = s.loadUVM()
				}
				if msg != "" {
					s.logUnit("systemd-modules-load.service", "systemd-modules-load[312]: Failed to insert module '%s': %s", m, msg)
				}
			}
		}
	}
	s.startEnabled(ctx)
	s.cloudInitFinal(ctx, first)
}

// shutdown stops every service; the kernel state goes with the next kernelBoot.
func (s *system) shutdown(clean bool) {
	s.mu.Lock()
	svcs := make([]*service, 0, len(s.services))
	for _, sv := range s.services {
		svcs = append(svcs, sv)
	}
	s.mu.Unlock()
	for _, sv := range svcs {
		s.stopService(sv, "shutdown")
	}
	s.mu.Lock()
	s.loaded = map[string]bool{}
	s.loadedNvidia = nil
	s.listeners = map[string]http.Handler{}
	s.gpuProcs = map[int]gpuProc{}
	s.mu.Unlock()
}

// gpuDev is a passed-through PCI function as the guest sees it.
type gpuDev struct {
	guestAddr string // 01:00.0
	vendor    string // 10de
	device    string // 2d04
	class     string // 030000
	model     string
	memMiB    int
	subVendor string
	subDevice string
	// card is the model's row of the device table (nil for a device the table does not know).
	card *nvgpu.Device
}

// openRequired: the proprietary kernel module refuses this GPU (Blackwell, nvgpu table).
func (d gpuDev) openRequired() bool { return d.card != nil && d.card.OpenRequired }

// openUnsupported: the open kernel module cannot drive this GPU (no GSP: Pascal and older).
func (d gpuDev) openUnsupported() bool { return d.card != nil && !d.card.OpenSupported }

// computeCap is the compute capability nvidia-smi and CUDA report ("" when unknown).
func (d gpuDev) computeCap() string {
	if d.card == nil {
		return ""
	}
	return d.card.ComputeCap
}

// subsystem is the board's subsystem vendor:device; a topology without one gets NVIDIA's own
// (reference boards carry 10de:<device>).
func (d gpuDev) subsystem() (string, string) {
	if d.subVendor != "" {
		return d.subVendor, d.subDevice
	}
	return "10de", d.device
}

// powerW is the default power limit in watts.
func (d gpuDev) powerW() int {
	if d.card == nil {
		return 0
	}
	return d.card.PowerW
}

// gpus lists passed-through functions with guest bus addresses (q35+pcie=1 -> 01:00.x,
// q35 without pcie -> 06:10.x, i440fx -> 00:10.x).
func (s *system) gpus() []gpuDev {
	b := s.g.bootInfo()
	pcie := false
	for k, v := range b.Config {
		if strings.HasPrefix(k, "hostpci") && strings.Contains(v, "pcie=1") {
			pcie = true
		}
	}
	q35 := strings.Contains(b.Machine, "q35")
	var out []gpuDev
	for _, d := range b.GPUs {
		fn := "0"
		if i := strings.LastIndex(d.ID, "."); i >= 0 {
			fn = d.ID[i+1:]
		}
		addr := "00:10." + fn
		switch {
		case q35 && pcie:
			addr = "01:00." + fn
		case q35:
			addr = "06:10." + fn
		}
		cls := strings.TrimPrefix(d.Class, "0x")
		if cls == "" {
			cls = "030000"
		}
		for len(cls) < 6 {
			cls += "0"
		}
		gd := gpuDev{
			guestAddr: addr, vendor: strings.TrimPrefix(strings.ToLower(d.Vendor), "0x"),
			device: strings.TrimPrefix(strings.ToLower(d.Device), "0x"), class: cls, model: d.Model, memMiB: d.MemoryMiB,
			subVendor: strings.TrimPrefix(strings.ToLower(d.SubsystemVendor), "0x"), subDevice: strings.TrimPrefix(strings.ToLower(d.SubsystemDevice), "0x"),
		}
		if gd.vendor == "10de" {
			if c, ok := nvgpu.Lookup(gd.device); ok {
				gd.card = &c
			}
		}
		out = append(out, gd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].guestAddr < out[j].guestAddr })
	return out
}

// nvidiaGPU returns the NVIDIA display function, if one was passed through.
func (s *system) nvidiaGPU() *gpuDev {
	for _, d := range s.gpus() {
		if d.vendor == "10de" && strings.HasPrefix(d.class, "03") {
			d := d
			// the topology may leave name and memory out: the device table knows the model
			if d.model == "" && d.card != nil {
				d.model = d.card.Name
			}
			if d.model == "" {
				d.model = "NVIDIA Graphics Device"
			}
			if d.memMiB == 0 && d.card != nil {
				d.memMiB = d.card.MemoryMiB
			}
			return &d
		}
	}
	return nil
}

// --- listening sockets -------------------------------------------------------------------------

func listenKey(addr string, port int) string { return net.JoinHostPort(addr, strconv.Itoa(port)) }

func (s *system) listen(addr string, port int, h http.Handler) {
	s.mu.Lock()
	s.listeners[listenKey(addr, port)] = h
	s.mu.Unlock()
}

func (s *system) unlisten(addr string, port int) {
	s.mu.Lock()
	delete(s.listeners, listenKey(addr, port))
	s.mu.Unlock()
}

// handlerFor finds the service listening for a connection to ip:port (wildcards included).
func (s *system) handlerFor(ip string, port int) http.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.listeners[listenKey(ip, port)]; h != nil {
		return h
	}
	local := ip == "127.0.0.1" || ip == "::1" || ip == s.g.ipUnlocked()
	if !local {
		return nil
	}
	for _, w := range []string{"0.0.0.0", "::"} {
		if h := s.listeners[listenKey(w, port)]; h != nil {
			return h
		}
	}
	return nil
}

func (g *Guest) ipUnlocked() string {
	return g.ip
}

// dialService connects in memory to a guest service (DialGuest for ports other than 22).
func (s *system) dialService(ip string, port int) (net.Conn, syscall.Errno) {
	h := s.handlerFor(ip, port)
	if h == nil {
		return nil, syscall.ECONNREFUSED
	}
	client, server := memPipe(&net.TCPAddr{IP: net.IPv4(192, 168, 0, 2), Port: 41000}, &net.TCPAddr{IP: net.ParseIP(ip), Port: port})
	l := &oneConnListener{c: server, done: make(chan struct{})}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { srv.Serve(l); server.Close() }()
	return client, 0
}

type oneConnListener struct {
	mu   sync.Mutex
	c    net.Conn
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.c
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return &closeNotifyConn{Conn: c, done: l.done}, nil
	}
	<-l.done
	return nil, errors.New("listener closed")
}

func (l *oneConnListener) Close() error { return nil }
func (l *oneConnListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4zero}
}

type closeNotifyConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
}

func (c *closeNotifyConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// --- dpkg lock -----------------------------------------------------------------------------------

// lockHolder reports who holds the dpkg frontend lock now ("" when free).
func (s *system) lockHolder() (pid int, name string) {
	if ft := s.g.f.hasFault(FaultDpkgLock, s.g.id.VMID); ft != nil && ft.Count == 0 && (ft.until.IsZero() || time.Now().Before(ft.until)) {
		return 1187, "unattended-upgr"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().Before(s.lockUntil) {
		return s.lockPID, "unattended-upgr"
	}
	if s.ci.dpkgBusy > 0 {
		return 1034, "apt-get"
	}
	return 0, ""
}

var errNotRunning = errors.New("not running")

// drain reads r to the end (helper for programs that ignore stdin).
func drain(r io.Reader) {
	if r != nil {
		io.Copy(io.Discard, r)
	}
}
