package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/guest"
)

// DefaultTags is what CI runs: every simulator scenario.
const DefaultTags = "@fake && ~@wip"

// Options are the godog options shared by `go test` (TestFeatures). The godog CLI builds its own
// from flags: keep the Makefile's `go tool godog run` flags in step with these.
func Options() godog.Options {
	tags := os.Getenv("GODOG_TAGS")
	if tags == "" {
		tags = DefaultTags
	}
	reports := reportsDir()
	format := "pretty"
	if err := os.MkdirAll(reports, 0o755); err == nil {
		format += ",junit:" + filepath.Join(reports, "junit.xml") + ",cucumber:" + filepath.Join(reports, "cucumber.json")
	}
	return godog.Options{
		Paths:    []string{"features"},
		Format:   format,
		Strict:   true,
		NoColors: true,
		Tags:     tags,
	}
}

// suite holds what every scenario shares: the target (a simulator started once, or the live host).
var suite struct {
	mu  sync.Mutex
	t   *target
	err error
	// failed names the first failed scenario (AIMACHINE_STOP_ON_FAILURE=1 stops there).
	failed string
	// tags is the run's tag expression (tagsOf).
	tags string
}

// stopOnFailure: after a failed scenario, every later one fails at once without touching the
// target. It replaces godog's --stop-on-failure, whose cucumber formatter panics on the
// scenarios it did not run (godog v0.15.1, cucumber/godog#387, fix pending in PR #717).
func stopOnFailure() bool { return os.Getenv("AIMACHINE_STOP_ON_FAILURE") == "1" }

// RegisterSuite starts the target in BeforeSuite (the error is stored and returned by the
// Before hook of every scenario that needs it) and stops it in AfterSuite.
func RegisterSuite(ts *godog.TestSuiteContext) {
	ts.BeforeSuite(func() {
		suite.mu.Lock()
		defer suite.mu.Unlock()
		suite.tags = tagsOf(os.Args[1:], os.Getenv)
		suite.t, suite.err = startTarget(context.Background(), os.Getenv, suite.tags)
	})
	ts.AfterSuite(func() {
		suite.mu.Lock()
		defer suite.mu.Unlock()
		if err := suite.t.close(); err != nil {
			fmt.Fprintln(os.Stderr, "aimachine scenarios: stop the simulator:", err)
		}
		suite.t = nil
	})
}

func scenarioTags(s *godog.Scenario) []string {
	out := make([]string, len(s.Tags))
	for i, t := range s.Tags {
		out[i] = t.Name
	}
	return out
}

func hasTag(s *godog.Scenario, tag string) bool {
	for _, t := range s.Tags {
		if t.Name == tag {
			return true
		}
	}
	return false
}

// Register wires a fresh World's steps into one scenario.
func Register(sc *godog.ScenarioContext) { register(sc) }

// register wires a fresh World into sc and returns it (tests add steps of their own).
func register(sc *godog.ScenarioContext) *World {
	w := &World{}
	sc.Before(func(ctx context.Context, s *godog.Scenario) (context.Context, error) {
		w.scenario = s
		suite.mu.Lock()
		refused := suite.err
		suite.mu.Unlock()
		if errors.Is(refused, errLiveRefused) {
			return ctx, refused // even the catalog-only scenario: @live was asked for, no live target
		}
		if hasTag(s, "@catalog") || hasTag(s, "@offline") {
			return ctx, nil // scenario 9 and the @offline scenarios read files and use loopback only
		}
		suite.mu.Lock()
		t, err, failed, tags := suite.t, suite.err, suite.failed, suite.tags
		suite.mu.Unlock()
		if err != nil {
			return ctx, err
		}
		if failed != "" && stopOnFailure() {
			return ctx, fmt.Errorf("not run: scenario %q failed before it (AIMACHINE_STOP_ON_FAILURE=1)", failed)
		}
		if t == nil {
			return ctx, errors.New("the scenario target was not started (BeforeSuite did not run)")
		}
		if t.kind == TargetLive && !hasTag(s, "@live") {
			return ctx, fmt.Errorf("scenario %q is not tagged @live: it never runs against a real host", s.Name)
		}
		if t.simulated() && selectedForLive(tags, scenarioTags(s)) {
			return ctx, liveRefusal(tags, t.kind, os.Getenv)
		}
		return ctx, w.setupDeploy(ctx, t)
	})
	sc.After(func(ctx context.Context, s *godog.Scenario, err error) (context.Context, error) {
		if err != nil {
			suite.mu.Lock()
			if suite.failed == "" {
				suite.failed = s.Name
			}
			suite.mu.Unlock()
		}
		w.cleanup()
		return ctx, nil
	})
	sc.StepContext().After(func(ctx context.Context, st *godog.Step, status godog.StepResultStatus, err error) (context.Context, error) {
		if status != godog.StepFailed {
			return ctx, nil
		}
		return godog.Attach(ctx, w.attachments(ctx, err)...), nil
	})
	w.registerCatalogSteps(sc)
	w.registerDeploySteps(sc)
	w.registerGPUSteps(sc)
	w.registerServiceSteps(sc)
	w.registerFailureSteps(sc)
	w.registerOperatorSteps(sc)
	w.registerReadinessSteps(sc)
	w.registerModelSteps(sc)
	w.registerLeaseSteps(sc)
	w.registerHostileSteps(sc)
	w.registerFleetSteps(sc)
	return w
}

// attachments are the transcripts of a failed step: the scenario log (progress, SSH commands
// and their output), the failed run's log bundle, and the simulator's API request log, all
// with secrets redacted.
func (w *World) attachments(ctx context.Context, err error) []godog.Attachment {
	var out []godog.Attachment
	w.mu.Lock()
	log := w.log.String()
	w.mu.Unlock()
	if log != "" {
		out = append(out, godog.Attachment{Body: []byte(log), FileName: "scenario.log", MediaType: "text/plain"})
	}
	var te *provision.TaskError
	found := errors.As(err, &te) || errors.As(w.deployErr, &te) || errors.As(w.guestErr, &te)
	if err != nil {
		body := err.Error()
		if found && te.Log != "" && !strings.Contains(body, te.Log) {
			body += "\n\nlog tail of " + te.Task + ":\n" + te.Log
		}
		out = append(out, godog.Attachment{Body: []byte(guest.RedactAll(body, w.secrets)), FileName: "error.txt", MediaType: "text/plain"})
	}
	if found {
		if te.Bundle != "" {
			for _, f := range []string{"failure.txt", "transcript.log"} {
				if b, rerr := os.ReadFile(filepath.Join(te.Bundle, f)); rerr == nil {
					out = append(out, godog.Attachment{Body: []byte(guest.RedactAll(string(b), w.secrets)), FileName: f, MediaType: "text/plain"})
				}
			}
		}
	}
	if w.t != nil && w.t.simulated() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if reqs, rerr := w.t.sim.Control().Requests(cctx); rerr == nil {
			if len(reqs) > 300 {
				reqs = reqs[len(reqs)-300:]
			}
			if b, jerr := json.MarshalIndent(reqs, "", "  "); jerr == nil {
				out = append(out, godog.Attachment{Body: []byte(guest.RedactAll(string(b), w.secrets)), FileName: "api-requests.json", MediaType: "application/json"})
			}
		}
	}
	return out
}
