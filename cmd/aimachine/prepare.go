package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aimachine/aimachine/provision/readiness"
)

// stdin is where prepare reads its confirmation; tests replace it.
var stdin io.Reader = os.Stdin

// prepareFlags are prepare's flags on top of the VM selection.
type prepareFlags struct {
	infraFlags
	yes        bool
	nodeSSH    string
	sshKey     string
	knownHosts string
}

func newPrepareCmd(a *app) *cobra.Command {
	var f prepareFlags
	cmd := &cobra.Command{
		Use:   "prepare [VM | --all] [flags]",
		Short: "do the host steps the Proxmox API allows: cloud image (checksum verified), PCI mapping, vendor snippet",
		Long: `Downloads the catalog's cloud image into its import storage (download-url, pinned URL and
SHA-256), creates the GPU's cluster PCI mapping, and installs the vendor snippet over SSH
(--node-ssh) or prints it with the command to run on the node. Shows the plan and asks unless
--yes. What is already there is left alone: a second run changes nothing.

Exit status: 0 done (or nothing to do), 1 declined or an error, 2 a usage error.
Proxmox access comes from PROXMOX_VE_*.`,
		Example: `  aimachine prepare vm-llm-aimachine
  aimachine prepare --all --yes
  aimachine prepare --vm vm-llm-aimachine --yes --node-ssh root@pve`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.resolve(args); err != nil {
				return err
			}
			return exitOf(runPrepare(cmd.Context(), &f, a.stdout, a.stderr))
		},
	}
	f.addFlags(cmd)
	fs := cmd.Flags()
	fs.BoolVar(&f.yes, "yes", false, "do it without asking")
	fs.StringVar(&f.nodeSSH, "node-ssh", "", "write the vendor snippet on the node over SSH as `USER@NODE[:PORT]` (its host key must be pinned in --known-hosts)")
	fs.StringVar(&f.sshKey, "ssh-key", getenv(envSSHKey), "with --node-ssh: SSH private key `FILE` (default: $"+envSSHKey+", else ssh-agent)")
	fs.StringVar(&f.knownHosts, "known-hosts", defaultKnownHosts(), "with --node-ssh: pinned SSH host keys `FILE` ($"+envKnownHosts+" sets the default)")
	_ = cmd.MarkFlagFilename("ssh-key")
	_ = cmd.MarkFlagFilename("known-hosts")
	return cmd
}

func runPrepare(ctx context.Context, f *prepareFlags, stdout, stderr io.Writer) int {
	cat, vms, o, code, ok := loadSelection(&f.infraFlags, stderr)
	if !ok {
		return code
	}
	opts := readiness.PrepareOptions{
		Confirm: func(actions []readiness.Action) bool {
			fmt.Fprintln(stderr, "aimachine prepare will:")
			for _, a := range actions {
				fmt.Fprintln(stderr, "  + "+a.Description)
			}
			if f.yes {
				return true
			}
			fmt.Fprint(stderr, "Proceed? [y/N] ")
			line, _ := bufio.NewReader(stdin).ReadString('\n')
			return strings.EqualFold(strings.TrimSpace(line), "y") || strings.EqualFold(strings.TrimSpace(line), "yes")
		},
		Progress: func(a readiness.Action, line string) {
			if strings.TrimSpace(line) != "" {
				fmt.Fprintf(stderr, "  … %s\n", line)
			}
		},
	}
	if f.nodeSSH != "" {
		opts.SSH = &readiness.NodeSSH{Target: f.nodeSSH, KeyFile: f.sshKey, KnownHostsFile: f.knownHosts, LoopbackOnly: o.Simulator}
	}
	res, err := readiness.Prepare(ctx, o, cat, vms, opts)
	if res != nil {
		for _, a := range res.Done {
			fmt.Fprintf(stderr, "✓ %s [changed]\n", a.Description)
		}
	}
	if errors.Is(err, readiness.ErrDeclined) {
		fmt.Fprintln(stderr, "✗ "+err.Error()+" (hint: --yes skips the question)")
		return 1
	}
	if err != nil {
		return fail(ctx, stderr, err)
	}
	if len(res.Actions) == 0 {
		fmt.Fprintln(stderr, "✓ nothing to do: the image, the mapping and the snippet are in place")
		return 0
	}
	for _, sn := range res.Manual {
		fmt.Fprintf(stdout, "# The API cannot upload snippets: run this as root on node %s (or re-run with --node-ssh root@NODE)\n", nodeOf(res, sn.VolID))
		fmt.Fprint(stdout, sn.Commands())
	}
	if len(res.Manual) > 0 {
		fmt.Fprintln(stderr, "! the vendor snippet is not installed yet: run the commands printed above on the node, then aimachine doctor")
		return 0
	}
	fmt.Fprintln(stderr, "✓ host prepared: run aimachine doctor")
	return 0
}

func nodeOf(res *readiness.PrepareResult, volid string) string {
	for _, a := range res.Actions {
		if a.Snippet != nil && a.Snippet.VolID == volid {
			return a.Node
		}
	}
	return "?"
}
