package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

// getenv is os.Getenv; tests replace it.
var getenv = os.Getenv

// Environment defaults of flags (the simulator's env file sets the SSH ones).
const (
	envSSHKey     = "AIMACHINE_SSH_KEY"
	envKnownHosts = "AIMACHINE_KNOWN_HOSTS"
	envJumpHost   = "AIMACHINE_JUMP_HOST"
	envReports    = "AIMACHINE_REPORTS"
	envCatalog    = "AIMACHINE_CATALOG"
)

// defaultCatalog is the catalog every command reads unless --catalog says otherwise.
const defaultCatalog = "infrastructure-catalog.yml"

// catalogDefault is --catalog's default: $AIMACHINE_CATALOG, else the repository's sample.
func catalogDefault() string { return cmp.Or(getenv(envCatalog), defaultCatalog) }

// infraFlags are the flags plan, deploy and destroy share.
type infraFlags struct {
	vm       string
	all      bool // --all: every catalog VM (cmd/aimachine/fleet.go)
	catalog  string
	insecure bool
	verbose  bool
}

// addFlags adds --vm, --catalog, --insecure and -v/--verbose, and completes the VM name
// (first argument or --vm) from the catalog.
func (f *infraFlags) addFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.addCatalog(cmd)
	fs.BoolVar(&f.insecure, "insecure", false, "skip TLS verification of the Proxmox API (lab only)")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "debug logs on stderr")
}

// addCatalog adds --vm and --catalog only (verify).
func (f *infraFlags) addCatalog(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.vm, "vm", "", "the catalog VM `NAME` (or id), or several: a,b,c; also accepted as the first argument")
	fs.BoolVar(&f.all, "all", false, "every VM of the catalog")
	fs.StringVar(&f.catalog, "catalog", catalogDefault(), "the infrastructure catalog `FILE` ($"+envCatalog+" sets the default)")
	_ = cmd.RegisterFlagCompletionFunc("vm", f.completeVM)
	_ = cmd.MarkFlagFilename("catalog", "yml", "yaml")
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 || f.vm != "" {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return f.completeVM(cmd, args, toComplete)
	}
}

// completeVM lists the catalog's VM names (and ids) for shell completion.
func (f *infraFlags) completeVM(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	cat, err := catalog.Load(f.catalog)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, vm := range cat.VMs {
		if strings.HasPrefix(vm.Name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(vm.Name, fmt.Sprintf("VM %d on %s", vm.ID, vm.Node)))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// resolve takes the VM name from the first argument (at most one) or --vm, and requires one.
func (f *infraFlags) resolve(args []string) error {
	switch {
	case len(args) > 1:
		return usageErrorf("", "unexpected arguments %q (one VM name at most)", args[1:])
	case len(args) == 1 && f.vm != "" && f.vm != args[0]:
		return usageErrorf("", "VM %q given twice: as an argument and as --vm %q", args[0], f.vm)
	case f.all && (len(args) == 1 || f.vm != ""):
		return usageErrorf("", "--all and a VM name: give one of them")
	case len(args) == 1:
		f.vm = args[0]
	}
	if f.vm == "" && !f.all {
		return usageErrorf("aimachine catalog validate lists the VMs", "--vm NAME is required (or the VM name as the first argument, several as a,b,c, or --all)")
	}
	return nil
}

// multi: the command works on several VMs (--all or --vm a,b).
func (f *infraFlags) multi() bool { return f.all || strings.Contains(f.vm, ",") }

// hostFlags are the SSH flags of verify and of deploy --host.
type hostFlags struct {
	host       string
	acceptNew  bool
	sshKey     string
	knownHosts string
	jump       string
	verbose    bool
}

// addSSH adds --ssh-key, --known-hosts and --jump (defaults from AIMACHINE_* variables).
func (h *hostFlags) addSSH(fs *pflag.FlagSet) {
	fs.StringVar(&h.sshKey, "ssh-key", getenv(envSSHKey), "SSH private key `FILE` (default: $"+envSSHKey+", else ssh-agent)")
	fs.StringVar(&h.knownHosts, "known-hosts", defaultKnownHosts(), "pinned SSH host keys `FILE` ($"+envKnownHosts+" sets the default)")
	fs.StringVar(&h.jump, "jump", getenv(envJumpHost), "SSH jump host `USER@HOST:PORT` (default: $"+envJumpHost+", else the catalog's jump_host, for the catalog VM's address)")
}

// defaultKnownHosts is --known-hosts' default: AIMACHINE_KNOWN_HOSTS, else ~/.config/aimachine/known_hosts.
func defaultKnownHosts() string {
	return cmp.Or(getenv(envKnownHosts), provision.DefaultKnownHostsFile())
}

func (h *hostFlags) options() provision.HostOptions {
	return provision.HostOptions{Target: h.host, KeyFile: h.sshKey, KnownHostsFile: h.knownHosts, AcceptNewHostKey: h.acceptNew, Jump: h.jump}
}

// addReports adds --reports DIR (default $AIMACHINE_REPORTS, else reports).
func addReports(fs *pflag.FlagSet, dir *string) {
	fs.StringVar(dir, "reports", cmp.Or(getenv(envReports), "reports"), "`DIR` for the log bundle and evidence.json of a run ($"+envReports+" sets the default)")
}

// connect loads the catalog and connects to the API named by the environment.
func connect(ctx context.Context, f *infraFlags, stderr io.Writer) (*catalog.Catalog, *provision.Client, *slog.Logger, error) {
	logger := slog.New(slog.DiscardHandler)
	if f.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cat, err := catalog.LoadValid(f.catalog)
	if err != nil {
		return nil, nil, logger, err
	}
	o, err := provision.ConnOptionsFromEnv(getenv)
	if err != nil {
		return cat, nil, logger, err
	}
	if f.insecure {
		o.Insecure = true
	}
	for _, w := range o.Warnings() {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	o.Logger = logger
	c, err := provision.Connect(ctx, o)
	return cat, c, logger, err
}
