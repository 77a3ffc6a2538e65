package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/readiness"
)

func init() {
	register(command{
		name:    "doctor",
		summary: "check, read-only, that the Proxmox host is ready for a deploy; name every problem with its fix",
		run:     runDoctor,
	})
}

// vmSelection is --vm NAME | --all of doctor and prepare.
type vmSelection struct {
	vm       string
	all      bool
	catalog  string
	insecure bool
}

func (s *vmSelection) register(fs *flag.FlagSet) {
	fs.StringVar(&s.vm, "vm", "", "the catalog VM `NAME` (or id)")
	fs.BoolVar(&s.all, "all", false, "every VM of the catalog")
	fs.StringVar(&s.catalog, "catalog", defaultCatalog, "the infrastructure catalog `FILE`")
	fs.BoolVar(&s.insecure, "insecure", false, "skip TLS verification of the Proxmox API (lab only)")
}

// load parses the flags' selection: the catalog, the VMs and the connection options.
func (s *vmSelection) load(name string, fs *flag.FlagSet, stderr io.Writer) (*catalog.Catalog, []*catalog.VM, provision.ConnOptions, int, bool) {
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", name, fs.Args())
		return nil, nil, provision.ConnOptions{}, 2, false
	}
	if (s.vm == "") == !s.all {
		fmt.Fprintf(stderr, "%s: give --vm NAME or --all (hint: aimachine catalog validate lists the VMs)\n", name)
		return nil, nil, provision.ConnOptions{}, 2, false
	}
	cat, err := catalog.LoadValid(s.catalog)
	if err != nil {
		printErr(stderr, err)
		return nil, nil, provision.ConnOptions{}, 1, false
	}
	var vms []*catalog.VM
	if s.all {
		for i := range cat.VMs {
			vms = append(vms, &cat.VMs[i])
		}
	} else {
		vm, err := cat.VM(s.vm)
		if err != nil {
			printErr(stderr, err)
			return nil, nil, provision.ConnOptions{}, 1, false
		}
		vms = []*catalog.VM{vm}
	}
	o, err := provision.ConnOptionsFromEnv(getenv)
	if err != nil {
		printErr(stderr, err)
		return nil, nil, o, 1, false
	}
	if s.insecure {
		o.Insecure = true
	}
	return cat, vms, o, 0, true
}

// runDoctor prints one line per check (✓ / ✗ / !) with the fix of every ✗ and !; exit 0 only
// when a deploy can succeed (no ✗).
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("aimachine doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s vmSelection
	s.register(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: aimachine doctor [--vm NAME] [--all] [--catalog FILE] [--insecure] [--json]")
		fmt.Fprintln(fs.Output(), "One of --vm and --all. Read-only: endpoint, TLS trust, credentials, PVE release, privileges, cluster, storages, cloud image, vendor snippet, capacity, VM id, GPU.")
		fmt.Fprintln(fs.Output(), "Creates nothing. Exit 0 only when a deploy can succeed; every ✗ names its fix. Proxmox access comes from PROXMOX_VE_*.")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	cat, vms, o, code, ok := s.load(fs.Name(), fs, stderr)
	if !ok {
		return code
	}
	rep, err := readiness.Doctor(ctx, o, cat, vms)
	if err != nil {
		return fail(ctx, stderr, err)
	}
	if *asJSON {
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
