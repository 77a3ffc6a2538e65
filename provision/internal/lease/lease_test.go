package lease

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is a config with PVE's digest semantics: the SHA-1 of the content, checked and
// written under one lock (update_vm_api's lock_config + $load_and_check_config).
type memStore struct {
	mu     sync.Mutex
	desc   string
	lock   string
	gone   bool
	writes int
	// before runs once inside Write before the digest check (a competing writer).
	before func()
	// down makes every Read fail (the API is unreachable).
	down bool
}

func (m *memStore) digest() string {
	s := sha1.Sum([]byte(m.desc + "\x00" + m.lock))
	return hex.EncodeToString(s[:])
}

func (m *memStore) Read(ctx context.Context) (string, string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return "", "", "", errors.New("connection refused")
	}
	if m.gone {
		return "", "", "", ErrGone
	}
	return m.desc, m.digest(), m.lock, nil
}

func (m *memStore) Write(ctx context.Context, desc, digest string) error {
	if f := m.before; f != nil {
		m.before = nil
		f()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return ErrGone
	}
	if digest != m.digest() {
		return ErrConflict
	}
	m.desc = desc
	m.writes++
	return nil
}

var t0 = time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)

func opts(run string, now *time.Time) Options {
	return Options{VMID: 140, RunID: run, Host: "ws1", PID: 100, TTL: 10 * time.Minute,
		Now: func() time.Time { return *now }, Alive: func(pid int) bool { return pid == 100 }}
}

func TestSecondRunIsRefusedNamingTheHolder(t *testing.T) {
	now := t0
	st := &memStore{desc: "LLM server\n\naimachine: managed; run=r0"}
	ctx := context.Background()
	a, err := Acquire(ctx, st, opts("run-a", &now))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.desc, "LLM server\n\naimachine: managed; run=r0\naimachine-lease: run=run-a host=ws1 pid=100 since=2026-12-05T21:00:00Z") {
		t.Fatalf("description %q", st.desc)
	}
	ob := opts("run-b", &now)
	ob.Host = "ws2"
	_, err = Acquire(ctx, st, ob)
	var he *HeldError
	if !errors.As(err, &he) || he.Holder.RunID != "run-a" || he.Holder.Host != "ws1" {
		t.Fatalf("want HeldError naming run-a: %v", err)
	}
	for _, want := range []string{"run run-a", "host ws1", "since 2026-12-05T21:00:00Z"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if !strings.Contains(he.Hint(), "--force-unlock run-a") {
		t.Errorf("hint %q", he.Hint())
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if st.desc != "LLM server\n\naimachine: managed; run=r0" {
		t.Fatalf("after release %q", st.desc)
	}
	if _, err := Acquire(ctx, st, ob); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestConcurrentWriterMakesTheSwapFail(t *testing.T) {
	now := t0
	st := &memStore{}
	ctx := context.Background()
	// run-b writes its lease between run-a's read and write: run-a's digest is stale, it
	// re-reads and finds run-b's lease.
	ob := opts("run-b", &now)
	ob.Host = "ws2"
	st.before = func() {
		if _, err := Acquire(ctx, st, ob); err != nil {
			t.Errorf("run-b: %v", err)
		}
	}
	_, err := Acquire(ctx, st, opts("run-a", &now))
	var he *HeldError
	if !errors.As(err, &he) || he.Holder.RunID != "run-b" {
		t.Fatalf("want run-b's lease to win: %v (desc %q)", err, st.desc)
	}
}

func TestFreeLeases(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(o *Options, now *time.Time)
		note  string
	}{
		{"expired", func(o *Options, now *time.Time) { *now = now.Add(11 * time.Minute); o.Host = "ws2" }, "expired lease"},
		{"dead process on this host", func(o *Options, now *time.Time) {
			o.PID = 200
			o.Alive = func(pid int) bool { return pid == 200 }
		}, "that process is gone"},
		{"force-unlock", func(o *Options, now *time.Time) { o.Host, o.ForceUnlock = "ws2", "run-a" }, "--force-unlock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			st := &memStore{}
			if _, err := Acquire(ctx, st, opts("run-a", &now)); err != nil {
				t.Fatal(err)
			}
			o := opts("run-b", &now)
			tc.setup(&o, &now)
			h, err := Acquire(ctx, st, o)
			if err != nil || !strings.Contains(h.Note, tc.note) {
				t.Fatalf("want the lease taken over (%q): %v %+v", tc.note, err, h)
			}
			if l, _ := Parse(st.desc); l.RunID != "run-b" {
				t.Fatalf("holder %+v", l)
			}
		})
	}
	// A live process on another host, not expired, not named: held.
	now := t0
	st := &memStore{}
	Acquire(ctx, st, opts("run-a", &now))
	o := opts("run-b", &now)
	o.Host, o.ForceUnlock = "ws2", "run-x"
	if _, err := Acquire(ctx, st, o); err == nil {
		t.Fatal("force-unlock of another run id took the lease")
	}
}

func TestRenewAndLoss(t *testing.T) {
	ctx := context.Background()
	now := t0
	st := &memStore{}
	a, _ := Acquire(ctx, st, opts("run-a", &now))
	now = now.Add(5 * time.Minute)
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := Parse(st.desc); !l.Expires.Equal(t0.Add(15*time.Minute)) || !l.Since.Equal(t0) {
		t.Fatalf("renewed lease %+v", l)
	}
	o := opts("run-b", &now)
	o.Host, o.ForceUnlock = "ws2", "run-a"
	if _, err := Acquire(ctx, st, o); err != nil {
		t.Fatal(err)
	}
	var le *LostError
	if err := a.Renew(ctx); !errors.As(err, &le) || le.Holder.RunID != "run-b" {
		t.Fatalf("renew after a take-over: %v", err)
	}
	if err := a.Check(ctx); !errors.As(err, &le) {
		t.Fatalf("check after a take-over: %v", err)
	}
	// Release after the loss leaves run-b's lease alone.
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := Parse(st.desc); l.RunID != "run-b" {
		t.Fatalf("release removed another run's lease: %q", st.desc)
	}
}

func TestLockedAndGone(t *testing.T) {
	ctx := context.Background()
	now := t0
	st := &memStore{lock: "create"}
	var lk *LockedError
	if _, err := Acquire(ctx, st, opts("run-a", &now)); !errors.As(err, &lk) || lk.Lock != "create" {
		t.Fatalf("locked config: %v", err)
	}
	st = &memStore{gone: true}
	if _, err := Acquire(ctx, st, opts("run-a", &now)); !errors.Is(err, ErrGone) {
		t.Fatalf("gone: %v", err)
	}
	h := Adopt(st, opts("run-a", &now), New(opts("run-a", &now)))
	if err := h.Release(ctx); err != nil {
		t.Fatalf("release of a deleted VM: %v", err)
	}
}

func TestParseRoundTripAndEncoded(t *testing.T) {
	l := Lease{RunID: "20261205T210000-ab12", Host: "ws1", PID: 7, Since: t0, Expires: t0.Add(time.Hour)}
	d := With("x\naimachine-lease: run=old host=h pid=1 since=2026-01-01T00:00:00Z expires=2026-01-01T00:00:00Z", l)
	if strings.Count(d, Prefix) != 1 {
		t.Fatalf("two lease lines: %q", d)
	}
	got, ok := Parse(d)
	if !ok || got != l {
		t.Fatalf("round trip %+v %v", got, ok)
	}
	if got, ok := Parse(strings.ReplaceAll(strings.ReplaceAll(d, " ", "%20"), "\n", "%0A")); !ok || got.RunID != l.RunID {
		t.Fatalf("encoded %+v %v", got, ok)
	}
	if Without(d) != "x" {
		t.Fatalf("without %q", Without(d))
	}
}

// TestKeepRenewsAndReportsALoss: the background renewal pushes the expiry out and reports a
// take-over once.
func TestKeepRenewsAndReportsALoss(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st := &memStore{}
	o := Options{VMID: 140, RunID: "run-a", Host: "ws1", PID: 100, TTL: 30 * time.Millisecond, Now: clock, Alive: func(int) bool { return true }}
	a, err := Acquire(ctx, st, o)
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 2)
	stop := a.Keep(ctx, func(err error) { lost <- err })
	defer stop()
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for !a.Lease().Expires.After(t0.Add(time.Minute)) {
		if time.Now().After(deadline) {
			t.Fatalf("the lease was not renewed: %+v", a.Lease())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ob := o
	ob.RunID, ob.Host, ob.ForceUnlock = "run-b", "ws2", "run-a"
	if _, err := Acquire(ctx, st, ob); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lost:
		var le *LostError
		if !errors.As(err, &le) || le.Holder.RunID != "run-b" {
			t.Fatalf("lost: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the take-over was not reported")
	}
}

// A lease whose renewals keep failing is reported lost once it has expired: another run may
// take the VM from then on, so this run must not go on as if it held it.
func TestKeepReportsALeaseThatExpiredWhileRenewalsFailed(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st := &memStore{}
	o := Options{VMID: 140, RunID: "run-a", Host: "ws1", PID: 100, TTL: 30 * time.Millisecond, Now: clock, Alive: func(int) bool { return true }}
	a, err := Acquire(ctx, st, o)
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.down = true
	st.mu.Unlock()
	lost := make(chan error, 2)
	stop := a.Keep(ctx, func(err error) { lost <- err })
	defer stop()
	mu.Lock()
	now = now.Add(time.Hour) // past Expires: the failed renewals let it run out
	mu.Unlock()
	select {
	case err := <-lost:
		if !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("lost: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lease that expired while its renewals failed was not reported")
	}
}
