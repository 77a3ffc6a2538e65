package steps

import (
	"os"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/catalog"
)

// World is the state of one scenario. It is created in Register (once per scenario).
type World struct {
	scenario *godog.Scenario

	catalogPath string
	cat         *catalog.Catalog
	vm          *catalog.VM
}

// catalogFile is the catalog the scenarios deploy (AIMACHINE_CATALOG, default the sample).
func catalogFile() string {
	if p := os.Getenv("AIMACHINE_CATALOG"); p != "" {
		return p
	}
	return "infrastructure-catalog.yml"
}
