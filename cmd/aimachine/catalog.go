package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/aimachine/aimachine/catalog"
)

// defaultCatalog is the catalog every command reads unless --catalog says otherwise.
const defaultCatalog = "infrastructure-catalog.yml"

func init() {
	register(command{
		name:    "catalog",
		summary: "check the infrastructure catalog (validate) or print its JSON Schema (schema)",
		run:     runCatalog,
	})
}

func runCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		catalogUsage(stderr)
		return 2
	}
	switch args[0] {
	case "validate":
		return runCatalogValidate(ctx, args[1:], stdout, stderr)
	case "schema":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "aimachine catalog schema: takes no arguments, got %q\n", args[1:])
			return 2
		}
		_, _ = stdout.Write(catalog.SchemaJSON)
		return 0
	case "help", "-h", "--help":
		catalogUsage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "aimachine catalog: unknown subcommand %q (hint: validate or schema)\n", args[0])
	return 2
}

func catalogUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: aimachine catalog <subcommand>")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Subcommands:")
	fmt.Fprintln(w, "  validate [--catalog FILE]  check every rule; one line per VM on stdout, problems on stderr")
	fmt.Fprintln(w, "  schema                     print the catalog's JSON Schema (for editors)")
}

// runCatalogValidate exits 0 when the catalog is valid (warnings allowed), 1 when it is not,
// 2 on a usage error.
func runCatalogValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("aimachine catalog validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("catalog", defaultCatalog, "the infrastructure catalog `FILE`")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: aimachine catalog validate [--catalog FILE]")
		fmt.Fprintln(fs.Output(), "Checks the catalog: prints one line per VM on stdout, warnings and errors on stderr.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "aimachine catalog validate: unexpected arguments %q (hint: --catalog FILE)\n", fs.Args())
		return 2
	}

	c, err := catalog.Load(*path)
	if err == nil {
		err = c.Validate()
		for _, w := range c.Warnings() {
			fmt.Fprintln(stderr, w)
		}
	}
	if err != nil {
		var verrs catalog.ValidationErrors
		if errors.As(err, &verrs) {
			for _, e := range verrs {
				fmt.Fprintln(stderr, e)
			}
			fmt.Fprintf(stderr, "✗ %s: %d %s\n", *path, len(verrs), plural(len(verrs), "error", "errors"))
			return 1
		}
		fmt.Fprintf(stderr, "✗ %v (hint: pass --catalog FILE, or start from the sample %s)\n", err, defaultCatalog)
		return 1
	}
	for i := range c.VMs {
		fmt.Fprintln(stdout, summarizeVM(&c.VMs[i]))
	}
	fmt.Fprintf(stderr, "✓ %s: %d %s valid\n", *path, len(c.VMs), plural(len(c.VMs), "VM", "VMs"))
	return 0
}

// summarizeVM is the one-line ✓ summary of a valid VM, e.g.
// ✓ 140 vm-llm-aimachine on pve: 32 cores, 50 GiB RAM, 500 GB on local-lvm, GPU 0000:01:00 (10de:2d04), 192.168.0.140/24, vLLM :8000, Ollama :11434
func summarizeVM(vm *catalog.VM) string {
	parts := []string{
		fmt.Sprintf("%d %s", vm.Cores, plural(vm.Cores, "core", "cores")),
		memory(vm.MemoryMB) + " RAM",
		fmt.Sprintf("%d GB on %s", vm.Disk.SizeGB, vm.Disk.Storage),
	}
	if vm.GPUEnabled() {
		dev := vm.GPU.PCIAddress
		if vm.GPU.Mapping != "" {
			dev = "mapping " + vm.GPU.Mapping
		}
		parts = append(parts, fmt.Sprintf("GPU %s (%s)", dev, vm.GPU.Expect.PCIID))
	}
	parts = append(parts, vm.IPCIDR())
	if vm.VLLMEnabled() {
		parts = append(parts, fmt.Sprintf("vLLM :%d", vm.Services.VLLM.Port))
	}
	if vm.OllamaEnabled() {
		parts = append(parts, fmt.Sprintf("Ollama :%d", vm.Services.Ollama.Port))
	}
	return fmt.Sprintf("✓ %d %s on %s: %s", vm.ID, vm.Name, vm.Node, strings.Join(parts, ", "))
}

// memory prints MB as GiB when it is a whole number of them (51200 -> "50 GiB").
func memory(mb int) string {
	if mb%1024 == 0 {
		return fmt.Sprintf("%d GiB", mb/1024)
	}
	return fmt.Sprintf("%d MiB", mb)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
