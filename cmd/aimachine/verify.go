package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

func init() {
	register(command{
		name:    "verify",
		summary: "prove a deployed VM's GPU, CUDA, vLLM and Ollama (read-only)",
		run:     runVerify,
	})
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("aimachine verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vm := fs.String("vm", "", "the catalog VM `NAME` (or id)")
	catPath := fs.String("catalog", defaultCatalog, "the infrastructure catalog `FILE`")
	var h hostFlags
	h.registerSSH(fs)
	fs.StringVar(&h.host, "host", "", "verify this machine `USER@ADDR[:PORT]` instead of the catalog VM's address")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: aimachine verify --vm NAME [--catalog FILE] [--host USER@ADDR[:PORT]] [--ssh-key FILE] [--known-hosts FILE] [--jump USER@HOST:PORT] [--json]")
		fmt.Fprintln(fs.Output(), "Read-only proof over SSH: lspci, nvidia-smi (model, memory, driver), open kernel module, dmesg, nvcc, a CUDA sample, vLLM /health and /v1/models, a chat completion from vLLM and from each listed Ollama model (time to first token, tokens/s; through the SSH connection), Ollama. Writes reports/<vm>-verify-<time>/evidence.json. Exit 0 only when every check passes.")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 || *vm == "" {
		fmt.Fprintln(stderr, "aimachine verify: --vm NAME is required (hint: aimachine catalog validate lists the VMs)")
		return 2
	}
	cat, err := catalog.LoadValid(*catPath)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	rep, err := provision.Verify(ctx, cat, *vm, h.options())
	if err != nil {
		return fail(ctx, stderr, err)
	}
	ev := provision.VerifyEvidence(rep, "verify-"+time.Now().UTC().Format("20060102T150405Z"))
	if path, err := ev.Write(reportDir); err != nil {
		fmt.Fprintln(stderr, "evidence not written:", err)
	} else {
		fmt.Fprintln(stderr, "evidence: "+path)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			provision.VerifyReport
			OK bool
		}{rep, rep.OK()})
	} else {
		printVerify(stdout, rep)
	}
	if !rep.OK() {
		fmt.Fprintf(stderr, "✗ %d of %d checks failed on %s\n", len(rep.Failed()), len(rep.Checks), rep.VM)
		return 1
	}
	fmt.Fprintf(stderr, "✓ all %d checks passed on %s\n", len(rep.Checks), rep.VM)
	return 0
}

// printVerify prints one line per check with its evidence indented below.
func printVerify(w io.Writer, rep provision.VerifyReport) {
	for _, c := range rep.Checks {
		mark := "✓"
		if !c.Pass {
			mark = "✗"
		}
		fmt.Fprintf(w, "%s %s\n", mark, c.Name)
		for _, l := range strings.Split(c.Evidence, "\n") {
			if strings.TrimSpace(l) != "" {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
}
