// Command aimachine deploys and verifies a GPU-passthrough LLM VM on Proxmox VE from the
// infrastructure catalog.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/aimachine/aimachine/provision"
)

// command is one verb of the CLI. Each verb lives in its own file and registers itself in init.
type command struct {
	name    string
	summary string
	// run gets the arguments after the verb.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

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

// run is main without the process: testable.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "aimachine: unknown command %q (hint: run 'aimachine help' for the list)\n", args[0])
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "aimachine — stand up a GPU-passthrough LLM server on Proxmox VE from the infrastructure catalog")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: aimachine <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "  %-18s %s\n", "help", "show this list")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Environment:")
	for _, e := range [][2]string{
		{provision.EnvEndpoint, "the Proxmox VE API, https://HOST:8006/ (plan, deploy, destroy)"},
		{provision.EnvAPIToken, "API token USER@REALM!ID=SECRET, or"},
		{provision.EnvUsername + ", " + provision.EnvPassword, "a ticket login (root@pam is needed for a raw hostpci)"},
		{provision.EnvFingerprint + ", " + provision.EnvCAFile, "pin the API's certificate (SHA-256) or its CA; " + provision.EnvInsecure + "=true skips TLS checks"},
		{provision.EnvSimulator, "1: talk to loopback addresses only (the simulator)"},
		{envSSHKey + ", " + envKnownHosts + ", " + envJumpHost, "defaults of --ssh-key, --known-hosts and --jump"},
		{"services.vllm.api_key_env", "the catalog names the variable that holds vLLM's API key (never printed)"},
	} {
		fmt.Fprintf(w, "  %s\n      %s\n", e[0], e[1])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'aimachine <command> -h' for a command's flags.")
}
