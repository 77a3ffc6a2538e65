package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// The flag-package helpers of the verbs registered with register (see command): they parse
// their own arguments. The native verbs use the pflag equivalents in flags.go.

// register adds --vm, --catalog, --insecure and -v to a flag.FlagSet.
func (f *infraFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.vm, "vm", "", "the catalog VM `NAME` (or id)")
	fs.StringVar(&f.catalog, "catalog", defaultCatalog, "the infrastructure catalog `FILE`")
	fs.BoolVar(&f.insecure, "insecure", false, "skip TLS verification of the Proxmox API (lab only)")
	fs.BoolVar(&f.verbose, "v", false, "debug logs on stderr")
}

// registerSSH adds --ssh-key, --known-hosts and --jump to a flag.FlagSet.
func (h *hostFlags) registerSSH(fs *flag.FlagSet) {
	fs.StringVar(&h.sshKey, "ssh-key", getenv(envSSHKey), "SSH private key `FILE` (default: $"+envSSHKey+", else ssh-agent)")
	fs.StringVar(&h.knownHosts, "known-hosts", defaultKnownHosts(), "pinned SSH host keys `FILE` ($"+envKnownHosts+" sets the default)")
	fs.StringVar(&h.jump, "jump", getenv(envJumpHost), "SSH jump host `USER@HOST:PORT` (default: $"+envJumpHost+", else the catalog's jump_host, for the catalog VM's address)")
}

// parseArgs parses args; ok false means exit with code (0 after -h, 2 on a usage error, which
// the flag package has printed).
func parseArgs(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// parseFlags parses args and requires --vm and no positional arguments; ok false means exit
// with code.
func parseFlags(fs *flag.FlagSet, args []string, f *infraFlags, stderr io.Writer) (code int, ok bool) {
	if code, ok := parseArgs(fs, args); !ok {
		return code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return 2, false
	}
	if f.vm == "" {
		fmt.Fprintf(stderr, "%s: --vm NAME is required (hint: aimachine catalog validate lists the VMs)\n", fs.Name())
		return 2, false
	}
	return 0, true
}

// reportDir is where registered verbs write their reports (the native verbs take --reports,
// default $AIMACHINE_REPORTS, else "reports"); a variable so tests can move it.
var reportDir = "reports"

// usage prints the command list with the environment (what `aimachine help` prints).
func usage(w io.Writer) {
	root := newRoot(&app{ctx: context.Background(), stdout: w, stderr: w})
	root.SetOut(w)
	_ = root.Help()
}
