package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/fleet"
)

func newStatusCmd(a *app) *cobra.Command {
	var f infraFlags
	var h hostFlags
	var asJSON bool
	var parallel int
	var reports string
	cmd := &cobra.Command{
		Use:   "status [flags]",
		Short: "one table of every catalog VM: exists/running, node, IP, GPU, driver, vLLM and Ollama health, last run (reads only)",
		Long: `Reads the cluster (one /cluster/resources call) and probes each running VM with one light SSH
session (nvidia-smi, vLLM /health, Ollama /api/version), at most --parallel at once. The last run
id and result come from the reports dir (<vm>-<run>/: "ok" with evidence.json, else "failed").
Changes nothing. Exit 0 when every VM that exists is healthy, 1 otherwise.`,
		Example: `  aimachine status
  aimachine status --json | jq '.[] | select(.vllm != "ok")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return exitOf(runStatus(cmd.Context(), &f, h, parallel, reports, asJSON, a.stdout, a.stderr))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.catalog, "catalog", catalogDefault(), "the infrastructure catalog `FILE` ($"+envCatalog+" sets the default)")
	fs.BoolVar(&f.insecure, "insecure", false, "skip TLS verification of the Proxmox API (lab only)")
	h.addSSH(fs)
	fs.IntVar(&parallel, "parallel", 8, "probe at most `N` VMs at once")
	fs.BoolVar(&asJSON, "json", false, "print one JSON array on stdout")
	addReports(fs, &reports)
	return cmd
}

func runStatus(ctx context.Context, f *infraFlags, h hostFlags, parallel int, reports string, asJSON bool, stdout, stderr io.Writer) int {
	cat, c, _, err := connect(ctx, f, stderr)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	names, _ := fleet.Select(cat, "", true)
	st, err := fleet.Status(ctx, c, cat, names, fleet.StatusOptions{Parallel: parallel, ReportDir: reports,
		SSH: provision.SSHOptions{KnownHostsFile: h.knownHosts, KeyFile: h.sshKey, Jump: h.jump}})
	if err != nil {
		return fail(ctx, stderr, err)
	}
	code := 0
	for _, s := range st {
		if s.Exists && !s.Healthy() {
			code = 1
		}
	}
	if asJSON {
		writeJSON(stdout, st)
		return code
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tID\tSTATE\tNODE\tIP\tGPU\tDRIVER\tVLLM\tOLLAMA\tLAST RUN")
	for _, s := range st {
		state := "absent"
		switch {
		case s.Running:
			state = "running"
		case s.Exists:
			state = "stopped"
		}
		if s.Exists && !s.Owned {
			state += " (not ours)"
		}
		last := "-"
		if s.LastRun != "" {
			last = s.LastRun + " " + s.LastResult
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.VM, s.VMID, state, dash(s.Node), dash(s.IP), dash(s.GPU), dash(s.Driver), dash(s.VLLM), dash(s.Ollama), last)
	}
	_ = tw.Flush()
	for _, s := range st {
		if s.Probe != "" {
			fmt.Fprintf(stderr, "%s %s: SSH probe failed: %s\n", styleFor(stderr).failed(), s.VM, s.Probe)
		}
	}
	return code
}
