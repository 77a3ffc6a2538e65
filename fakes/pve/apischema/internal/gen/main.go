// Command gen vendors the Proxmox VE API viewer schema into fakes/pve/apischema (see go generate there).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/aimachine/aimachine/fakes/pve/apischema"
)

func main() {
	in := flag.String("in", "", "pve-api-schema.json (the API viewer's apidata.js as JSON)")
	out := flag.String("out", "schema.json.gz", "vendored file to write")
	flag.Parse()
	raw, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v (hint: the shared reference lives at ../shared/reference/pve-api-schema.json beside the repository)\n", err)
		os.Exit(1)
	}
	b, err := apischema.Compact(raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
