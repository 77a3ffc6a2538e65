package guest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aimachine/aimachine/fakes/pve"
)

// Factory creates simulated guests and routes in-memory connections to them.
// It implements pve.GuestFactory.
type Factory struct {
	scale    float64
	log      *slog.Logger
	stateDir string
	ownDir   bool

	mu     sync.Mutex
	guests map[*Guest]struct{}
	faults faultSet
	stats  statsCounters
}

var _ pve.GuestFactory = (*Factory)(nil)

// Option configures a Factory.
type Option func(*Factory)

// WithTimeScale sets the factor every simulated duration is multiplied by:
// 1 = realistic (a boot takes ~20 s), 0 = instant, 0.01 = a hundred times faster.
func WithTimeScale(f float64) Option {
	return func(x *Factory) {
		if f < 0 {
			f = 0
		}
		x.scale = f
	}
}

// WithLogger sets the logger for simulator events (discarded by default).
func WithLogger(l *slog.Logger) Option {
	return func(x *Factory) {
		if l != nil {
			x.log = l
		}
	}
}

// WithStateDir sets the directory under which each guest gets its root filesystem
// (a fresh temporary directory is used by default and removed by Close).
func WithStateDir(dir string) Option {
	return func(x *Factory) { x.stateDir = dir }
}

// NewFactory returns a guest factory.
func NewFactory(opts ...Option) *Factory {
	f := &Factory{
		scale:  1,
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		guests: map[*Guest]struct{}{},
	}
	for _, o := range opts {
		o(f)
	}
	f.stats.perGuest = map[int]*GuestStats{}
	return f
}

// Scale converts a realistic duration into simulated time.
func (f *Factory) Scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * f.scale)
}

// NewGuest creates one VM incarnation (pve.GuestFactory).
func (f *Factory) NewGuest(id pve.VMIdentity, host pve.Host) (pve.Guest, error) {
	return f.newGuest(id, host)
}

func (f *Factory) newGuest(id pve.VMIdentity, host pve.Host) (*Guest, error) {
	f.mu.Lock()
	if f.stateDir == "" {
		d, err := os.MkdirTemp("", "aimachine-guests-")
		if err != nil {
			f.mu.Unlock()
			return nil, fmt.Errorf("create guest state dir: %w", err)
		}
		f.stateDir, f.ownDir = d, true
	}
	dir := f.stateDir
	f.mu.Unlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create guest state dir: %w", err)
	}
	root, err := os.MkdirTemp(dir, fmt.Sprintf("vm%d-", id.VMID))
	if err != nil {
		return nil, fmt.Errorf("create root filesystem of VM %d: %w", id.VMID, err)
	}
	g, err := newGuest(f, id, host, root)
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	f.mu.Lock()
	f.guests[g] = struct{}{}
	f.mu.Unlock()
	f.log.Info("guest created", "vmid", id.VMID, "incarnation", id.Incarnation, "root", root)
	return g, nil
}

// Guests lists the live guests (not destroyed), ordered by VMID.
func (f *Factory) Guests() []*Guest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*Guest
	for g := range f.guests {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id.VMID < out[j].id.VMID })
	return out
}

// GuestByVMID returns the live guest of a VM, or nil.
func (f *Factory) GuestByVMID(vmid int) *Guest {
	for _, g := range f.Guests() {
		if g.id.VMID == vmid {
			return g
		}
	}
	return nil
}

func (f *Factory) forget(g *Guest) {
	f.mu.Lock()
	delete(f.guests, g)
	f.mu.Unlock()
}

// Close destroys every guest and removes the state directory the factory created.
func (f *Factory) Close() error {
	for _, g := range f.Guests() {
		g.Destroy()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ownDir {
		return os.RemoveAll(f.stateDir)
	}
	return nil
}

// DialGuest connects in memory to a port of the running guest that owns the IP in addr
// ("192.168.0.140:22"). It never dials the network. Errors read like a real dial:
// "dial tcp 192.168.0.140:22: connect: no route to host" while no guest answers on that
// address (none, powered off, early boot), "connect: connection refused" while nothing listens.
func (f *Factory) DialGuest(ctx context.Context, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	port, err := strconv.Atoi(portStr)
	ip := net.ParseIP(host)
	if err != nil || ip == nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("address %s: invalid address (the simulator routes only guest IPs)", addr)}
	}
	taddr := &net.TCPAddr{IP: ip, Port: port}
	fail := func(e syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: taddr, Err: os.NewSyscallError("connect", e)}
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: taddr, Err: err}
	}
	for _, g := range f.Guests() {
		if g.IP() != host {
			continue
		}
		c, errno := g.dial(host, port)
		if errno != 0 {
			return nil, fail(errno)
		}
		return c, nil
	}
	return nil, fail(syscall.EHOSTUNREACH)
}
