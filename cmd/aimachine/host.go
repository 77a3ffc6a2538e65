package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

// runHostDeploy is `aimachine deploy --vm NAME --host USER@ADDR[:PORT]`: the guest phase only,
// against an already installed machine. It prints ✓/✗ lines on stderr and the recap; exit 0
// on success, 1 on failure.
func runHostDeploy(ctx context.Context, catalogPath, vmName string, h hostFlags, reports string, stdout, stderr io.Writer) int {
	return runHostDeployJSON(ctx, catalogPath, vmName, h, reports, nil, stdout, stderr)
}

// runHostDeployJSON is runHostDeploy; with js set (--json) the events and the result go to it.
func runHostDeployJSON(ctx context.Context, catalogPath, vmName string, h hostFlags, reports string, js *jsonStream, stdout, stderr io.Writer) int {
	start := time.Now()
	result := func(sum provision.Summary, err error) {
		if js != nil {
			js.write(jsonDeployResult{Type: "result", OK: err == nil, VM: vmName, IP: h.host, GuestPhase: true,
				Summary: summaryJSON(sum, start), ReportsDir: reports, Error: errorJSON(err)})
		}
	}
	cat, err := catalog.LoadValid(catalogPath)
	if err != nil {
		result(provision.Summary{}, err)
		return fail(ctx, stderr, err)
	}
	o := h.options()
	rep := &renderer{w: stderr, verbose: h.verbose, style: styleFor(stderr), json: js}
	o.Guest.Reporter = rep
	o.Guest.ReportDir = reports
	sum, stats, err := provision.DeployHost(ctx, cat, vmName, o)
	result(sum, err)
	if err != nil {
		code := rep.fail(ctx, err)
		fmt.Fprintln(stderr, recap(sum, start))
		return code
	}
	if js == nil {
		fmt.Fprintf(stdout, "%s on %s: guest phase done (%d SSH connection, %d commands)\n", vmName, h.host, stats.Connections, stats.Sessions)
	}
	fmt.Fprintln(stderr, recap(sum, start))
	return 0
}
