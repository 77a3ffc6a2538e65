package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/aimachine/aimachine/provision"
)

func newDestroyCmd(a *app) *cobra.Command {
	var f infraFlags
	var yes bool
	var knownHosts, forceUnlock string
	var lockWait time.Duration
	var ff fleetFlags
	cmd := &cobra.Command{
		Use:   "destroy [VM] --yes [flags]",
		Short: "stop and delete a catalog VM this tool manages (needs --yes)",
		Long: `Stops and deletes the VM with its disks, only if it carries the 'aimachine' tag, and removes
its pinned SSH host key from known_hosts. Proxmox access comes from PROXMOX_VE_*.`,
		Example: `  aimachine destroy vm-llm-aimachine --yes
  aimachine destroy --vm 140 --yes --known-hosts ~/.config/aimachine/known_hosts`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.resolve(args); err != nil {
				return err
			}
			if !yes && f.all {
				return usageErrorf("'aimachine status' shows what exists; re-run with --yes to delete every VM of the catalog that carries the aimachine tag",
					"deleting every catalog VM and its disks needs --yes")
			}
			if !yes {
				return usageErrorf(fmt.Sprintf("'aimachine plan %s' shows what exists; re-run with --yes to delete it", f.vm),
					"deleting VM %q and its disks needs --yes", f.vm)
			}
			if f.multi() {
				if err := ff.check(); err != nil {
					return err
				}
				return exitOf(runFleetDestroy(cmd.Context(), &f, ff, knownHosts, provision.LeaseOptions{ForceUnlock: forceUnlock, LockWait: lockWait}, a.stdout, a.stderr))
			}
			return exitOf(runDestroy(cmd.Context(), &f, knownHosts, provision.LeaseOptions{ForceUnlock: forceUnlock, LockWait: lockWait}, a.stdout, a.stderr))
		},
	}
	f.addFlags(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "really delete the VM and its disks")
	cmd.Flags().StringVar(&knownHosts, "known-hosts", defaultKnownHosts(), "pinned SSH host keys `FILE` (the VM's line is removed)")
	cmd.Flags().DurationVar(&lockWait, "timeout", 0, "bound the wait for a PVE config lock (a create in progress) to `DURATION` (default 5m)")
	cmd.Flags().StringVar(&forceUnlock, "force-unlock", "", "take over the run lease of the crashed run `RUN_ID` (named in the refusal)")
	ff.add(cmd.Flags())
	return cmd
}

func runDestroy(ctx context.Context, f *infraFlags, knownHosts string, lease provision.LeaseOptions, stdout, stderr io.Writer) int {
	start := time.Now()
	cat, c, _, err := connect(ctx, f, stderr)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	if cat, _, err = locate(ctx, c.API(), cat); err != nil {
		return fail(ctx, stderr, err)
	}
	rep := &renderer{w: stderr, verbose: f.verbose, style: styleFor(stderr)}
	res, err := c.Destroy(ctx, cat, f.vm, provision.DestroyOptions{Reporter: rep, KnownHostsFile: knownHosts, Lease: lease})
	if err != nil {
		return rep.fail(ctx, err)
	}
	if res.Deleted {
		fmt.Fprintf(stdout, "VM %d deleted from node %s\n", res.VMID, res.Node)
	} else {
		fmt.Fprintf(stdout, "VM %d does not exist: nothing to delete\n", res.VMID)
	}
	fmt.Fprintln(stderr, recap(res.Summary, start))
	return 0
}
