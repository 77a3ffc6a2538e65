package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/aimachine/aimachine/provision"
)

func init() {
	register(command{
		name:    "plan",
		summary: "show what deploy would change on Proxmox VE (reads only)",
		run:     runPlan,
	})
}

// runPlan prints the plan on stdout; exit 0 when it can be applied, 1 on an error or a
// preflight that would fail.
func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("aimachine plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f infraFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: aimachine plan --vm NAME [--catalog FILE] [--insecure] [-v]")
		fmt.Fprintln(fs.Output(), "Reads the cluster and prints what deploy would do; changes nothing. Proxmox access comes from PROXMOX_VE_*.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, &f, stderr); !ok {
		return code
	}
	cat, c, _, err := connect(ctx, &f, stderr)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	p, err := c.Plan(ctx, cat, f.vm)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	fmt.Fprint(stdout, p.String())
	for _, a := range p.Actions {
		if a.Kind == provision.ActionRefuse {
			return 1
		}
	}
	if p.Preflight != nil {
		printErr(stderr, p.Preflight)
		return 1
	}
	return 0
}
