package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

// getenv is os.Getenv; tests replace it.
var getenv = os.Getenv

// Environment defaults of the SSH flags (the simulator's env file sets them).
const (
	envSSHKey     = "AIMACHINE_SSH_KEY"
	envKnownHosts = "AIMACHINE_KNOWN_HOSTS"
	envJumpHost   = "AIMACHINE_JUMP_HOST"
)

func init() {
	register(command{
		name:    "deploy",
		summary: "create or converge a catalog VM on Proxmox VE and set up its LLM services",
		run:     runDeploy,
	})
}

// infraFlags are the flags plan, deploy and destroy share.
type infraFlags struct {
	vm       string
	catalog  string
	insecure bool
	verbose  bool
}

func (f *infraFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.vm, "vm", "", "the catalog VM `NAME` (or id)")
	fs.StringVar(&f.catalog, "catalog", defaultCatalog, "the infrastructure catalog `FILE`")
	fs.BoolVar(&f.insecure, "insecure", false, "skip TLS verification of the Proxmox API (lab only)")
	fs.BoolVar(&f.verbose, "v", false, "debug logs on stderr")
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
	o.Logger = logger
	c, err := provision.Connect(ctx, o)
	return cat, c, logger, err
}

// renderer prints progress as ✓ / ✗ / ↷ lines on stderr. A failed task's ✗ line is held
// back: the command's error names that task with its details and hint, and is printed once
// by fail.
type renderer struct {
	mu      sync.Mutex
	w       io.Writer
	verbose bool
	failed  []provision.Event // held-back ✗ events, in order
}

func (r *renderer) Report(e provision.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := ""
	if e.Message != "" {
		msg = ": " + e.Message
	}
	took := ""
	if e.Elapsed >= time.Second {
		took = fmt.Sprintf(" (%s)", e.Elapsed.Round(100*time.Millisecond))
	}
	switch e.Status {
	case provision.StatusOK:
		fmt.Fprintf(r.w, "✓ %s%s%s\n", e.Task, msg, took)
	case provision.StatusChanged:
		fmt.Fprintf(r.w, "✓ %s [changed]%s%s\n", e.Task, msg, took)
	case provision.StatusFailed:
		r.failed = append(r.failed, e)
	case provision.StatusSkipped:
		fmt.Fprintf(r.w, "↷ %s%s\n", e.Task, msg)
	default:
		if e.Message != "" {
			fmt.Fprintf(r.w, "  … %s%s\n", e.Task, msg)
		} else if r.verbose {
			fmt.Fprintf(r.w, "  … %s\n", e.Task)
		}
	}
}

// fail prints err once with fail, then the ✗ line of any failed task that err does not
// tell (none in the usual case: the error is the failed task's, a rollback failure is joined).
func (r *renderer) fail(ctx context.Context, err error) int {
	code := fail(ctx, r.w, err)
	r.mu.Lock()
	defer r.mu.Unlock()
	var te *provision.TaskError
	errors.As(err, &te)
	for _, e := range r.failed {
		if (te != nil && strings.HasPrefix(te.Task, e.Task)) || strings.Contains(err.Error(), e.Message) {
			continue // err tells it already
		}
		fmt.Fprintf(r.w, "✗ %s: %s\n", e.Task, e.Message)
	}
	r.failed = nil
	return code
}

// printErr prints a failure with its log tail and the path of its log bundle.
func printErr(w io.Writer, err error) {
	fmt.Fprintf(w, "✗ %v\n", err)
	var te *provision.TaskError
	if !errors.As(err, &te) {
		return
	}
	if te.Log != "" {
		fmt.Fprintln(w, "  log tail:")
		for _, l := range strings.Split(te.Log, "\n") {
			fmt.Fprintln(w, "    "+l)
		}
	}
	if te.Bundle != "" {
		fmt.Fprintln(w, "  logs: "+te.Bundle)
	}
}

// fail prints err and returns the exit code 1. When ctx was cancelled (Ctrl-C or SIGTERM) it
// first says so: the error below then tells what was rolled back or kept.
func fail(ctx context.Context, stderr io.Writer, err error) int {
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "✗ interrupted (Ctrl-C or SIGTERM): stopped at the task below; re-run the same command to converge")
	}
	printErr(stderr, err)
	return 1
}

func summaryLine(s provision.Summary) string {
	line := fmt.Sprintf("%d changed, %d unchanged", s.Changed, s.OK)
	if s.Failed > 0 {
		line += fmt.Sprintf(", %d failed", s.Failed)
	}
	return line
}

func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("aimachine deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f infraFlags
	f.register(fs)
	keep := fs.Bool("keep-on-failure", false, "keep a VM this run created when a later step fails (default: roll it back)")
	var h hostFlags // --ssh-key, --known-hosts, --jump, and --host for the guest phase alone
	h.registerSSH(fs)
	h.RegisterHostFlags(fs)
	replace := fs.Bool("replace-host-key", false, "replace a pinned guest host key that differs (the VM was re-created)")
	infraOnly := fs.Bool("infra-only", false, "stop once the VM runs and its host key is pinned (no SSH, no guest phase)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: aimachine deploy --vm NAME [--catalog FILE] [--keep-on-failure] [--infra-only] [--replace-host-key] [--insecure] [--known-hosts FILE] [--ssh-key FILE] [--jump USER@HOST:PORT] [-v]")
		fmt.Fprintln(fs.Output(), "       aimachine deploy --vm NAME --host USER@ADDR[:PORT] [--accept-new-host-key] [--catalog FILE] [--known-hosts FILE] [--ssh-key FILE] [--jump USER@HOST:PORT] [-v]")
		fmt.Fprintln(fs.Output(), "Converges the VM: preflight, create or minimal change, start, cloud-init, SSH, guest phase. Proxmox access comes from PROXMOX_VE_*.")
		fmt.Fprintln(fs.Output(), "With --host: only the guest phase, on an already installed Ubuntu 24.04 machine (no Proxmox access).")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, &f, stderr); !ok {
		return code
	}
	switch {
	case h.host != "" && (*infraOnly || *replace || *keep):
		fmt.Fprintln(stderr, "aimachine deploy: --host runs only the guest phase; --infra-only, --replace-host-key and --keep-on-failure apply to a Proxmox deploy")
		return 2
	case h.host == "" && h.acceptNew:
		fmt.Fprintln(stderr, "aimachine deploy: --accept-new-host-key needs --host (a Proxmox deploy pins the key it reads through the guest agent)")
		return 2
	case h.host != "":
		h.verbose = f.verbose
		return runHostDeploy(ctx, f.catalog, f.vm, h, stdout, stderr)
	}
	cat, c, _, err := connect(ctx, &f, stderr)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	rep := &renderer{w: stderr, verbose: f.verbose}
	res, err := c.Deploy(ctx, cat, f.vm, provision.DeployOptions{
		Reporter: rep, KeepOnFailure: *keep, InfraOnly: *infraOnly,
		SSH:   provision.SSHOptions{KnownHostsFile: h.knownHosts, KeyFile: h.sshKey, Jump: h.jump, ReplaceHostKey: *replace},
		Guest: provision.GuestOptions{ReportDir: reportDir},
	})
	if err == nil && res != nil && res.GuestPhase {
		writeEvidence(ctx, c, cat, res, stderr)
	}
	if res != nil && res.Runner != nil {
		_ = res.Runner.Close()
	}
	if err != nil {
		code := rep.fail(ctx, err)
		if res != nil {
			fmt.Fprintln(stderr, summaryLine(res.Summary))
		}
		return code
	}
	fmt.Fprintf(stdout, "VM %d %s on node %s: %s (run %s)\n", res.VMID, res.Name, res.Node, res.IP, res.RunID)
	fmt.Fprintln(stderr, summaryLine(res.Summary))
	return 0
}

// reportDir receives the deploy's log bundle and evidence record (<vm>-<run>/), verify's
// evidence record and bench's report (a variable for tests).
var reportDir = "reports"

// writeEvidence writes reports/<vm>-<run>/evidence.json (versions, GPU, timings); a failure to
// write it is reported, never fatal.
func writeEvidence(ctx context.Context, c *provision.Client, cat *catalog.Catalog, res *provision.DeployResult, stderr io.Writer) {
	ev, err := c.BuildEvidence(ctx, cat, res, res.Proof, res.Runner)
	if err == nil {
		var path string
		if path, err = ev.Write(reportDir); err == nil {
			fmt.Fprintln(stderr, "evidence: "+path)
			return
		}
	}
	fmt.Fprintln(stderr, "evidence not written:", err)
}
