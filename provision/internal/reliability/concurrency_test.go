package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// concScale makes a fresh deploy take a few seconds of wall time, so that runs started up to
// half a second apart overlap.
const concScale = 0.01

// runID is the run id a deploy prints on success ("(run ID)").
var runIDRe = regexp.MustCompile(`\(run ([0-9T]+-[0-9a-f]{4})\)`)

// holderRe finds the lease holder a refusal names.
var holderRe = regexp.MustCompile(`in use by another aimachine run: run ([0-9T]+-[0-9a-f]{4}) on host (\S+) \(pid (\d+)\) since (\S+),`)

type timedRun struct {
	r          result
	start, end time.Time
}

// startDeploys runs one deploy per stagger, each started that long after the first.
func startDeploys(h *harness, ctx context.Context, staggers []time.Duration) []timedRun {
	out := make([]timedRun, len(staggers))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, d := range staggers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(t0.Add(d)))
			out[i].start = time.Now()
			out[i].r = h.deploy(ctx)
			out[i].end = time.Now()
		}()
	}
	wg.Wait()
	return out
}

// checkOneWinner asserts that exactly the first run to finish its work won, every other run
// that overlapped it was refused naming the winner's lease, and VM 140 verifies.
func checkOneWinner(t *testing.T, h *harness, ctx context.Context, runs []timedRun) {
	t.Helper()
	var winners []int
	for i, r := range runs {
		if r.r.code == 0 {
			winners = append(winners, i)
		}
	}
	if len(winners) == 0 {
		for i, r := range runs {
			logRun(t, fmt.Sprintf("run %d", i), r.r)
		}
		t.Fatal("no run succeeded")
	}
	w := winners[0]
	m := runIDRe.FindStringSubmatch(runs[w].r.stdout)
	if m == nil {
		t.Fatalf("the winner printed no run id:\n%s", runs[w].r)
	}
	winID := m[1]
	for i, r := range runs {
		if i == w {
			continue
		}
		if r.r.code == 0 {
			// Only a run that started after the winner finished may succeed too (it converges).
			if !r.start.After(runs[w].end) && !runs[w].start.After(r.end) {
				t.Errorf("runs %d and %d overlapped and both succeeded:\n%s\n---\n%s", w, i, runs[w].r, r.r)
			}
			continue
		}
		hm := holderRe.FindStringSubmatch(r.r.stderr)
		if hm == nil || hm[1] != winID {
			t.Errorf("run %d lost but does not name the lease holder %s:\n%s", i, winID, r.r)
			continue
		}
		if !strings.Contains(r.r.stderr, "--force-unlock "+winID) || !strings.Contains(r.r.stderr, "hint:") {
			t.Errorf("run %d: the refusal does not say what to do:\n%s", i, r.r)
		}
		if strings.Contains(r.r.stderr, "rolled back") || strings.Contains(r.r.stderr, "roll back VM") {
			t.Errorf("the losing run %d rolled something back:\n%s", i, r.r)
		}
	}
	if v := h.vm(140); v == nil || v.Status != "running" {
		t.Fatalf("VM 140 after the race: %+v", v)
	}
	if r := h.verify(ctx); r.code != 0 {
		t.Fatalf("aimachine verify after the race:\n%s", r)
	}
	h.checkClean(t)
}

// TestSixPairsOfDeploysLeaveOneVerifiedVM is the Done-when of issue 12: pairs of deploys of
// one VM started 0, 0.1 … 0.5 s apart each leave a VM that verify passes, and the losing run
// names the lease holder.
func TestSixPairsOfDeploysLeaveOneVerifiedVM(t *testing.T) {
	for i := 0; i < 6; i++ {
		stagger := time.Duration(i) * 100 * time.Millisecond
		t.Run(fmt.Sprintf("stagger-%s", stagger), func(t *testing.T) {
			h := newHarness(t, hopts{scale: concScale})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			runs := startDeploys(h, ctx, []time.Duration{0, stagger})
			refused := 0
			for _, r := range runs {
				if r.r.code != 0 {
					refused++
				}
			}
			if refused != 1 {
				for i, r := range runs {
					logRun(t, fmt.Sprintf("run %d (%s–%s)", i, r.start.Format("15:04:05.000"), r.end.Format("15:04:05.000")), r.r)
				}
				t.Fatalf("want exactly one refused run of the overlapping pair, got %d", refused)
			}
			checkOneWinner(t, h, ctx, runs)
		})
	}
}

// TestRandomlyStaggeredDeploys: 2–4 deploys of one VM with random staggers (up to 0.5 s): one
// VM, verified; every overlapping loser names the winner.
func TestRandomlyStaggeredDeploys(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d", seed)
	for n := 2; n <= 4; n++ {
		t.Run(fmt.Sprintf("%d-runs", n), func(t *testing.T) {
			h := newHarness(t, hopts{scale: concScale})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			st := make([]time.Duration, n)
			for i := 1; i < n; i++ {
				st[i] = time.Duration(rng.IntN(500)) * time.Millisecond
			}
			t.Logf("staggers %v", st)
			checkOneWinner(t, h, ctx, startDeploys(h, ctx, st))
		})
	}
}
