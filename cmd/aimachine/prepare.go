package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aimachine/aimachine/provision/readiness"
)

// stdin is where prepare reads its confirmation; tests replace it.
var stdin io.Reader = os.Stdin

func init() {
	register(command{
		name:    "prepare",
		summary: "do the host steps the Proxmox API allows: cloud image (checksum verified), PCI mapping, vendor snippet",
		run:     runPrepare,
	})
}

func runPrepare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("aimachine prepare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s vmSelection
	s.register(fs)
	yes := fs.Bool("yes", false, "do it without asking")
	nodeSSH := fs.String("node-ssh", "", "write the vendor snippet on the node over SSH as `USER@NODE[:PORT]` (its host key must be pinned in --known-hosts)")
	sshKey := fs.String("ssh-key", getenv(envSSHKey), "with --node-ssh: SSH private key `FILE` (default: $"+envSSHKey+", else ssh-agent)")
	knownHosts := fs.String("known-hosts", defaultKnownHosts(), "with --node-ssh: pinned SSH host keys `FILE` ($"+envKnownHosts+" sets the default)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: aimachine prepare [--vm NAME] [--all] [--yes] [--node-ssh USER@NODE[:PORT]] [--catalog FILE] [--ssh-key FILE] [--known-hosts FILE] [--insecure]")
		fmt.Fprintln(fs.Output(), "One of --vm and --all. Downloads the catalog's cloud image into its import storage (download-url, pinned URL and SHA-256), creates the GPU's cluster PCI mapping,")
		fmt.Fprintln(fs.Output(), "and installs the vendor snippet over SSH (--node-ssh) or prints it with the command to run on the node. Shows the plan and asks unless --yes.")
		fmt.Fprintln(fs.Output(), "What is already there is left alone: a second run changes nothing. Proxmox access comes from PROXMOX_VE_*.")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	cat, vms, o, code, ok := s.load(fs.Name(), fs, stderr)
	if !ok {
		return code
	}
	opts := readiness.PrepareOptions{
		Confirm: func(actions []readiness.Action) bool {
			fmt.Fprintln(stderr, "aimachine prepare will:")
			for _, a := range actions {
				fmt.Fprintln(stderr, "  + "+a.Description)
			}
			if *yes {
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
	if *nodeSSH != "" {
		opts.SSH = &readiness.NodeSSH{Target: *nodeSSH, KeyFile: *sshKey, KnownHostsFile: *knownHosts, LoopbackOnly: o.Simulator}
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
