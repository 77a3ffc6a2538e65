package aimachine_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/steps"
)

// InitializeTestSuite starts what every scenario shares (the simulator, built images).
func InitializeTestSuite(ts *godog.TestSuiteContext) { steps.RegisterSuite(ts) }

// InitializeScenario registers the step definitions; each scenario gets a fresh World.
func InitializeScenario(sc *godog.ScenarioContext) { steps.Register(sc) }

// TestFeatures runs features/ through go test. Tags come from GODOG_TAGS (default
// "@fake && ~@wip"), never from --godog.* flags (they break `go test ./...`); the target from
// AIMACHINE_TARGET (container | inprocess | live; default: container when Docker answers).
// It fails when any step is not passed (reports/cucumber.json is checked after the run).
func TestFeatures(t *testing.T) {
	o := steps.Options()
	o.TestingT = t
	if v := os.Getenv("GODOG_RANDOM"); v != "" {
		seed, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("GODOG_RANDOM=%q: want an integer seed (-1 picks one): %v", v, err)
		}
		o.Randomize = seed
	}
	if st := (godog.TestSuite{Name: "aimachine", TestSuiteInitializer: InitializeTestSuite,
		ScenarioInitializer: InitializeScenario, Options: &o}).Run(); st != 0 {
		t.Fatalf("godog exit status %d", st)
	}
	// Strict fails undefined and pending steps; a skipped step or an empty selection fails too.
	if err := steps.CheckReport(steps.CucumberReport()); err != nil {
		t.Fatal(err)
	}
}
