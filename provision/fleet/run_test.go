package fleet

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunBoundsAndKeepsGoing(t *testing.T) {
	vms := []string{"a", "b", "c", "d", "e", "f"}
	var now, peak atomic.Int32
	rs := Run(context.Background(), vms, Options{Parallel: 2}, func(ctx context.Context, vm string) Result {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		now.Add(-1)
		if vm == "b" {
			return Result{Node: "pve1", Err: errors.New("boom")}
		}
		return Result{Node: "pve2", Changed: 3}
	})
	if peak.Load() > 2 {
		t.Errorf("%d at once, want at most 2", peak.Load())
	}
	if Failures(rs) != 1 || rs[1].Result != "failed" || rs[5].Result != "ok" || rs[5].VM != "f" || rs[0].Changed != 3 {
		t.Errorf("results %+v", rs)
	}
	var b bytes.Buffer
	Table(&b, rs, time.Second)
	for _, want := range []string{"VM  NODE  RESULT  CHANGED  TIME", "b   pve1  failed  0", "6 VMs: 5 ok, 1 failed", "  b: boom"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestRunFailFast(t *testing.T) {
	var mu sync.Mutex
	var started []string
	rs := Run(context.Background(), []string{"a", "b", "c"}, Options{Parallel: 1, FailFast: true}, func(ctx context.Context, vm string) Result {
		mu.Lock()
		started = append(started, vm)
		mu.Unlock()
		return Result{Err: errors.New("down")}
	})
	if len(started) != 1 || rs[1].Result != "skipped" || !strings.Contains(rs[2].Err.Error(), "a failed (--fail-fast)") {
		t.Errorf("started %v, results %+v", started, rs)
	}
}

func TestLinesPrefixWholeLines(t *testing.T) {
	var b bytes.Buffer
	l := NewLines(&b, []string{"a", "long"})
	w := l.For("a")
	_, _ = w.Write([]byte("✓ one"))
	_, _ = l.For("long").Write([]byte("✓ two\n"))
	_, _ = w.Write([]byte(" done\n"))
	if got := b.String(); got != "long │ ✓ two\na    │ ✓ one done\n" {
		t.Errorf("got %q", got)
	}
}
