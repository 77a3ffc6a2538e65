package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/guest"
)

// Evidence is the record of one deployment: where it runs, what the guest reports, and how
// long each task took. It is written to reports/<vm>-<run>/evidence.json.
type Evidence struct {
	VM         string    `json:"vm"`
	VMID       int       `json:"vmid"`
	Node       string    `json:"node"`
	RunID      string    `json:"run_id"`
	Time       time.Time `json:"time"`
	PVEVersion string    `json:"pve_version,omitempty"`

	GPU EvidenceGPU `json:"gpu"`

	GuestKernel   string `json:"guest_kernel,omitempty"`
	Driver        string `json:"driver_version,omitempty"`
	DriverFlavour string `json:"driver_flavour,omitempty"` // open | proprietary
	CUDA          string `json:"cuda,omitempty"`           // nvcc release
	VLLM          string `json:"vllm,omitempty"`
	Ollama        string `json:"ollama,omitempty"`
	Model         string `json:"model,omitempty"`

	Summary EvidenceSummary  `json:"summary"`
	Timings []EvidenceTiming `json:"timings"`
	Checks  []VerifyCheck    `json:"checks,omitempty"`
	// Completions are verify's chat completions (TTFT, tokens/s, on the GPU).
	Completions []Completion `json:"completions,omitempty"`
	// Errors are the facts that could not be read (the record is still written).
	Errors []string `json:"errors,omitempty"`
}

// EvidenceGPU is the passed-through GPU as the catalog and the guest see it.
type EvidenceGPU struct {
	PCIAddress string `json:"pci_address,omitempty"`
	Mapping    string `json:"mapping,omitempty"`
	PCIID      string `json:"pci_id,omitempty"`
	Model      string `json:"model,omitempty"`
	MemoryMiB  int    `json:"memory_mib,omitempty"`
}

// EvidenceSummary counts the run's tasks.
type EvidenceSummary struct {
	OK      int `json:"ok"`
	Changed int `json:"changed"`
	Failed  int `json:"failed"`
}

// EvidenceTiming is one finished task.
type EvidenceTiming struct {
	Phase   string  `json:"phase"`
	Task    string  `json:"task"`
	Status  Status  `json:"status"`
	Seconds float64 `json:"seconds"`
}

// evidenceScript reads the versions in one read-only command.
const evidenceScript = `export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo "kernel=$(uname -r)"
echo "nvrm=$(head -n1 /proc/driver/nvidia/version 2>/dev/null)"
echo "smi=$(nvidia-smi --query-gpu=name,memory.total,driver_version,pci.device_id --format=csv,noheader,nounits 2>/dev/null | head -n1)"
echo "nvcc=$(/usr/local/cuda/bin/nvcc --version 2>/dev/null | grep -o 'release [0-9.]*')"
echo "vllm=$(/opt/vllm/venv/bin/python -m pip show vllm 2>/dev/null | sed -n 's/^Version: //p')"
echo "ollama=$(ollama --version 2>/dev/null | sed -n 's/.*version is //p' | head -n1)"
`

var nvrmVersion = regexp.MustCompile(`Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)`)

// BuildEvidence collects the evidence of a finished deployment: res from Deploy, rep from
// VerifyGuest (may be zero), r an open SSH runner to the guest (nil: guest facts are skipped).
// It only reads: the PVE version through the API and one read-only command in the guest.
func (c *Client) BuildEvidence(ctx context.Context, cat *catalog.Catalog, res *DeployResult, rep VerifyReport, r guest.Runner) (*Evidence, error) {
	if res == nil {
		return nil, errors.New("no deployment result")
	}
	e := &Evidence{VM: res.Name, VMID: res.VMID, Node: res.Node, RunID: res.RunID, Time: time.Now().UTC(),
		Summary: EvidenceSummary{OK: res.Summary.OK, Changed: res.Summary.Changed, Failed: res.Summary.Failed},
		Checks:  rep.Checks, Completions: rep.Completions, Timings: []EvidenceTiming{}}
	for _, t := range res.Summary.Tasks {
		e.Timings = append(e.Timings, EvidenceTiming{Phase: t.Phase, Task: t.Task, Status: t.Status, Seconds: t.Elapsed.Seconds()})
	}
	if vm, err := cat.VM(res.Name); err == nil {
		if vm.GPUEnabled() {
			e.GPU = EvidenceGPU{PCIAddress: vm.GPU.PCIAddress, Mapping: vm.GPU.Mapping, PCIID: vm.GPU.Expect.PCIID, Model: vm.GPU.Expect.Model, MemoryMiB: vm.GPU.Expect.MemoryMiB}
		}
		if vm.VLLMEnabled() {
			e.Model = vm.Services.VLLM.Model
		}
	}
	if c != nil && c.api != nil {
		v, err := c.api.Version(ctx)
		if err != nil {
			e.Errors = append(e.Errors, "PVE version: "+err.Error())
		}
		e.PVEVersion = v
	}
	if rep.hasEvidence {
		// The proof ran the evidence script in its session already.
		parseEvidence(e, rep.evidence)
		return e, nil
	}
	if r == nil {
		return e, nil
	}
	out, err := r.Run(ctx, evidenceScript)
	if err != nil {
		e.Errors = append(e.Errors, "guest facts: "+err.Error())
	}
	parseEvidence(e, out.Stdout)
	return e, nil
}

// parseEvidence fills e from evidenceScript's key=value lines.
func parseEvidence(e *Evidence, out string) {
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "kernel":
			e.GuestKernel = v
		case "nvrm":
			if m := nvrmVersion.FindStringSubmatch(v); m != nil {
				e.Driver = m[1]
			}
			switch {
			case strings.Contains(v, "Open Kernel Module"):
				e.DriverFlavour = "open"
			case v != "":
				e.DriverFlavour = "proprietary"
			}
		case "smi":
			f := strings.Split(v, ",")
			if len(f) >= 3 {
				e.GPU.Model = strings.TrimSpace(f[0])
				fmt.Sscan(strings.TrimSpace(f[1]), &e.GPU.MemoryMiB)
				if e.Driver == "" {
					e.Driver = strings.TrimSpace(f[2])
				}
			}
		case "nvcc":
			e.CUDA = strings.TrimPrefix(v, "release ")
		case "vllm":
			e.VLLM = v
		case "ollama":
			e.Ollama = v
		}
	}
}

// Write writes dir/<vm>-<run>/evidence.json and returns its path.
func (e *Evidence) Write(dir string) (string, error) {
	if dir == "" {
		dir = "reports"
	}
	d := filepath.Join(dir, e.VM+"-"+e.RunID)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return "", err
	}
	p := filepath.Join(d, "evidence.json")
	return p, os.WriteFile(p, append(b, '\n'), 0o644)
}
