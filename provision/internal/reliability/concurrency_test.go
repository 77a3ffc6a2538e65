//go:build reliability

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

// TestDeployAndDestroyAtOnce: a deploy and a destroy of the same VM started up to 0.5 s
// apart, on a fresh host and on a deployed VM. Whatever the order, the outcome is one of the
// documented ones: the later run is refused naming the earlier one's lease, or it ran after
// the other had finished. A VM that exists runs and verifies; nothing is half-deleted.
func TestDeployAndDestroyAtOnce(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d", seed)
	for _, existing := range []bool{false, true} {
		t.Run(map[bool]string{false: "fresh", true: "deployed"}[existing], func(t *testing.T) {
			h := newHarness(t, hopts{scale: concScale})
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			if existing {
				if r := h.deploy(ctx); r.code != 0 {
					t.Fatalf("first deploy:\n%s", r)
				}
				// Stopped, so that the re-run has work to do (start, agent) and overlaps.
				if err := h.s.API().KillQEMU(140); err != nil {
					t.Fatal(err)
				}
			}
			stagger := time.Duration(rng.IntN(500)) * time.Millisecond
			var dep, des timedRun
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				dep.start = time.Now()
				dep.r = h.deploy(ctx)
				dep.end = time.Now()
			}()
			go func() {
				defer wg.Done()
				time.Sleep(stagger)
				des.start = time.Now()
				des.r = h.cli(ctx, "destroy", "--vm", vmName, "--yes")
				des.end = time.Now()
			}()
			wg.Wait()
			t.Logf("destroy %s after the deploy: deploy exit %d, destroy exit %d", stagger, dep.r.code, des.r.code)
			logRun(t, "deploy", dep.r)
			logRun(t, "destroy", des.r)
			h.checkClean(t)
			overlap := dep.start.Before(des.end) && des.start.Before(dep.end)
			v := h.vm(140)
			switch {
			case dep.r.code == 0 && des.r.code != 0:
				// The destroy was refused: the deploy held the lease.
				if !holderRe.MatchString(des.r.stderr) {
					t.Fatalf("destroy failed without naming the lease holder:\n%s", des.r)
				}
				if v == nil {
					t.Fatal("the deploy succeeded, the destroy was refused, and VM 140 is gone")
				}
			case dep.r.code != 0 && des.r.code == 0:
				// The destroy held the lease: the deploy was refused naming it.
				// Either the destroy's lease was seen, or the destroy deleted the VM between
				// the deploy's read and its lease write (the documented ErrGone refusal).
				gone := strings.Contains(dep.r.stderr, "was deleted after this run read it")
				if !gone && (!holderRe.MatchString(dep.r.stderr) || !strings.Contains(dep.r.stderr, "run destroy-")) {
					t.Fatalf("deploy failed without naming the destroy's lease:\n%s", dep.r)
				}
				if v != nil {
					t.Fatalf("the destroy succeeded but VM 140 exists: %+v", v)
				}
			case dep.r.code == 0 && des.r.code == 0:
				// No overlap: one ran after the other.
				// Both succeed only when they did not hold the VM at the same time: the destroy
				// found nothing yet, or ran entirely before or after the deploy.
				// The process lifetimes may still overlap by a few milliseconds (the deploy
				// gives its lease back before its process exits), so the order is read from
				// the outcome: a destroy that deleted ran after the deploy and left no VM; one
				// that found nothing ran before it and the deploy's VM stands.
				deleted := strings.Contains(des.r.stdout, "deleted")
				if deleted != (v == nil) {
					t.Fatalf("state and outcome disagree (overlap of the processes %v): VM %+v, destroy deleted %v\n%s\n---\n%s", overlap, v, deleted, dep.r, des.r)
				}
			default:
				t.Fatalf("both failed:\n%s\n---\n%s", dep.r, des.r)
			}
			if v != nil {
				if v.Status != "running" {
					t.Fatalf("VM 140 is left %s", v.Status)
				}
				if r := h.verify(ctx); r.code != 0 {
					t.Fatalf("verify:\n%s", r)
				}
			}
			// Whatever happened, a deploy now converges.
			h.converges(t, ctx)
		})
	}
}

// TestTwoCatalogsWantTheSameGPU: VM 140 of one catalog and VM 141 of another pass the same GPU
// through and deploy at once. Exactly one ends running with the GPU and verifies; the other is
// refused naming the VM that holds the GPU and leaves nothing behind (its VM rolled back).
func TestTwoCatalogsWantTheSameGPU(t *testing.T) {
	h := newHarness(t, hopts{scale: concScale})
	h.ours[141] = true
	other := h.writeCatalog("other.yml", func(s string) string {
		return strings.Replace(s, "id: 140\n    name: vm-llm-aimachine", "id: 141\n    name: vm-llm-other", 1)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var a, b result
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = h.deploy(ctx) }()
	go func() { defer wg.Done(); b = h.cli(ctx, "deploy", "--vm", "vm-llm-other", "--catalog", other) }()
	wg.Wait()
	if (a.code == 0) == (b.code == 0) {
		t.Fatalf("want exactly one deploy to get the GPU:\n%s\n---\n%s", a, b)
	}
	win, lose, loseID, winID, winName, winCat := a, b, 141, 140, vmName, h.catalog
	if b.code == 0 {
		win, lose, loseID, winID, winName, winCat = b, a, 140, 141, "vm-llm-other", other
	}
	_ = win
	if !strings.Contains(lose.stderr, fmt.Sprintf("VMID '%d'", winID)) && !strings.Contains(lose.stderr, fmt.Sprintf("VM %d", winID)) {
		t.Errorf("the refused deploy does not name VM %d, which holds the GPU:\n%s", winID, lose)
	}
	if !strings.Contains(lose.stderr, "hint:") {
		t.Errorf("the refusal says nothing about what to do:\n%s", lose)
	}
	if v := h.vm(loseID); v != nil {
		t.Errorf("the losing VM %d was left behind: %+v", loseID, v)
	}
	if v := h.vm(winID); v == nil || v.Status != "running" {
		t.Fatalf("the winning VM %d: %+v", winID, v)
	}
	if r := h.cli(ctx, "verify", "--vm", winName, "--catalog", winCat); r.code != 0 {
		t.Fatalf("verify VM %d:\n%s", winID, r)
	}
	h.checkClean(t)
}
