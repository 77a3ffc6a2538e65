// Command checkreport fails when a cucumber JSON report holds a step that did not pass
// (skipped, pending, undefined, failed) or no scenario at all: `make bdd` runs it after godog.
package main

import (
	"fmt"
	"os"

	"github.com/aimachine/aimachine/steps"
)

func main() {
	path := steps.CucumberReport()
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	if err := steps.CheckReport(path); err != nil {
		fmt.Fprintln(os.Stderr, "checkreport:", err)
		os.Exit(1)
	}
	fmt.Println("checkreport:", path, "— every step passed")
}
