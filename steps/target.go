package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/aimachine/aimachine/fakes/container"
	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/provision"
)

// Targets (AIMACHINE_TARGET).
const (
	TargetContainer = "container" // pvesim in testcontainers (CI; the default when Docker answers)
	TargetInProcess = "inprocess" // pvesim in this process (no Docker; also the fallback outside CI)
	TargetLive      = "live"      // the real Proxmox host named by PROXMOX_VE_* (@live scenarios only)
)

// target is what the scenarios run against: a simulator (container or in-process) or a real host.
type target struct {
	kind string
	sim  sim.Target // nil for live
	// env is where connection settings come from: the simulator's endpoint, or os.Getenv.
	env func(string) string
}

// simulated reports whether the target is a simulator (reset per scenario, fault injection).
func (t *target) simulated() bool { return t.sim != nil }

// endpoint is the simulator's endpoint (zero for live).
func (t *target) endpoint() sim.Endpoint {
	if t.sim == nil {
		return sim.Endpoint{}
	}
	return t.sim.Info()
}

// chooseTarget picks the target from AIMACHINE_TARGET, or Docker's health: container when it
// answers, in-process otherwise — except under CI=true, where a missing Docker is an error.
func chooseTarget(ctx context.Context, getenv func(string) string, docker func(context.Context) error) (string, string, error) {
	switch k := getenv("AIMACHINE_TARGET"); k {
	case TargetContainer, TargetInProcess, TargetLive:
		return k, "AIMACHINE_TARGET=" + k, nil
	case "":
	default:
		return "", "", fmt.Errorf("AIMACHINE_TARGET=%q: want %s, %s or %s", k, TargetContainer, TargetInProcess, TargetLive)
	}
	derr := docker(ctx)
	if derr == nil {
		return TargetContainer, "Docker answers", nil
	}
	if getenv("CI") == "true" {
		return "", "", fmt.Errorf("CI=true needs the container target: %w; AIMACHINE_TARGET=inprocess runs the simulator in the test process instead", derr)
	}
	return TargetInProcess, "Docker is not available (" + derr.Error() + ")", nil
}

// timeScale is the simulator's time scale: AIMACHINE_TIME_SCALE, default 0 (instant).
func timeScale(getenv func(string) string) (float64, error) {
	v := getenv("AIMACHINE_TIME_SCALE")
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("AIMACHINE_TIME_SCALE=%q: want a number >= 0", v)
	}
	return f, nil
}

// startTarget starts the suite's target once; the caller stores the error (BeforeSuite returns none).
func startTarget(ctx context.Context, getenv func(string) string) (*target, error) {
	kind, why, err := chooseTarget(ctx, getenv, container.DockerAvailable)
	if err != nil {
		return nil, err
	}
	if kind == TargetLive {
		if err := checkLive(getenv); err != nil {
			return nil, err
		}
		fmt.Fprintln(os.Stderr, "aimachine scenarios: target live — the real Proxmox host named by PROXMOX_VE_* ("+why+")")
		return &target{kind: kind, env: getenv}, nil
	}
	scale, err := timeScale(getenv)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var s sim.Target
	switch kind {
	case TargetContainer:
		s, err = container.Start(ctx, container.Options{TimeScale: scale})
	default:
		fmt.Fprintln(os.Stderr, "aimachine scenarios: target inprocess — the simulator runs inside the test process ("+why+")")
		s, err = sim.Start(ctx, sim.Options{TimeScale: scale})
	}
	if err != nil {
		return nil, fmt.Errorf("start the %s simulator: %w", kind, err)
	}
	env := s.Info().Env()
	// Only the live target may dial a non-loopback address: a simulator's settings put the tool
	// in simulator mode (a loopback API endpoint, loopback-only SSH dials).
	if env[provision.EnvSimulator] != "1" {
		_ = s.Close()
		return nil, fmt.Errorf("the %s simulator's environment does not set %s=1: refusing to run without loopback-only mode", kind, provision.EnvSimulator)
	}
	return &target{kind: kind, sim: s, env: func(k string) string { return env[k] }}, nil
}

// checkLive refuses the live target from CI and without credentials, before anything is dialled.
func checkLive(getenv func(string) string) error {
	if getenv("CI") == "true" {
		return errors.New("AIMACHINE_TARGET=live under CI=true: refusing to touch a real Proxmox host from CI")
	}
	if _, err := provision.ConnOptionsFromEnv(getenv); err != nil {
		return fmt.Errorf("AIMACHINE_TARGET=live needs the credentials of the real Proxmox host: %w", err)
	}
	return nil
}

func (t *target) close() error {
	if t == nil || t.sim == nil {
		return nil
	}
	return t.sim.Close()
}

// errNoSimulator is returned by simulator-only steps on a live target.
var errNoSimulator = errors.New("this step needs the simulator (AIMACHINE_TARGET=container or inprocess); it never runs against a real host")
