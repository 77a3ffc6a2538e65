package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

type deployFlags struct {
	infraFlags
	h         hostFlags // --ssh-key, --known-hosts, --jump, and --host for the guest phase alone
	keep      bool
	replace   bool
	infraOnly bool
	json      bool
	reports   string
	// waits bounds each wait (agent, cloud-init, SSH, a PVE config lock); forceUnlock takes
	// over a crashed run's lease.
	waits       time.Duration
	forceUnlock string
	fleet       fleetFlags // --parallel, --fail-fast (several VMs)
}

// options are the DeployOptions of one VM's deploy (also each VM's of a fleet deploy).
func (f *deployFlags) options(rep provision.Reporter) provision.DeployOptions {
	h := f.h
	return provision.DeployOptions{
		Reporter: rep, KeepOnFailure: f.keep, InfraOnly: f.infraOnly,
		Lease:        provision.LeaseOptions{ForceUnlock: f.forceUnlock, LockWait: f.waits},
		AgentTimeout: f.waits, CloudInitTimeout: f.waits,
		SSH:   provision.SSHOptions{KnownHostsFile: h.knownHosts, KeyFile: h.sshKey, Jump: h.jump, ReplaceHostKey: f.replace, Timeout: f.waits},
		Guest: provision.GuestOptions{ReportDir: f.reports},
	}
}

func newDeployCmd(a *app) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy [VM] [flags]",
		Short: "create or converge a catalog VM on Proxmox VE and set up its LLM services",
		Long: `Converges the VM: preflight, create or minimal change, start, cloud-init, pin the SSH host key
through the guest agent, SSH, then the guest phase (open NVIDIA driver, CUDA, vLLM, Ollama) and
the GPU proof. Proxmox access comes from PROXMOX_VE_*. A VM this run created is rolled back
(deleted, its pinned host key removed) when the infrastructure phase fails, unless
--keep-on-failure.

With --host: only the guest phase, on an already installed Ubuntu 24.04 machine (no Proxmox access).

Progress goes to stderr (✓ / ✗ lines, a heartbeat for a task running over 10s, the recap with
the total time); the result to stdout. --json prints one JSON event per line on stdout, then
the result (docs/json.md).`,
		Example: `  aimachine deploy vm-llm-aimachine
  aimachine deploy --vm vm-llm-aimachine --infra-only
  aimachine deploy vm-llm-aimachine --json | jq -c 'select(.type=="result")'
  aimachine deploy vm-llm-aimachine --host ubuntu@192.168.0.50 --accept-new-host-key`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.resolve(args); err != nil {
				return err
			}
			if f.multi() {
				if f.h.host != "" {
					return usageErrorf("", "--host runs the guest phase on one machine: give one VM, not several or --all")
				}
				if err := f.fleet.check(); err != nil {
					return err
				}
				return exitOf(runFleetDeploy(cmd.Context(), &f, a.stdout, a.stderr))
			}
			return exitOf(runDeploy(cmd.Context(), &f, a.stdout, a.stderr))
		},
	}
	fs := cmd.Flags()
	f.addFlags(cmd)
	fs.BoolVar(&f.keep, "keep-on-failure", false, "keep a VM this run created when a later step fails (default: roll it back)")
	f.h.addSSH(fs)
	fs.StringVar(&f.h.host, "host", "", "run only the guest phase on this existing Ubuntu 24.04 machine `USER@ADDR[:PORT]`")
	fs.BoolVar(&f.h.acceptNew, "accept-new-host-key", false, "with --host: trust and pin the machine's SSH host key if none is pinned yet (a changed key is still refused)")
	fs.BoolVar(&f.replace, "replace-host-key", false, "replace a pinned guest host key that differs (the VM was re-created)")
	fs.BoolVar(&f.infraOnly, "infra-only", false, "stop once the VM runs and its host key is pinned (no SSH, no guest phase)")
	fs.BoolVar(&f.json, "json", false, "print one JSON event per line on stdout, then the result (docs/json.md)")
	fs.DurationVar(&f.waits, "timeout", 0, "bound each wait (guest agent, cloud-init, SSH, a PVE config lock) to `DURATION` (default: agent 10m, cloud-init 20m, SSH 5m, lock 5m)")
	fs.StringVar(&f.forceUnlock, "force-unlock", "", "take over the run lease of the crashed run `RUN_ID` (named in the refusal) instead of waiting for it to expire")
	addReports(fs, &f.reports)
	f.fleet.add(fs)
	return cmd
}

// exitOf turns an exit status into RunE's error.
func exitOf(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

func runDeploy(ctx context.Context, f *deployFlags, stdout, stderr io.Writer) int {
	h := f.h
	switch {
	case h.host != "" && (f.infraOnly || f.replace || f.keep || f.forceUnlock != ""):
		fmt.Fprintln(stderr, "aimachine deploy: --host runs only the guest phase; --infra-only, --replace-host-key, --keep-on-failure and --force-unlock apply to a Proxmox deploy (hint: drop them, or drop --host)")
		return 2
	case h.host == "" && h.acceptNew:
		fmt.Fprintln(stderr, "aimachine deploy: --accept-new-host-key needs --host (hint: a Proxmox deploy pins the key it reads through the guest agent)")
		return 2
	case h.host != "":
		h.verbose = f.verbose
		var js *jsonStream
		if f.json {
			js = newJSONStream(stdout)
		}
		return runHostDeployJSON(ctx, f.catalog, f.vm, h, f.reports, js, stdout, stderr)
	}
	start := time.Now()
	rep := &renderer{w: stderr, verbose: f.verbose, style: styleFor(stderr)}
	if f.json {
		rep.json = newJSONStream(stdout)
	}
	result := func(res *provision.DeployResult, evidence string, err error) {
		if rep.json == nil {
			return
		}
		out := jsonDeployResult{Type: "result", OK: err == nil, VM: f.vm, ReportsDir: f.reports, Evidence: evidence, Error: errorJSON(err)}
		if res != nil {
			out.VM, out.VMID, out.Node, out.IP, out.RunID = res.Name, res.VMID, res.Node, res.IP, res.RunID
			out.Created, out.RolledBack, out.GuestPhase = res.Created, res.RolledBack, res.GuestPhase
			out.Summary = summaryJSON(res.Summary, start)
		} else {
			out.Summary = summaryJSON(provision.Summary{}, start)
		}
		rep.json.write(out)
	}
	var dialing *provision.GuestDial
	if !f.infraOnly {
		dialing = startGuestDial(ctx, &f.infraFlags, h)
		defer dialing.Close()
	}
	cat, c, _, err := connect(ctx, &f.infraFlags, stderr)
	if err != nil {
		result(nil, "", err)
		return fail(ctx, stderr, err)
	}
	if cat, err = placeFor(ctx, c, cat, []string{f.vm}, stderr); err != nil {
		result(nil, "", err)
		return fail(ctx, stderr, err)
	}
	if !f.json {
		fmt.Fprintf(stderr, "deploy %s: reports in %s\n", f.vm, f.reports)
	}
	opts := f.options(rep)
	opts.SSH.Dialing = dialing
	res, err := c.Deploy(ctx, cat, f.vm, opts)
	evidence := ""
	if err == nil && res != nil && res.GuestPhase {
		evidence = writeEvidence(ctx, c, cat, res, f.reports, stderr)
	}
	if res != nil && res.Runner != nil {
		_ = res.Runner.Close()
	}
	result(res, evidence, err)
	if err != nil {
		code := rep.fail(ctx, err)
		if res != nil {
			fmt.Fprintln(stderr, recap(res.Summary, start))
		}
		return code
	}
	if !f.json {
		fmt.Fprintf(stdout, "VM %d %s on node %s: %s (run %s)\n", res.VMID, res.Name, res.Node, res.IP, res.RunID)
	}
	fmt.Fprintln(stderr, recap(res.Summary, start))
	return 0
}

// writeEvidence writes DIR/<vm>-<run>/evidence.json (versions, GPU, timings) and returns its
// path; a failure to write it is reported, never fatal.
func writeEvidence(ctx context.Context, c *provision.Client, cat *catalog.Catalog, res *provision.DeployResult, dir string, stderr io.Writer) string {
	ev, err := c.BuildEvidence(ctx, cat, res, res.Proof, res.Runner)
	if err == nil {
		var path string
		if path, err = ev.Write(dir); err == nil {
			fmt.Fprintln(stderr, "evidence: "+path)
			return path
		}
	}
	fmt.Fprintln(stderr, "evidence not written:", err)
	return ""
}
