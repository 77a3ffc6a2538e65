package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

func newVerifyCmd(a *app) *cobra.Command {
	var f infraFlags
	var h hostFlags
	var asJSON bool
	var reports string
	var ff fleetFlags
	cmd := &cobra.Command{
		Use:   "verify [VM] [flags]",
		Short: "prove a deployed VM's GPU, CUDA, vLLM and Ollama (read-only)",
		Long: `Read-only proof over SSH: lspci, nvidia-smi (model, memory, driver), open kernel module, dmesg,
nvcc, a CUDA sample, vLLM /health and /v1/models, Ollama, a chat completion from vLLM (and a 401
without its API key) and from each listed Ollama model (time to first token, tokens/s; through the
SSH connection). Writes <reports>/<vm>-verify-<time>/evidence.json. Exit 0 only when every check
passes. --json prints the report as one JSON object on stdout (docs/json.md).`,
		Example: `  aimachine verify vm-llm-aimachine
  aimachine verify vm-llm-aimachine --json | jq '.checks[] | select(.pass | not)'
  aimachine verify --vm vm-llm-aimachine --host ubuntu@192.168.0.50`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.resolve(args); err != nil {
				return err
			}
			if f.multi() {
				if h.host != "" {
					return usageErrorf("", "--host verifies one machine: give one VM, not several or --all")
				}
				if err := ff.check(); err != nil {
					return err
				}
				return exitOf(runFleetVerify(cmd.Context(), f, h, ff, asJSON, a.stdout, a.stderr))
			}
			return exitOf(runVerify(cmd.Context(), f, h, asJSON, reports, a.stdout, a.stderr))
		},
	}
	f.addCatalog(cmd)
	fs := cmd.Flags()
	h.addSSH(fs)
	addReports(fs, &reports)
	fs.StringVar(&h.host, "host", "", "verify this machine `USER@ADDR[:PORT]` instead of the catalog VM's address")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON on stdout (docs/json.md)")
	ff.add(fs)
	return cmd
}

func runVerify(ctx context.Context, f infraFlags, h hostFlags, asJSON bool, reports string, stdout, stderr io.Writer) int {
	cat, err := catalog.LoadValid(f.catalog)
	if err != nil {
		if asJSON {
			writeJSON(stdout, verifyJSON(f.vm, provision.VerifyReport{}, err))
		}
		return fail(ctx, stderr, err)
	}
	rep, err := provision.Verify(ctx, cat, f.vm, h.options())
	var evPath string
	if err == nil {
		// The record of this verification (checks, completions); a failure to write it is
		// reported, never fatal.
		ev := provision.VerifyEvidence(rep, "verify-"+time.Now().UTC().Format("20060102T150405Z"))
		if path, werr := ev.Write(reports); werr != nil {
			fmt.Fprintln(stderr, "evidence not written:", werr)
		} else {
			evPath = path
			fmt.Fprintln(stderr, "evidence: "+path)
		}
	}
	if asJSON {
		out := verifyJSON(f.vm, rep, err)
		out.Evidence = evPath
		writeJSON(stdout, out)
	}
	if err != nil {
		return fail(ctx, stderr, err)
	}
	if !asJSON {
		printVerify(stdout, rep, styleFor(stdout))
	}
	st := styleFor(stderr)
	if !rep.OK() {
		fmt.Fprintf(stderr, "%s %d of %d checks failed on %s\n", st.failed(), len(rep.Failed()), len(rep.Checks), rep.VM)
		return 1
	}
	fmt.Fprintf(stderr, "%s all %d checks passed on %s\n", st.ok(), len(rep.Checks), rep.VM)
	return 0
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// printVerify prints one line per check with its evidence indented below.
func printVerify(w io.Writer, rep provision.VerifyReport, st style) {
	for _, c := range rep.Checks {
		mark := st.ok()
		if !c.Pass {
			mark = st.failed()
		}
		fmt.Fprintf(w, "%s %s\n", mark, c.Name)
		for _, l := range strings.Split(c.Evidence, "\n") {
			if strings.TrimSpace(l) != "" {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
}
