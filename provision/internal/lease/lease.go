// Package lease holds one run's exclusive right to work on one VM, kept on the Proxmox side so
// that it works across machines: a line in the VM's config description, written with the
// config digest as a compare-and-swap.
//
// Why this is safe (qemu-server src/PVE/API2/Qemu.pm, update_vm_api): the config PUT checks the
// digest sent against the config's current SHA-1 inside PVE::QemuConfig->lock_config and
// refuses with "checksum mismatch (file change by other user?)" when another write came
// between, so of two runs that read the same config only one can write its lease. The
// description is a fast-plug option (QemuServer.pm $fast_plug_option): it is written at once,
// also while the VM runs, and is not part of the hardware config the tool converges.
//
// A lease names its holder (run id, host, pid) and when it was taken and expires. A lease is
// free when it is absent, expired, held by a dead process on this same host, or named by
// Options.ForceUnlock (an operator taking over a crashed run's lease, as terraform
// force-unlock does).
package lease

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Prefix starts the lease line in the description.
const Prefix = "aimachine-lease:"

// DefaultTTL is how long a lease lives without renewal; a run renews it every TTL/3.
const DefaultTTL = 15 * time.Minute

// Lease is one run's hold on a VM.
type Lease struct {
	RunID   string
	Host    string
	PID     int
	Since   time.Time
	Expires time.Time
}

func (l Lease) String() string {
	return fmt.Sprintf("run %s on host %s (pid %d) since %s", l.RunID, l.Host, l.PID, l.Since.UTC().Format(time.RFC3339))
}

func (l Lease) line() string {
	return fmt.Sprintf("%s run=%s host=%s pid=%d since=%s expires=%s", Prefix, l.RunID, l.Host, l.PID,
		l.Since.UTC().Format(time.RFC3339), l.Expires.UTC().Format(time.RFC3339))
}

var lineRe = regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(Prefix) + ` run=(\S+) host=(\S+) pid=(\d+) since=(\S+) expires=(\S+)[ \t]*$`)

// Parse finds the lease line in a description (also URL-encoded, as some PVE versions keep it).
func Parse(desc string) (Lease, bool) {
	m := lineRe.FindStringSubmatch(desc)
	if m == nil {
		if u, err := url.QueryUnescape(desc); err == nil && u != desc {
			m = lineRe.FindStringSubmatch(u)
		}
	}
	if m == nil {
		return Lease{}, false
	}
	pid, _ := strconv.Atoi(m[3])
	since, err1 := time.Parse(time.RFC3339, m[4])
	exp, err2 := time.Parse(time.RFC3339, m[5])
	if err1 != nil || err2 != nil {
		return Lease{}, false
	}
	return Lease{RunID: m[1], Host: m[2], PID: pid, Since: since, Expires: exp}, true
}

// With returns desc with l as its lease line (replacing any other).
func With(desc string, l Lease) string {
	base := Without(desc)
	if base == "" {
		return l.line()
	}
	return base + "\n" + l.line()
}

// Without returns desc without its lease line.
func Without(desc string) string {
	var keep []string
	for _, ln := range strings.Split(desc, "\n") {
		if strings.HasPrefix(ln, Prefix) {
			continue
		}
		keep = append(keep, ln)
	}
	return strings.TrimRight(strings.Join(keep, "\n"), "\n")
}

// ErrConflict is a write refused because the config changed since it was read.
var ErrConflict = errors.New("the VM config changed since it was read")

// ErrGone is the VM deleted while the lease was being taken or renewed.
var ErrGone = errors.New("the VM does not exist")

// Store reads and writes the description of one VM's config.
type Store interface {
	// Read returns the description, the config digest and its lock ("" when unlocked).
	Read(ctx context.Context) (desc, digest, lock string, err error)
	// Write sets the description when the config's digest is still digest (ErrConflict otherwise).
	Write(ctx context.Context, desc, digest string) error
}

// HeldError is a lease another live run holds.
type HeldError struct {
	VMID   int
	Holder Lease
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("VM %d is in use by another aimachine run: %s, lease until %s", e.VMID, e.Holder, e.Holder.Expires.UTC().Format(time.RFC3339))
}

// Hint says what to do about a held lease.
func (e *HeldError) Hint() string {
	return fmt.Sprintf("wait for that run to finish and re-run; if it crashed, its lease expires at %s, or take it over now with --force-unlock %s (only when that run is really gone)",
		e.Holder.Expires.UTC().Format(time.RFC3339), e.Holder.RunID)
}

// LockedError is a VM whose config PVE has locked (a task owns it), so no lease can be written.
type LockedError struct {
	VMID int
	Lock string
}

func (e *LockedError) Error() string { return fmt.Sprintf("VM %d is locked (%s)", e.VMID, e.Lock) }

// LostError is a lease another run took over (force-unlock, or expired and taken).
type LostError struct {
	VMID   int
	Holder Lease
}

func (e *LostError) Error() string {
	return fmt.Sprintf("lost the lease on VM %d: it is now held by %s", e.VMID, e.Holder)
}

// Options say who takes a lease.
type Options struct {
	VMID  int
	RunID string
	// Host and PID default to os.Hostname and os.Getpid.
	Host string
	PID  int
	TTL  time.Duration // default DefaultTTL
	// ForceUnlock takes over the lease of this run id whatever its state.
	ForceUnlock string
	// Now and Alive default to time.Now and a signal-0 probe of a local pid.
	Now   func() time.Time
	Alive func(pid int) bool
}

func (o *Options) defaults() {
	if o.Host == "" {
		o.Host, _ = os.Hostname()
		o.Host = strings.Map(func(r rune) rune {
			if r <= ' ' {
				return '_'
			}
			return r
		}, o.Host)
		if o.Host == "" {
			o.Host = "unknown"
		}
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Alive == nil {
		o.Alive = alive
	}
}

func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Free reports whether l may be taken by o's run, and why.
func (o Options) free(l Lease) (bool, string) {
	now := o.Now()
	switch {
	case l.RunID == o.RunID:
		return true, ""
	case o.ForceUnlock != "" && l.RunID == o.ForceUnlock:
		return true, "taken over from " + l.String() + " (--force-unlock)"
	case !now.Before(l.Expires):
		return true, "taken over the expired lease of " + l.String()
	case l.Host == o.Host && !o.Alive(l.PID):
		return true, fmt.Sprintf("taken over from %s: that process is gone", l)
	}
	return false, ""
}

// Held is a lease this run holds.
type Held struct {
	o     Options
	st    Store
	mu    sync.Mutex
	lease Lease
	// Note says how the lease was taken over ("" when it was free).
	Note string
}

// Lease is the lease as written.
func (h *Held) Lease() Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease
}

// maxConflicts bounds the compare-and-swap loop (each conflict is another writer's success).
const maxConflicts = 8

// Acquire takes the lease: a *HeldError when another live run holds it, a *LockedError when
// PVE's config lock keeps it from being written, ErrGone when the VM does not exist.
func Acquire(ctx context.Context, st Store, o Options) (*Held, error) {
	o.defaults()
	for i := 0; ; i++ {
		desc, digest, lock, err := st.Read(ctx)
		if err != nil {
			return nil, err
		}
		note := ""
		if cur, ok := Parse(desc); ok {
			free, why := o.free(cur)
			if !free {
				return nil, &HeldError{VMID: o.VMID, Holder: cur}
			}
			note = why
		}
		if lock != "" {
			return nil, &LockedError{VMID: o.VMID, Lock: lock}
		}
		now := o.Now().UTC().Truncate(time.Second)
		l := Lease{RunID: o.RunID, Host: o.Host, PID: o.PID, Since: now, Expires: now.Add(o.TTL)}
		err = st.Write(ctx, With(desc, l), digest)
		if errors.Is(err, ErrConflict) && i < maxConflicts {
			continue // someone wrote in between: look again
		}
		if err != nil {
			return nil, err
		}
		return &Held{o: o, st: st, lease: l, Note: note}, nil
	}
}

// Adopt is the lease this run wrote itself with the create call (the description of a new VM).
func Adopt(st Store, o Options, l Lease) *Held {
	o.defaults()
	return &Held{o: o, st: st, lease: l}
}

// New is the lease a run about to create a VM writes into its description.
func New(o Options) Lease {
	o.defaults()
	now := o.Now().UTC().Truncate(time.Second)
	return Lease{RunID: o.RunID, Host: o.Host, PID: o.PID, Since: now, Expires: now.Add(o.TTL)}
}

// Check reads the config and fails unless this run still holds the lease (a *LostError names
// the new holder).
func (h *Held) Check(ctx context.Context) error {
	desc, _, _, err := h.st.Read(ctx)
	if err != nil {
		return err
	}
	return h.mine(desc)
}

func (h *Held) mine(desc string) error {
	cur, ok := Parse(desc)
	if !ok {
		return &LostError{VMID: h.o.VMID, Holder: Lease{RunID: "(none: the lease line was removed)", Host: "-"}}
	}
	if cur.RunID != h.o.RunID {
		return &LostError{VMID: h.o.VMID, Holder: cur}
	}
	return nil
}

// Renew pushes the expiry out by the TTL; a *LostError when another run holds it now.
func (h *Held) Renew(ctx context.Context) error {
	for i := 0; ; i++ {
		desc, digest, _, err := h.st.Read(ctx)
		if err != nil {
			return err
		}
		if err := h.mine(desc); err != nil {
			return err
		}
		l := h.Lease()
		l.Expires = h.o.Now().UTC().Truncate(time.Second).Add(h.o.TTL)
		err = h.st.Write(ctx, With(desc, l), digest)
		if errors.Is(err, ErrConflict) && i < maxConflicts {
			continue
		}
		if err == nil {
			h.mu.Lock()
			h.lease = l
			h.mu.Unlock()
		}
		return err
	}
}

// Release removes the lease line when this run still holds it; a VM that is gone or held by
// someone else is left alone (nil).
func (h *Held) Release(ctx context.Context) error {
	for i := 0; ; i++ {
		desc, digest, _, err := h.st.Read(ctx)
		if errors.Is(err, ErrGone) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur, ok := Parse(desc); !ok || cur.RunID != h.o.RunID {
			return nil
		}
		err = h.st.Write(ctx, Without(desc), digest)
		if errors.Is(err, ErrConflict) && i < maxConflicts {
			continue
		}
		if errors.Is(err, ErrGone) {
			return nil
		}
		return err
	}
}

// Keep renews the lease every TTL/3 until the returned stop is called; lost is called once
// (from the renewing goroutine) when another run took the lease over, or when renewals failed
// until the lease expired.
func (h *Held) Keep(ctx context.Context, lost func(error)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(h.o.TTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				var le *LostError
				err := h.Renew(ctx)
				if errors.As(err, &le) {
					lost(err)
					return
				}
				// A renewal that keeps failing (API down, token revoked) lets the lease run
				// out: from then on another run may take the VM, so this run must stop too.
				if err != nil && ctx.Err() == nil && !h.o.Now().Before(h.Lease().Expires) {
					lost(fmt.Errorf("the lease on VM %d expired at %s while its renewal failed: %w", h.o.VMID, h.Lease().Expires.Format(time.RFC3339), err))
					return
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
