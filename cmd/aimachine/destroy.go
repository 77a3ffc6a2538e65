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
		name:    "destroy",
		summary: "stop and delete a catalog VM this tool manages (needs --yes)",
		run:     runDestroy,
	})
}

func runDestroy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("aimachine destroy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f infraFlags
	f.register(fs)
	yes := fs.Bool("yes", false, "really delete the VM and its disks")
	forceUnlock := fs.String("force-unlock", "", "take over the run lease of the crashed run `RUN_ID` (named in the refusal)")
	knownHosts := fs.String("known-hosts", defaultKnownHosts(), "pinned SSH host keys `FILE` (the VM's line is removed)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: aimachine destroy --vm NAME --yes [--catalog FILE] [--known-hosts FILE] [--force-unlock RUN_ID] [--insecure] [-v]")
		fmt.Fprintln(fs.Output(), "Stops and deletes the VM with its disks, only if it carries the 'aimachine' tag, and removes its pinned host key. Proxmox access comes from PROXMOX_VE_*.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, &f, stderr); !ok {
		return code
	}
	if !*yes {
		fmt.Fprintf(stderr, "aimachine destroy: deleting VM %q and its disks needs --yes (hint: 'aimachine plan --vm %s' shows what exists; re-run with --yes to delete it)\n", f.vm, f.vm)
		return 2
	}
	cat, c, _, err := connect(ctx, &f, stderr)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	rep := &renderer{w: stderr, verbose: f.verbose}
	res, err := c.Destroy(ctx, cat, f.vm, provision.DestroyOptions{Reporter: rep, KnownHostsFile: *knownHosts, Lease: provision.LeaseOptions{ForceUnlock: *forceUnlock}})
	if err != nil {
		return rep.fail(ctx, err)
	}
	if res.Deleted {
		fmt.Fprintf(stdout, "VM %d deleted from node %s\n", res.VMID, res.Node)
	} else {
		fmt.Fprintf(stdout, "VM %d does not exist: nothing to delete\n", res.VMID)
	}
	fmt.Fprintln(stderr, summaryLine(res.Summary))
	return 0
}
