package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aimachine/aimachine/provision/readiness"
)

func newDoctorCmd(a *app) *cobra.Command {
	var f infraFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor [VM | --all] [flags]",
		Short: "check, read-only, that the Proxmox host is ready for a deploy; name every problem with its fix",
		Long: `Read-only checks of the Proxmox host for the catalog VMs: endpoint, TLS trust, credentials, PVE
release, privileges, cluster, storages, cloud image, vendor snippet, capacity, VM id, GPU.
One line per check (✓ / ✗ / !); every ✗ and ! names its fix, [prepare] marks what aimachine
prepare does. Creates nothing.

Exit status: 0 a deploy can succeed (no ✗), 1 a check failed or an error, 2 a usage error.
Proxmox access comes from PROXMOX_VE_*; --json prints the report as one JSON object.`,
		Example: `  aimachine doctor vm-llm-aimachine
  aimachine doctor --all
  aimachine doctor --vm 140 --json | jq '.checks[] | select(.status != "ok")'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.resolve(args); err != nil {
				return err
			}
			return exitOf(runDoctor(cmd.Context(), &f, asJSON, a.stdout, a.stderr))
		},
	}
	f.addFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON on stdout")
	return cmd
}

// runDoctor prints one line per check (✓ / ✗ / !) with the fix of every ✗ and !; exit 0 only
// when a deploy can succeed (no ✗).
func runDoctor(ctx context.Context, f *infraFlags, asJSON bool, stdout, stderr io.Writer) int {
	cat, vms, o, code, ok := loadSelection(f, stderr)
	if !ok {
		return code
	}
	rep, err := readiness.Doctor(ctx, o, cat, vms)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			*readiness.Report
			OK bool `json:"ok"`
		}{rep, rep.OK()})
	} else {
		printDoctor(stdout, rep)
	}
	if failed := rep.Failed(); len(failed) > 0 {
		fmt.Fprintf(stderr, "✗ %d of %d checks failed: a deploy would fail (fix them, or run aimachine prepare for those marked [prepare])\n", len(failed), len(rep.Checks))
		return 1
	}
	fmt.Fprintf(stderr, "✓ all %d checks passed: the host is ready\n", len(rep.Checks))
	return 0
}

func printDoctor(w io.Writer, rep *readiness.Report) {
	for _, c := range rep.Checks {
		line := c.Status.Mark() + " "
		if c.VM != "" {
			line += c.VM + ": "
		}
		line += c.Name
		if c.Detail != "" {
			line += " — " + c.Detail
		}
		if c.Prepare {
			line += " [prepare]"
		}
		fmt.Fprintln(w, line)
		if c.Status != readiness.OK && c.Fix != "" {
			for i, l := range strings.Split(c.Fix, "\n") {
				if i == 0 {
					fmt.Fprintln(w, "    fix: "+l)
				} else {
					fmt.Fprintln(w, "         "+l)
				}
			}
		}
	}
}
