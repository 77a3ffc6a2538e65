package main

import (
	"io"
	"log/slog"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/fleet"
)

// loadSelection is the preamble doctor and prepare share: the catalog, the VMs of the
// selection (one name, a,b,c or --all; f.resolve has checked the command line) and the
// connection options from PROXMOX_VE_*. ok false means exit with code (printed on stderr).
func loadSelection(f *infraFlags, stderr io.Writer) (cat *catalog.Catalog, vms []*catalog.VM, o provision.ConnOptions, code int, ok bool) {
	cat, err := catalog.LoadValid(f.catalog)
	if err != nil {
		printErr(stderr, err)
		return nil, nil, o, 1, false
	}
	names, err := fleet.Select(cat, f.vm, f.all)
	if err != nil {
		printErr(stderr, err)
		return nil, nil, o, 1, false
	}
	for _, n := range names {
		vm, err := cat.VM(n)
		if err != nil {
			printErr(stderr, err)
			return nil, nil, o, 1, false
		}
		vms = append(vms, vm)
	}
	o, err = provision.ConnOptionsFromEnv(getenv)
	if err != nil {
		printErr(stderr, err)
		return nil, nil, o, 1, false
	}
	if f.insecure {
		o.Insecure = true
	}
	if f.verbose {
		o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cat, vms, o, 0, true
}
