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
	start := time.Now()
	cat, err := catalog.LoadValid(catalogPath)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	o := h.options()
	rep := &renderer{w: stderr, verbose: h.verbose, style: styleFor(stderr)}
	o.Guest.Reporter = rep
	o.Guest.ReportDir = reports
	sum, stats, err := provision.DeployHost(ctx, cat, vmName, o)
	if err != nil {
		code := rep.fail(ctx, err)
		fmt.Fprintln(stderr, recap(sum, start))
		return code
	}
	fmt.Fprintf(stdout, "%s on %s: guest phase done (%d SSH connection, %d commands)\n", vmName, h.host, stats.Connections, stats.Sessions)
	fmt.Fprintln(stderr, recap(sum, start))
	return 0
}
