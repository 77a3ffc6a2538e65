package fleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/fleet"
)

// BenchmarkFleetDeploy is `aimachine deploy --all` on the four-node topology against a
// deploy of one VM, at the same simulated durations (the simulator's time scale,
// AIMACHINE_BENCH_SCALE, default 0.01: PVE tasks, boot, cloud-init and the guest phase's
// apt/pip/driver work take that fraction of their real time). Each iteration resets the
// simulator, deploys one VM in full (guest phase and proof included), resets again and deploys
// the eight at --parallel 8 and at the default --parallel 4. Metrics:
//
//	8vm/1vm        wall time of the eight (parallel 8) over the one; target ≤ 1.5
//	8vm-p4/1vm     the same at the default --parallel 4 (two waves)
//	requests/vm    API requests per VM of the eight-VM deploy (placement included)
//	requests/1vm   API requests of the one-VM deploy
//
// Run: go test -run '^$' -bench BenchmarkFleetDeploy -benchtime 3x ./provision/fleet/
func BenchmarkFleetDeploy(b *testing.B) {
	scale := 0.01
	if v := os.Getenv("AIMACHINE_BENCH_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b.Fatal(err)
		}
		scale = f
	}
	s, c := startFleet(b, scale)
	cat := loadFleet(b, s, nil)
	all, _ := fleet.Select(cat, "", true)
	ctx := context.Background()
	e := s.Info()
	dir := b.TempDir()

	deploy := func(names []string, parallel int) (time.Duration, int) {
		if err := s.Control().Reset(ctx); err != nil {
			b.Fatal(err)
		}
		kh := filepath.Join(dir, fmt.Sprintf("known_hosts-%d", time.Now().UnixNano()))
		copyFile(b, e.KnownHostsFile, kh)
		ssh := provision.SSHOptions{KnownHostsFile: kh, KeyFile: e.SSHKeyFile, Jump: e.JumpHost()}
		start := time.Now()
		placed, _, err := fleet.Place(ctx, c.API(), cat, names)
		if err != nil {
			b.Fatal(err)
		}
		rs := fleet.Run(ctx, names, fleet.Options{Parallel: parallel}, func(ctx context.Context, vm string) fleet.Result {
			res, err := c.Deploy(ctx, placed, vm, provision.DeployOptions{SSH: ssh, Heartbeat: -1})
			if res != nil && res.Runner != nil {
				res.Runner.Close()
			}
			return fleet.Result{Err: err}
		})
		took := time.Since(start)
		for _, r := range rs {
			if r.Err != nil {
				b.Fatalf("%s: %v", r.VM, r.Err)
			}
		}
		st, err := s.Control().Stats(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return took, st.API.Total
	}
	var one, eight, eightP4 time.Duration
	var req1, req8 int
	for b.Loop() {
		t1, r1 := deploy(all[:1], 1)
		t8, r8 := deploy(all, 8)
		t4, _ := deploy(all, fleet.DefaultParallel)
		one, eight, eightP4 = one+t1, eight+t8, eightP4+t4
		req1, req8 = req1+r1, req8+r8
	}
	b.ReportMetric(float64(eight)/float64(one), "8vm/1vm")
	b.ReportMetric(float64(eightP4)/float64(one), "8vm-p4/1vm")
	b.ReportMetric(float64(req8)/float64(b.N)/8, "requests/vm")
	b.ReportMetric(float64(req1)/float64(b.N), "requests/1vm")
	b.ReportMetric(float64(one.Milliseconds())/float64(b.N), "ms/1vm")
	b.ReportMetric(float64(eight.Milliseconds())/float64(b.N), "ms/8vm")
}
