package tasks

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/retry"
)

// Params is everything the guest phase needs from the catalog, already defaulted.
type Params struct {
	VMName string
	// User is the SSH login; commands needing root get sudo unless it is root.
	User string
	// IP is the VM's private address (services bind to it).
	IP string

	GPU *GPUParams // nil = no GPU tasks (the phase then refuses vLLM/Ollama)

	VLLM   *VLLMParams
	Ollama *OllamaParams

	// CUDAToolkit is the cuda-toolkit-X-Y package version, e.g. "12.8" (default: the
	// architecture's minimum, 12.8 on Blackwell, never below 12.6).
	CUDAToolkit string

	// Waits (zero = defaults).
	AptLockTimeout time.Duration // default 10m
	ReadyTimeout   time.Duration // vLLM / Ollama readiness, default 20m
	RebootTimeout  time.Duration // default 10m
	// PollInterval is the first wait between polls (default 2s), doubling up to 30s.
	PollInterval time.Duration

	// Progress, when set, receives "waiting for …" messages.
	Progress func(task, msg string)
	// Waiting, when set, receives the bound of each wait a task starts, and 0 when the wait
	// ends (the task's heartbeats show it).
	Waiting func(task string, limit time.Duration)
}

// GPUParams is what the guest must see.
type GPUParams struct {
	PCIID     string // 10de:2d04
	Model     string // NVIDIA GeForce RTX 5060 Ti
	MemoryMiB int    // 16311
}

// VLLMParams configure vLLM.
type VLLMParams struct {
	Version              string
	Model                string
	Binds                []string
	Port                 int
	APIKey               string // the value; never printed
	GPUMemoryUtilization float64
	MaxModelLen          int
	// ModelsDir holds the model in the Hugging Face cache layout (vLLM's --download-dir).
	ModelsDir string
	// Revision pins the model's revision (empty = main).
	Revision string
	// HFToken is the Hugging Face token (the value; never printed), HFTokenEnv the variable
	// it came from (named in hints).
	HFToken, HFTokenEnv string
}

// OllamaParams configure Ollama.
type OllamaParams struct {
	Version   string
	Binds     []string
	Port      int
	ModelsDir string
	// Models are pulled after the service runs.
	Models []string
}

func (p *Params) defaults() {
	if p.AptLockTimeout == 0 {
		p.AptLockTimeout = 10 * time.Minute
	}
	if p.ReadyTimeout == 0 {
		p.ReadyTimeout = 20 * time.Minute
	}
	if p.RebootTimeout == 0 {
		p.RebootTimeout = 10 * time.Minute
	}
	if p.PollInterval == 0 {
		p.PollInterval = 2 * time.Second
	}
	if p.CUDAToolkit == "" {
		p.CUDAToolkit = "12.8"
		if p.GPU != nil && Arch(p.GPU.PCIID) != "Blackwell" {
			p.CUDAToolkit = "12.8" // 12.8 is the oldest we install: it also serves older GPUs
		}
	}
}

// Host is the guest as the tasks see it: a Runner, the parameters and a cache of batched facts.
type Host struct {
	R guest.Runner
	P Params

	facts      map[string]Fact
	restart    map[string]bool // services whose configuration changed in this run
	dropGrace  bool
	factsCalls int

	// proof makes the first facts pass also run the verification probes (GatherProof);
	// verified holds that pass's outputs while nothing has changed since (Invalidate drops it).
	proof    bool
	verified map[string]Fact
	// Extra are more read-only probes run with the verification probes (the deploy's evidence
	// facts); their outputs are read with VerifyFact.
	Extra map[string]string
	// lastVerify is what the last Verify observed.
	lastVerify map[string]Fact
}

// NewHost prepares a Host.
func NewHost(r guest.Runner, p Params) *Host {
	p.defaults()
	return &Host{R: r, P: p, restart: map[string]bool{}}
}

// Invalidate forgets the facts (after a change), and with them a gathered proof.
func (h *Host) Invalidate() { h.facts, h.verified = nil, nil }

// GatherProof makes the first facts pass also run the verification probes, in the same exec
// session: when no task changes anything afterwards, Verify proves the machine from that pass
// and opens no session of its own (a converged deploy is one session). Any change (Invalidate)
// discards it, and Verify then observes the machine again.
func (h *Host) GatherProof() { h.proof = true }

// FactsGathered counts facts scripts run (one per observation round).
func (h *Host) FactsGathered() int { return h.factsCalls }

// Sudo prefixes a command with sudo unless the login is root.
func (h *Host) Sudo(cmd string) string {
	if h.P.User == "root" {
		return cmd
	}
	return "sudo " + cmd
}

// Root runs a shell script as root.
func (h *Host) Root(ctx context.Context, script string) (guest.Result, error) {
	return h.R.Run(ctx, h.Sudo("sh -c "+guest.Quote(script)))
}

// Facts runs the facts script once and caches its sections until Invalidate.
func (h *Host) Facts(ctx context.Context) (map[string]Fact, error) {
	if h.facts != nil {
		return h.facts, nil
	}
	withProof := h.proof && h.factsCalls == 0
	probes := h.probes()
	if withProof {
		probes = h.withVerifyProbes(probes)
	}
	f, err := h.gather(ctx, "gather facts", probes)
	if err != nil {
		return nil, err
	}
	h.facts = f
	if withProof {
		h.verified = f
	}
	return f, nil
}

// gather runs probes as one script in one exec session and parses its sections.
func (h *Host) gather(ctx context.Context, what string, probes map[string]string) (map[string]Fact, error) {
	res, err := h.Root(ctx, script(probes))
	if err != nil {
		var ee *guest.ExitError
		if !errors.As(err, &ee) {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	h.factsCalls++
	f := ParseFacts(res.Stdout)
	if len(f) == 0 {
		return nil, fmt.Errorf("%s: the script printed nothing (exit %d): %s", what, res.ExitCode, guest.Tail(res.Stderr, 5))
	}
	return f, nil
}

// Fact returns one fact (missing = rc -1).
func (h *Host) Fact(ctx context.Context, name string) (Fact, error) {
	f, err := h.Facts(ctx)
	if err != nil {
		return Fact{}, err
	}
	v, ok := f[name]
	if !ok {
		return Fact{RC: -1}, nil
	}
	return v, nil
}

// factsScript prints every fact the tasks observe, each between markers, in one exec session.
// Each probe is read-only.
func (h *Host) factsScript() string { return script(h.probes()) }

// script prints each probe's output between markers (sorted by name).
func script(probes map[string]string) string {
	var b strings.Builder
	b.WriteString("export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
	names := make([]string, 0, len(probes))
	for n := range probes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "echo '%s%s'\n( %s ) 2>&1\necho \"%s%s rc=$?\"\n", factBegin, n, probes[n], factEnd, n)
	}
	return b.String()
}

// Packages the base task installs (guest.md §11 step 2).
var basePackages = []string{"ubuntu-drivers-common", "pciutils", "zstd", "curl", "ca-certificates", "build-essential", "python3.12-venv", "python3.12-dev"}

func (h *Host) probes() map[string]string {
	p := map[string]string{
		"os":           `. /etc/os-release && echo "$ID $VERSION_ID"`,
		"boot_id":      `cat /proc/sys/kernel/random/boot_id`,
		"kernel":       `uname -r`,
		"cloud_init":   `if [ -e /var/lib/cloud/instance/boot-finished ]; then echo finished; elif command -v cloud-init >/dev/null; then cloud-init status; else echo absent; fi`,
		"dpkg":         `dpkg-query -W --showformat='${Package}\t${Status}\t${Version}\n' ` + strings.Join(basePackages, " ") + ` 'nvidia-*' 'linux-modules-nvidia-*' 'libnvidia-compute-*' 'cuda-keyring' 'cuda-toolkit-*'`,
		"cpu_flags":    `grep -m1 '^flags' /proc/cpuinfo`,
		"lspci":        `lspci -nn -d 10de:`,
		"secure_boot":  `mokutil --sb-state`,
		"lsmod":        `lsmod | grep -E '^(nvidia|nouveau)'`,
		"nv_version":   `cat /proc/driver/nvidia/version`,
		"smi":          `nvidia-smi --query-gpu=` + SMIQuery + ` --format=csv,noheader,nounits`,
		"smi_header":   `nvidia-smi | head -n 5`,
		"modules_load": `cat ` + modulesLoadPath,
		"nvcc":         `/usr/local/cuda/bin/nvcc --version`,
		"cuda_repo":    `ls /etc/apt/sources.list.d/`,
	}
	if v := h.P.VLLM; v != nil {
		p["vllm_user"] = `getent passwd vllm`
		p["vllm_dirs"] = `stat -c '%U %n' /opt/vllm /opt/vllm/venv /opt/vllm/hf`
		p["vllm_pip"] = `/opt/vllm/venv/bin/pip show vllm`
		p["vllm_unit"] = `cat ` + vllmUnitPath
		p["vllm_env"] = `cat ` + vllmEnvPath + ` && stat -c '%a %U' ` + vllmEnvPath + ` && echo ::header && cat ` + vllmAuthHeaderPath + ` && stat -c '%a %U' ` + vllmAuthHeaderPath
		p["vllm_show"] = systemctlShow("vllm.service")
		p["vllm_ready"] = h.vllmProbe()
		p["vllm_applied"] = `cat ` + appliedPath("vllm")
		if needsLoopbackProxy(v) {
			p["vllm_lo_socket"] = `cat ` + vllmLoopbackSocketPath
			p["vllm_lo_service"] = `cat ` + vllmLoopbackServicePath
			p["vllm_lo_show"] = systemctlShow("vllm-loopback.socket")
		}
	}
	if o := h.P.Ollama; o != nil {
		p["ollama_bin"] = `command -v ollama`
		p["ollama_version"] = `ollama --version`
		p["ollama_dropin"] = `cat ` + ollamaDropInPath
		p["ollama_dirs"] = `stat -c '%U %n' ` + guest.Quote(o.ModelsDir)
		p["ollama_show"] = systemctlShow("ollama.service")
		p["ollama_ready"] = h.ollamaProbe()
		p["ollama_applied"] = `cat ` + appliedPath("ollama")
	}
	h.modelProbes(p)
	return p
}

func systemctlShow(unit string) string {
	return `systemctl show ` + unit + ` -p LoadState -p ActiveState -p SubState -p UnitFileState -p MainPID -p ActiveEnterTimestamp -p NRestarts -p DropInPaths -p Result`
}

// poll calls probe until it reports done, backing off from PollInterval to 30s, bounded by
// ctx and limit. what is a human description for progress and errors. A probe error ends the
// wait at once.
func (h *Host) poll(ctx context.Context, task, what string, limit time.Duration, probe func(ctx context.Context) (done bool, status string, err error)) error {
	if h.P.Waiting != nil {
		h.P.Waiting(task, limit)
		defer h.P.Waiting(task, 0) // the bound ends with the wait
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	last := ""
	var probeErr error
	err := retry.Wait{
		Description: "wait for " + what,
		Backoff:     retry.Backoff{Initial: h.P.PollInterval, Max: 30 * time.Second},
		Retryable:   retry.Pending,
		OnRetry: func(int, string, error, time.Duration) {
			h.progress(task, fmt.Sprintf("waiting for %s (%s, %s so far)", what, last, time.Since(start).Round(time.Second)))
		},
	}.Do(ctx, func(ctx context.Context) error {
		done, status, err := probe(ctx)
		switch {
		case err != nil:
			probeErr = err
			return err
		case done:
			return nil
		}
		last = status
		return retry.ErrNotYet
	})
	var gu *retry.GaveUpError
	switch {
	case probeErr != nil:
		return probeErr
	case errors.As(err, &gu) && gu.Cause != nil:
		return fmt.Errorf("gave up waiting for %s after %s: %w (last seen: %s)", what, time.Since(start).Round(time.Second), gu.Cause, last)
	}
	return err
}
