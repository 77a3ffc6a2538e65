// Command aimachine deploys and verifies a GPU-passthrough LLM VM on Proxmox VE from the
// infrastructure catalog.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/aimachine/aimachine/provision"
)

func main() {
	ctx, stop := interruptible(os.Stderr)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// interruptible is a context that the first Ctrl-C or SIGTERM cancels: every phase stops at
// its next check and a deploy rolls back what this run created. The first signal also gives
// both signals back their default action, so a second one ends the process at once, whatever
// phase it is in.
func interruptible(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			signal.Stop(sigs)
			fmt.Fprintf(stderr, "\naimachine: %v: stopping after the current step and cleaning up what this run created (send it again to quit at once, leaving things as they are)\n", s)
			cancel()
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// exitCode ends a command with that status; the command has printed what it had to say.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError is a command line the command cannot run: exit 2, one line with a hint.
type usageError struct {
	msg, hint string
}

func (e *usageError) Error() string { return e.msg }

func usageErrorf(hint, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), hint: hint}
}

// app is what every command of one run shares.
type app struct {
	ctx            context.Context
	stdout, stderr io.Writer
}

// run is main without the process: testable. Exit 0 on success, 1 on a failure, 2 on a usage
// error (and what a command documents otherwise, e.g. plan --detailed-exitcode).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdout: stdout, stderr: stderr}
	root := newRoot(a)
	if len(args) == 0 {
		root.SetOut(stderr)
		_ = root.Usage()
		return 2
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintln(stderr, usageLine(root, cmd, args, err))
	return 2
}

// usageLine is the one line of a usage error: what is wrong, and where to look.
func usageLine(root, cmd *cobra.Command, args []string, err error) string {
	path := cmd.CommandPath()
	msg, _, _ := strings.Cut(err.Error(), "\n")
	hint := "'" + path + " --help' shows the usage"
	var ue *usageError
	if errors.As(err, &ue) && ue.hint != "" {
		hint = ue.hint
	}
	if cmd == root && strings.HasPrefix(msg, "unknown command ") {
		msg = fmt.Sprintf("unknown command %q", args[0])
		if s := root.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
		}
		hint = "run 'aimachine help' for the list"
	}
	// -vm where --vm is meant: GNU long flags take two dashes.
	for _, a := range args {
		if len(a) > 2 && a[0] == '-' && a[1] != '-' && strings.Contains(msg, "unknown shorthand flag") {
			name, _, _ := strings.Cut(a[1:], "=")
			if cmd.Flags().Lookup(name) != nil {
				hint = "long flags take two dashes: --" + a[1:]
			}
		}
	}
	return fmt.Sprintf("%s: %s (hint: %s)", path, msg, hint)
}

const rootLong = `aimachine — stand up a GPU-passthrough LLM server on Proxmox VE from the infrastructure catalog.

Check the host (doctor, prepare), then plan, deploy, verify and destroy the catalog's VMs.
Progress goes to stderr as ✓ / ✗ lines, results to stdout; --json on doctor, plan, deploy and
verify prints machine-readable output instead (docs/json.md).`

const rootExample = `  aimachine catalog validate
  aimachine doctor vm-llm-aimachine
  aimachine plan vm-llm-aimachine
  aimachine deploy vm-llm-aimachine
  aimachine verify vm-llm-aimachine --json
  aimachine destroy vm-llm-aimachine --yes
  source <(aimachine completion bash)`

// newRoot builds the command tree for one run (flags hold per-run values).
func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "aimachine",
		Short:         "stand up a GPU-passthrough LLM server on Proxmox VE from the infrastructure catalog",
		Long:          rootLong,
		Example:       rootExample,
		SilenceUsage:  true,
		SilenceErrors: true,
		// "deplyo" → did you mean deploy?
		SuggestionsMinimumDistance: 2,
		// A bare `aimachine` is handled by run; an unknown verb is an error, not the help.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.Version = readVersion(debug.ReadBuildInfo).String() // --version, as `aimachine version`
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	root.SetUsageTemplate(root.UsageTemplate() + envHelp())
	native := []*cobra.Command{
		newPlanCmd(a), newDeployCmd(a), newVerifyCmd(a), newBenchCmd(a), newDestroyCmd(a), newDoctorCmd(a), newPrepareCmd(a), newStatusCmd(a), newCatalogCmd(a), newVersionCmd(a),
	}
	for _, c := range native {
		root.AddCommand(c)
	}
	return root
}

// envHelp is the environment section of the root usage.
func envHelp() string {
	var b strings.Builder
	b.WriteString(`{{if not .HasParent}}
Environment:
`)
	for _, e := range [][2]string{
		{provision.EnvEndpoint, "the Proxmox VE API, https://HOST:8006/ (plan, deploy, destroy)"},
		{provision.EnvAPIToken, "API token USER@REALM!ID=SECRET, or"},
		{provision.EnvUsername + ", " + provision.EnvPassword, "a ticket login (root@pam is needed for a raw hostpci)"},
		{provision.EnvFingerprint + ", " + provision.EnvCAFile, "pin the API's certificate (SHA-256) or its CA; " + provision.EnvInsecure + "=true skips TLS checks"},
		{provision.EnvSimulator, "1: talk to loopback addresses only (the simulator; make sim prints the lines to paste)"},
		{envSSHKey + ", " + envKnownHosts + ", " + envJumpHost, "defaults of --ssh-key, --known-hosts and --jump"},
		{envCatalog, "default of --catalog (the simulator's catalog after make sim)"},
		{envReports, "default of --reports, where deploy writes its log bundle and evidence.json, verify its evidence.json and bench its report"},
		{"NO_COLOR", "set: no colour on a terminal"},
		{"services.vllm.api_key_env", "the catalog names the variable that holds vLLM's API key (never printed)"},
		{"services.vllm.hf_token_env", "the catalog names the variable that holds a Hugging Face token for gated models (never printed)"},
	} {
		fmt.Fprintf(&b, "  %s\n      %s\n", e[0], e[1])
	}
	b.WriteString("{{end}}")
	return b.String()
}
