package tasks

import (
	"context"
	"fmt"
	"strings"

	"github.com/aimachine/aimachine/provision/guest"
)

// Check is one named verification with its evidence.
type Check struct {
	Name     string
	Pass     bool
	Evidence string
}

// cudaSample is a tiny kernel: it adds two vectors on the GPU and checks the result.
const cudaSample = `#include <cstdio>
__global__ void add(const float *a, const float *b, float *c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
int main() {
  const int n = 1 << 16;
  float *a, *b, *c;
  if (cudaMallocManaged(&a, n * sizeof(float)) != cudaSuccess) { printf("FAIL cudaMallocManaged\n"); return 1; }
  cudaMallocManaged(&b, n * sizeof(float));
  cudaMallocManaged(&c, n * sizeof(float));
  for (int i = 0; i < n; i++) { a[i] = i; b[i] = 2 * i; }
  add<<<(n + 255) / 256, 256>>>(a, b, c, n);
  cudaError_t err = cudaDeviceSynchronize();
  if (err != cudaSuccess) { printf("FAIL %s\n", cudaGetErrorString(err)); return 1; }
  for (int i = 0; i < n; i++) if (c[i] != 3 * i) { printf("FAIL c[%d]=%f\n", i, c[i]); return 1; }
  printf("PASS vector add of %d elements\n", n);
  return 0;
}
`

// verifyProbes are the read-only commands the verification adds to the facts (and Extra).
func (h *Host) verifyProbes() map[string]string {
	probes := map[string]string{
		"dmesg":       `dmesg 2>/dev/null || journalctl -k -b --no-pager -o short-monotonic`,
		"modinfo":     `modinfo -F license nvidia`,
		"smi_full":    `nvidia-smi`,
		"cuda_sample": `d=$(mktemp -d /tmp/aimachine-verify.XXXXXX) && cat > "$d/add.cu" <<'EOF'` + "\n" + cudaSample + "EOF\n" + `/usr/local/cuda/bin/nvcc -o "$d/add" "$d/add.cu" && "$d/add"; rc=$?; rm -rf "$d"; exit $rc`,
	}
	if o := h.P.Ollama; o != nil {
		env := "OLLAMA_HOST=" + guest.Quote(ollamaHost(o)) + " "
		probes["ollama_version_live"] = env + `ollama --version`
		probes["ollama_list"] = env + `ollama list`
	}
	for k, v := range h.Extra {
		probes[k] = v
	}
	return probes
}

// withVerifyProbes adds the verification probes to the facts probes (one script, one session).
func (h *Host) withVerifyProbes(probes map[string]string) map[string]string {
	for k, v := range h.verifyProbes() {
		probes[k] = v
	}
	return probes
}

// Verify proves the GPU stack and services with read-only commands: the facts probes and the
// verification probes in one script, one exec session (the CUDA sample builds in a temporary
// directory it removes). After GatherProof, while no task has changed anything since the first
// facts pass, that pass is the proof and no session is opened.
func (h *Host) Verify(ctx context.Context) ([]Check, error) {
	f := h.verified
	if f == nil {
		h.Invalidate()
		var err error
		if f, err = h.gather(ctx, "run verification commands", h.withVerifyProbes(h.probes())); err != nil {
			return nil, err
		}
		h.facts = f
	}
	h.lastVerify = f
	var cs []Check
	add := func(name string, pass bool, evidence string) {
		cs = append(cs, Check{Name: name, Pass: pass, Evidence: strings.TrimSpace(evidence)})
	}
	if g := h.P.GPU; g != nil {
		h.verifyGPU(f, g, add)
	}
	if v := h.P.VLLM; v != nil {
		h.verifyVLLM(f, v, add)
	}
	if o := h.P.Ollama; o != nil {
		h.verifyOllama(f, o, add)
	}
	return cs, nil
}

// VerifyFact is an output the last Verify observed (an Extra probe's, say).
func (h *Host) VerifyFact(name string) (Fact, bool) {
	f, ok := h.lastVerify[name]
	return f, ok
}

func (h *Host) verifyGPU(f map[string]Fact, g *GPUParams, add func(string, bool, string)) {
	id := strings.ToLower(g.PCIID)
	// lspci: match the PCI id, not the marketing name (old pci.ids says "Device [10de:2d04]").
	var line string
	for _, d := range ParseLspci(f["lspci"].Out) {
		if d.ID == id {
			line = d.Line
		}
	}
	add("lspci shows the GPU "+id, line != "", orDefault(line, "lspci -nn -d 10de: printed:\n"+f["lspci"].Out))

	smi := f["smi"]
	gpus, perr := ParseSMICSV(smi.Out)
	var gpu *SMIGPU
	for i := range gpus {
		if gpus[i].DeviceID == id || (gpus[i].DeviceID == "" && len(gpus) == 1) {
			gpu = &gpus[i]
		}
	}
	ev := strings.TrimSpace(smi.Out)
	if smi.RC != 0 {
		ev = fmt.Sprintf("nvidia-smi exited %d: %s", smi.RC, ev)
	} else if perr != nil {
		ev = perr.Error()
	}
	add("nvidia-smi sees the GPU "+id, smi.RC == 0 && gpu != nil, ev)
	if gpu != nil {
		add("nvidia-smi names the model "+g.Model, g.Model == "" || strings.EqualFold(gpu.Name, g.Model), "name: "+gpu.Name)
		add(fmt.Sprintf("nvidia-smi shows %d MiB of GPU memory", g.MemoryMiB), g.MemoryMiB == 0 || gpu.MemoryMiB == g.MemoryMiB, fmt.Sprintf("memory.total: %d MiB", gpu.MemoryMiB))
		add("nvidia-smi shows the driver version", gpu.Driver != "", "driver_version: "+gpu.Driver)
	} else {
		add("nvidia-smi names the model "+g.Model, false, "no GPU row")
		add(fmt.Sprintf("nvidia-smi shows %d MiB of GPU memory", g.MemoryMiB), false, "no GPU row")
		add("nvidia-smi shows the driver version", false, "no GPU row")
	}

	mod, ok := ParseModuleVersion(f["nv_version"].Out)
	lic := strings.TrimSpace(f["modinfo"].Out)
	openOK := ok && mod.Open && (lic == "" || lic == "Dual MIT/GPL")
	add("the loaded module is the open kernel module", openOK, strings.TrimSpace(mod.Line+"\nmodinfo -F license nvidia: "+lic))

	errs := DmesgErrors(f["dmesg"].Out)
	if f["dmesg"].RC != 0 {
		add("no NVIDIA errors in dmesg", false, "could not read the kernel log: "+guest.Tail(f["dmesg"].Out, 3))
	} else {
		add("no NVIDIA errors in dmesg", len(errs) == 0, orDefault(strings.Join(errs, "\n"), "no NVRM error lines"))
	}

	nvcc, nok := ParseNvcc(f["nvcc"].Out)
	min := MinCUDA(Arch(id))
	add("nvcc is CUDA "+min+" or newer", nok && nvcc.AtLeast(min) && nvcc.AtLeast("12.6"), orDefault(lastLine(f["nvcc"].Out), "no /usr/local/cuda/bin/nvcc"))
	_, smiCUDA := ParseSMIHeader(f["smi_full"].Out)
	have, _ := ParseVersion(smiCUDA)
	add("the driver supports the toolkit's CUDA", nok && smiCUDA != "" && have.Compare(nvcc) >= 0,
		fmt.Sprintf("driver CUDA %s, nvcc %s", orDefault(smiCUDA, "?"), nvcc))
	s := f["cuda_sample"]
	add("a CUDA sample compiles with nvcc and runs", s.RC == 0 && strings.Contains(s.Out, "PASS"), guest.Tail(s.Out, 6))
}

func (h *Host) verifyVLLM(f map[string]Fact, v *VLLMParams, add func(string, bool, string)) {
	pipV := PipShowVersion(f["vllm_pip"].Out)
	add("vLLM "+v.Version+" is installed in "+vllmVenv, pipV == v.Version, "pip show vllm: "+orDefault(pipV, "not installed"))
	u := unitState(ParseKeyValues(f["vllm_show"].Out))
	add("the vllm service is enabled and active", u.enabled() && u.running(),
		fmt.Sprintf("UnitFileState=%s ActiveState=%s SubState=%s MainPID=%s", u["UnitFileState"], u["ActiveState"], u["SubState"], u["MainPID"]))
	add("vllm.service restarts on failure", strings.Contains(f["vllm_unit"].Out, "\nRestart=on-failure\n"), "Restart= line of "+vllmUnitPath)
	st := parseVLLMProbe(f["vllm_ready"].Out, v.Model)
	for _, a := range h.vllmAddrs() {
		code := st.Health[a]
		add("vLLM /health answers 200 on "+a, code == "200", "HTTP "+orDefault(code, "no answer"))
	}
	add("vLLM /v1/models lists "+v.Model, st.ModelListed, shorten(st.Models, 300))
	procs := ParseSMIProcesses(f["smi_full"].Out)
	var ev []string
	onGPU := false
	for _, pr := range procs {
		ev = append(ev, fmt.Sprintf("pid %s %s %d MiB", pr.PID, pr.Name, pr.MemoryMiB))
		if pr.PID == u["MainPID"] || strings.Contains(pr.Name, "vllm") || strings.Contains(pr.Name, "python") || strings.Contains(pr.Name, "VLLM") {
			onGPU = onGPU || pr.MemoryMiB > 0
		}
	}
	add("vLLM holds GPU memory", onGPU, orDefault(strings.Join(ev, "\n"), "no compute process in nvidia-smi's process table"))
}

func (h *Host) verifyOllama(f map[string]Fact, o *OllamaParams, add func(string, bool, string)) {
	ver := f["ollama_version_live"]
	live := OllamaVersion(ver.Out)
	add("ollama --version works", ver.RC == 0 && live != "" && !strings.Contains(ver.Out, "could not connect"), strings.TrimSpace(ver.Out))
	l := f["ollama_list"]
	add("ollama list works", l.RC == 0 && strings.Contains(l.Out, "NAME"), guest.Tail(l.Out, 5))
	u := unitState(ParseKeyValues(f["ollama_show"].Out))
	add("the ollama service is enabled and active", u.enabled() && u.running(),
		fmt.Sprintf("UnitFileState=%s ActiveState=%s MainPID=%s", u["UnitFileState"], u["ActiveState"], u["MainPID"]))
	c, _, _ := parseOllamaProbe(f["ollama_ready"].Out)
	add("Ollama runs on the GPU (inference compute library=CUDA)", c.OnGPU(), orDefault(c.Line, "no inference compute line in the journal"))
}

func orDefault(s, d string) string {
	if strings.TrimSpace(s) == "" {
		return d
	}
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "Cuda compilation tools") {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}
