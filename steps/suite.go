package steps

import (
	"context"
	"os"
	"path/filepath"

	"github.com/cucumber/godog"
)

// DefaultTags is what CI runs: every simulator scenario that is implemented.
const DefaultTags = "@fake && ~@wip"

// Options are the godog options shared by `go test` (TestFeatures). The godog CLI builds its own
// from flags: keep the Makefile's `go tool godog run` flags in step with these.
func Options() godog.Options {
	tags := os.Getenv("GODOG_TAGS")
	if tags == "" {
		tags = DefaultTags
	}
	reports := os.Getenv("AIMACHINE_REPORTS")
	if reports == "" {
		reports = "reports"
	}
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

// RegisterSuite wires suite-wide hooks.
func RegisterSuite(ts *godog.TestSuiteContext) {
	ts.AfterSuite(func() {})
}

// Register wires a fresh World's steps into one scenario.
func Register(sc *godog.ScenarioContext) {
	w := &World{}
	sc.Before(func(ctx context.Context, s *godog.Scenario) (context.Context, error) {
		w.scenario = s
		return ctx, nil
	})
	w.registerCatalogSteps(sc)
}
