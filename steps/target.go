package steps

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
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
// tags is the run's tag expression: one that selects only @live scenarios refuses any target
// but live, before a simulator starts.
func startTarget(ctx context.Context, getenv func(string) string, tags string) (*target, error) {
	kind, why, err := chooseTarget(ctx, getenv, container.DockerAvailable)
	if err != nil {
		return nil, err
	}
	if kind != TargetLive && requiresLive(tags) {
		err := liveRefusal(tags, kind, getenv)
		fmt.Fprintln(os.Stderr, "aimachine scenarios: no target:", err)
		return nil, err
	}
	if kind == TargetLive {
		if err := checkLive(getenv); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "aimachine scenarios: target live — the real Proxmox host at %s (%s)\n", endpointHost(getenv(provision.EnvEndpoint)), why)
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
		fmt.Fprintln(os.Stderr, "aimachine scenarios: target container — the simulator (pvesim) in a Docker container ("+why+")")
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
	fmt.Fprintf(os.Stderr, "aimachine scenarios: simulated Proxmox VE API at %s (time scale %g)\n", env[provision.EnvEndpoint], scale)
	return &target{kind: kind, sim: s, env: func(k string) string { return env[k] }}, nil
}

// liveRefusal is the error of @live scenarios selected without the live target: it names the
// target problem (AIMACHINE_TARGET, and the credentials that are missing).
func liveRefusal(tags, kind string, getenv func(string) string) error {
	msg := fmt.Sprintf("the tags %q select @live scenarios, which run only against the real Proxmox host, but the target is %s (a simulator): refused", tags, kind)
	if err := checkLive(getenv); err != nil {
		reason, _, _ := strings.Cut(err.Error(), " (hint:")
		msg += "; " + reason
	} else {
		msg += "; the PROXMOX_VE_* credentials are set, AIMACHINE_TARGET is not live"
	}
	return fmt.Errorf("%w: %s (hint: export AIMACHINE_TARGET=live with the real host's PROXMOX_VE_* credentials, or run make deploy-vm-llm-aimachine, which checks them and runs the @live scenarios in order)", errLiveRefused, msg)
}

// errLiveRefused marks the refusal of @live scenarios without the live target.
var errLiveRefused = errors.New("@live scenarios need the live target")

// tagsOf returns the run's tag expression: the godog CLI's -t/--tags (the binary that `go
// tool godog run` builds gets the same arguments), else GODOG_TAGS, else DefaultTags.
func tagsOf(args []string, getenv func(string) string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "-t" || a == "--tags" || a == "--godog.tags") && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, "--tags="), strings.HasPrefix(a, "--godog.tags="):
			_, v, _ := strings.Cut(a, "=")
			return v
		case strings.HasPrefix(a, "-t") && !strings.HasPrefix(a, "-test.") && len(a) > 2:
			return strings.TrimPrefix(a[2:], "=")
		}
	}
	if t := getenv("GODOG_TAGS"); t != "" {
		return t
	}
	return DefaultTags
}

// matchTags is godog's tag filter (v0.15 internal/tags.match): "&&" joins clauses that must
// all hold, "," joins alternatives within a clause, "~" negates a tag.
func matchTags(expr string, tags []string) bool {
	has := func(t string) bool {
		for _, x := range tags {
			if strings.TrimPrefix(x, "@") == t {
				return true
			}
		}
		return false
	}
	if strings.TrimSpace(expr) == "" {
		return true
	}
	for _, clause := range strings.Split(expr, "&&") {
		ok := false
		for _, t := range strings.Split(clause, ",") {
			t = strings.ReplaceAll(strings.TrimSpace(t), "@", "")
			if t == "" {
				continue
			}
			if t[0] == '~' {
				ok = ok || !has(t[1:])
			} else {
				ok = ok || has(t)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// selectedForLive reports a scenario that the expression selects only because it is tagged
// @live (it would not be selected without that tag).
func selectedForLive(expr string, tags []string) bool {
	var without []string
	for _, t := range tags {
		if t != "@live" {
			without = append(without, t)
		}
	}
	return matchTags(expr, tags) && !matchTags(expr, without)
}

// requiresLive reports an expression with a clause that is exactly @live: it selects nothing
// but @live scenarios.
func requiresLive(expr string) bool {
	for _, clause := range strings.Split(expr, "&&") {
		if strings.TrimSpace(clause) == "@live" {
			return true
		}
	}
	return false
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

// endpointHost is the endpoint without anything that could be a credential (user:password@,
// query): only scheme, host and path are printed.
func endpointHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "(unparsable endpoint)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}
