package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

// hostFlags are the SSH flags of verify and of deploy --host.
type hostFlags struct {
	host       string
	acceptNew  bool
	sshKey     string
	knownHosts string
	jump       string
	verbose    bool
}

// registerSSH adds --ssh-key, --known-hosts and --jump (defaults from AIMACHINE_* variables).
func (h *hostFlags) registerSSH(fs *flag.FlagSet) {
	fs.StringVar(&h.sshKey, "ssh-key", getenv(envSSHKey), "SSH private key `FILE` (default: $"+envSSHKey+", else ssh-agent)")
	fs.StringVar(&h.knownHosts, "known-hosts", defaultKnownHosts(), "pinned SSH host keys `FILE` ($"+envKnownHosts+" sets the default)")
	fs.StringVar(&h.jump, "jump", getenv(envJumpHost), "SSH jump host `USER@HOST:PORT` (default: $"+envJumpHost+", else the catalog's jump_host, for the catalog VM's address)")
}

// defaultKnownHosts is --known-hosts' default: AIMACHINE_KNOWN_HOSTS, else ~/.config/aimachine/known_hosts.
func defaultKnownHosts() string {
	return cmp.Or(getenv(envKnownHosts), provision.DefaultKnownHostsFile())
}

// RegisterHostFlags adds deploy's --host and --accept-new-host-key (deploy also registers
// registerSSH's flags into h and sets h.verbose from -v before calling runHostDeploy).
func (h *hostFlags) RegisterHostFlags(fs *flag.FlagSet) {
	fs.StringVar(&h.host, "host", "", "run only the guest phase on this existing Ubuntu 24.04 machine `USER@ADDR[:PORT]`")
	fs.BoolVar(&h.acceptNew, "accept-new-host-key", false, "with --host: trust and pin the machine's SSH host key if none is pinned yet (a changed key is still refused)")
}

func (h *hostFlags) options() provision.HostOptions {
	return provision.HostOptions{Target: h.host, KeyFile: h.sshKey, KnownHostsFile: h.knownHosts, AcceptNewHostKey: h.acceptNew, Jump: h.jump}
}

// runHostDeploy is `aimachine deploy --vm NAME --host USER@ADDR[:PORT]`: the guest phase only,
// against an already installed machine. It prints ✓/✗ lines on stderr and the recap; exit 0
// on success, 1 on failure.
func runHostDeploy(ctx context.Context, catalogPath, vmName string, h hostFlags, stdout, stderr io.Writer) int {
	cat, err := catalog.LoadValid(catalogPath)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	o := h.options()
	rep := &renderer{w: stderr, verbose: h.verbose}
	o.Guest.Reporter = rep
	sum, stats, err := provision.DeployHost(ctx, cat, vmName, o)
	if err != nil {
		code := rep.fail(ctx, err)
		fmt.Fprintln(stderr, summaryLine(sum))
		return code
	}
	fmt.Fprintf(stdout, "%s on %s: guest phase done (%d SSH connection, %d commands)\n", vmName, h.host, stats.Connections, stats.Sessions)
	fmt.Fprintln(stderr, summaryLine(sum))
	return 0
}
