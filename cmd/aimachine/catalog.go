package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aimachine/aimachine/catalog"
)

func newCatalogCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog <validate|schema>",
		Short: "check the infrastructure catalog (validate) or print its JSON Schema (schema)",
		Example: `  aimachine catalog validate
  aimachine catalog validate --catalog my-catalog.yml
  aimachine catalog schema > catalog.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("'aimachine catalog --help' lists them", "a subcommand is required: validate or schema")
		},
	}
	var path string
	validate := &cobra.Command{
		Use:   "validate [flags]",
		Short: "check every rule; one line per VM on stdout, warnings and errors on stderr",
		Long: `Checks the catalog: prints one line per VM on stdout, warnings and errors on stderr, each as
FILE:LINE:COL: field.path: message. Exit 0 when valid (warnings allowed), 1 when not.`,
		Example: "  aimachine catalog validate\n  aimachine catalog validate --catalog my-catalog.yml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitOf(runCatalogValidate(path, a.stdout, a.stderr))
		},
	}
	validate.Flags().StringVar(&path, "catalog", catalogDefault(), "the infrastructure catalog `FILE` ($"+envCatalog+" sets the default)")
	_ = validate.MarkFlagFilename("catalog", "yml", "yaml")
	schema := &cobra.Command{
		Use:     "schema",
		Short:   "print the catalog's JSON Schema (for editors)",
		Example: "  aimachine catalog schema > catalog.schema.json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, _ = a.stdout.Write(catalog.SchemaJSON)
			return nil
		},
	}
	cmd.AddCommand(validate, schema)
	return cmd
}

// runCatalogValidate exits 0 when the catalog is valid (warnings allowed), 1 when it is not.
func runCatalogValidate(path string, stdout, stderr io.Writer) int {
	st := styleFor(stderr)
	c, err := catalog.Load(path)
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
			fmt.Fprintf(stderr, "%s %s: %d %s\n", st.failed(), path, len(verrs), plural(len(verrs), "error", "errors"))
			return 1
		}
		fmt.Fprintf(stderr, "%s %v (hint: pass --catalog FILE, or start from the sample %s)\n", st.failed(), err, defaultCatalog)
		return 1
	}
	for i := range c.VMs {
		fmt.Fprintln(stdout, summarizeVM(&c.VMs[i]))
	}
	fmt.Fprintf(stderr, "%s %s: %d %s valid\n", st.ok(), path, len(c.VMs), plural(len(c.VMs), "VM", "VMs"))
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
