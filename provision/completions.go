package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/bench"
	"github.com/aimachine/aimachine/provision/guest"
)

// Completion is one answered chat completion, as verify records it in evidence.json.
type Completion struct {
	Server          string  `json:"server"` // vllm | ollama
	Model           string  `json:"model"`
	Addr            string  `json:"addr"` // as the guest sees it; reached through the SSH connection
	Text            string  `json:"text"`
	PromptTokens    int     `json:"prompt_tokens"`
	OutputTokens    int     `json:"output_tokens"`
	TTFTMs          float64 `json:"ttft_ms"`
	TokensPerSecond float64 `json:"tokens_per_second"`
	OnGPU           bool    `json:"on_gpu"`
	GPUEvidence     string  `json:"gpu_evidence,omitempty"`
	// WithoutKey is the HTTP status of the same request without the API key (vLLM with a
	// key configured: 401 proves the key is enforced).
	WithoutKey int    `json:"status_without_key,omitempty"`
	Error      string `json:"error,omitempty"`
}

// verifyPrompt is short and fixed: temperature 0 and a few tokens make the answer cheap and
// repeatable.
const (
	verifyPrompt    = "Reply with a short greeting."
	verifyMaxTokens = 16
)

// InferenceTargets are the servers and models of a catalog VM, addressed as the guest sees
// them (loopback when the service listens there).
func InferenceTargets(vm *catalog.VM, getenv func(string) string) []bench.Target {
	var ts []bench.Target
	if vm.VLLMEnabled() {
		v := vm.Services.VLLM
		port := v.Port
		if port == 0 {
			port = catalog.DefaultVLLMPort
		}
		key := ""
		if v.APIKeyEnv != "" && getenv != nil {
			key = getenv(v.APIKeyEnv)
		}
		ts = append(ts, bench.Target{Server: bench.VLLM, Model: v.Model, Addr: serviceAddr(v.Bind, vm.IP(), port, true), APIKey: key})
	}
	if vm.OllamaEnabled() {
		o := vm.Services.Ollama
		port := o.Port
		if port == 0 {
			port = catalog.DefaultOllamaPort
		}
		for _, m := range o.Models {
			ts = append(ts, bench.Target{Server: bench.Ollama, Model: m, Addr: serviceAddr(o.Bind, vm.IP(), port, false)})
		}
	}
	return ts
}

// serviceAddr picks the address to forward to: 127.0.0.1 when the service listens there (or
// on every address), else its first bind (the VM's address by default).
func serviceAddr(binds []string, ip string, port int, loopbackDefault bool) string {
	host := ""
	for _, b := range binds {
		if b == "127.0.0.1" || b == "0.0.0.0" {
			host = "127.0.0.1"
			break
		}
	}
	if host == "" && len(binds) > 0 {
		host = binds[0]
	}
	if host == "" {
		host = ip
		if loopbackDefault || host == "" {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// HTTPClientVia is an HTTP client whose connections go through the guest's SSH connection.
func HTTPClientVia(r guest.Runner) *http.Client {
	return bench.NewHTTPClient(func(ctx context.Context, addr string) (net.Conn, error) {
		return guest.DialVia(ctx, r, addr)
	})
}

// verifyCompletions asks every server for a completion through the SSH connection and adds
// one check per answer (non-empty, on the GPU), and for vLLM with a key the 401 without it.
func verifyCompletions(ctx context.Context, r guest.Runner, vm *catalog.VM, getenv func(string) string, rep *VerifyReport) {
	if !guest.CanForward(r) {
		return // unit-test runners; every SSH connection of the tool forwards
	}
	c := HTTPClientVia(r)
	defer c.CloseIdleConnections()
	vllmOnGPU, _ := rep.Check("vLLM holds GPU memory")
	for _, t := range InferenceTargets(vm, getenv) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		s, err := bench.Complete(cctx, c, t, bench.Request{Prompt: verifyPrompt, MaxTokens: verifyMaxTokens})
		comp := Completion{Server: t.Server, Model: t.Model, Addr: t.Addr}
		if err != nil {
			comp.Error = err.Error()
		} else {
			comp.Text, comp.PromptTokens, comp.OutputTokens = s.Text, s.PromptTokens, s.OutputTokens
			comp.TTFTMs = float64(s.TTFT) / float64(time.Millisecond)
			comp.TokensPerSecond = s.TokensPerSecond()
		}
		switch t.Server {
		case bench.VLLM:
			comp.OnGPU, comp.GPUEvidence = vllmOnGPU.Pass, firstLine(vllmOnGPU.Evidence)
			if t.APIKey != "" {
				code, kerr := bench.Unauthenticated(cctx, c, t)
				comp.WithoutKey = code
				ev := fmt.Sprintf("POST /v1/chat/completions without the key: HTTP %d", code)
				if kerr != nil {
					ev = "request without the key failed: " + kerr.Error()
				}
				rep.Checks = append(rep.Checks, VerifyCheck{Name: "vLLM refuses a completion without the API key (401)", Pass: code == http.StatusUnauthorized, Evidence: ev})
			}
		case bench.Ollama:
			if err == nil {
				comp.OnGPU, comp.GPUEvidence = ollamaOnGPU(cctx, c, t)
			}
		}
		cancel()
		rep.Completions = append(rep.Completions, comp)
		name := "vLLM answers a chat completion on the GPU"
		if t.Server == bench.Ollama {
			name = "Ollama " + t.Model + " answers a chat completion on the GPU"
		}
		rep.Checks = append(rep.Checks, VerifyCheck{Name: name, Pass: comp.Error == "" && strings.TrimSpace(comp.Text) != "" && comp.OnGPU, Evidence: comp.evidence()})
	}
}

func (c Completion) evidence() string {
	if c.Error != "" {
		return fmt.Sprintf("%s %s at %s (through SSH): %s", c.Server, c.Model, c.Addr, c.Error)
	}
	s := fmt.Sprintf("%q — %d tokens, TTFT %.0f ms, %.1f tokens/s (%s at %s, through SSH)", shortText(c.Text, 80), c.OutputTokens, c.TTFTMs, c.TokensPerSecond, c.Model, c.Addr)
	if c.GPUEvidence != "" {
		s += "\n" + c.GPUEvidence
	}
	if !c.OnGPU {
		s += "\nnot served on the GPU"
	}
	return s
}

func shortText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ollamaOnGPU reads /api/ps: the model is loaded with all of it in VRAM ("100% GPU").
func ollamaOnGPU(ctx context.Context, c *http.Client, t bench.Target) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Addr+"/api/ps", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, "GET /api/ps: " + err.Error()
	}
	defer resp.Body.Close()
	var ps struct {
		Models []struct {
			Name     string `json:"name"`
			Size     int64  `json:"size"`
			SizeVRAM int64  `json:"size_vram"`
		} `json:"models"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
		return false, "GET /api/ps: " + err.Error()
	}
	want := t.Model
	if !strings.Contains(want, ":") {
		want += ":latest"
	}
	for _, m := range ps.Models {
		if m.Name == want {
			ev := fmt.Sprintf("/api/ps: %s size %d, size_vram %d", m.Name, m.Size, m.SizeVRAM)
			return m.Size > 0 && m.SizeVRAM >= m.Size, ev
		}
	}
	return false, "/api/ps does not list " + want + " after the completion"
}

// Bench runs a load test against the VM's inference servers (vLLM and each listed Ollama
// model), every request through one SSH connection to the guest. cfg.Targets and cfg.Client
// are filled in here. Ctrl-C (ctx) ends it cleanly with the finished levels.
func Bench(ctx context.Context, cat *catalog.Catalog, vmName string, o HostOptions, cfg bench.Config) (bench.Result, error) {
	vm, err := cat.VM(vmName)
	if err != nil {
		return bench.Result{}, err
	}
	getenv := o.Guest.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if vm.VLLMEnabled() && vm.Services.VLLM.APIKeyEnv != "" && getenv(vm.Services.VLLM.APIKeyEnv) == "" {
		return bench.Result{}, fmt.Errorf("%w: services.vllm.api_key_env names %s, which is empty (hint: export %s=<key>: vLLM answers 401 without it)", ErrMissingAPIKey, vm.Services.VLLM.APIKeyEnv, vm.Services.VLLM.APIKeyEnv)
	}
	cfg.Targets = InferenceTargets(vm, getenv)
	if len(cfg.Targets) == 0 {
		return bench.Result{}, fmt.Errorf("%s serves no model: enable services.vllm, or list services.ollama.models", vm.Name)
	}
	gc, err := GuestConfig(cat, vm, o)
	if err != nil {
		return bench.Result{}, err
	}
	r, err := guest.Dial(ctx, gc)
	if err != nil {
		return bench.Result{}, fmt.Errorf("connect over SSH to %s@%s: %w", gc.User, gc.Addr, err)
	}
	defer r.Close()
	cfg.Client = HTTPClientVia(r)
	defer cfg.Client.CloseIdleConnections()
	return bench.Run(ctx, cfg)
}

// VerifyEvidence is the evidence record of a verify run (checks and completions), written
// like a deploy's as <dir>/<vm>-<run>/evidence.json.
func VerifyEvidence(rep VerifyReport, runID string) *Evidence {
	return &Evidence{VM: rep.VM, RunID: runID, Time: time.Now().UTC(), Checks: rep.Checks, Completions: rep.Completions, Timings: []EvidenceTiming{}}
}
