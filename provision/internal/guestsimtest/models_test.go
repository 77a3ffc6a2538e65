package guestsimtest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fakeguest "github.com/aimachine/aimachine/fakes/guest"
	"github.com/aimachine/aimachine/provision"
)

const hfToken = "hf_simulatedReadToken0123"

func (w *world) optsEnv(run string, rep provision.Reporter, env map[string]string) provision.GuestOptions {
	o := w.opts(run, rep)
	o.Getenv = func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return map[string]string{"SIM_VLLM_KEY": apiKey}[k]
	}
	return o
}

// TestGatedModelNeedsAToken: a gated model without a token stops at the download with the
// Hub's refusal and the fix; with the token (written 0600 for the vllm user) it is served.
// The token appears in no event, error, transcript or guest command line.
func TestGatedModelNeedsAToken(t *testing.T) {
	w := start(t)
	w.vm.Services.VLLM.Model = "meta-llama/Llama-3.2-1B-Instruct"
	r := w.dial(t)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var events []string
	rep := provision.ReporterFunc(func(e provision.Event) { events = append(events, e.Task+": "+e.Message) })
	_, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.optsEnv("gated", rep, nil))
	var te *provision.TaskError
	if !errors.As(err, &te) || !strings.HasPrefix(te.Task, "download meta-llama/Llama-3.2-1B-Instruct") {
		t.Fatalf("want the download task to fail, got %v", err)
	}
	if !strings.Contains(te.Err.Error(), "Access denied. Model 'meta-llama/Llama-3.2-1B-Instruct' requires approval.") || !strings.Contains(te.Hint, "hf_token_env") {
		t.Errorf("error %q, hint %q: want the Hub's refusal and hf_token_env", te.Err, te.Hint)
	}
	if res, _ := r.Run(ctx, "systemctl is-active vllm"); strings.TrimSpace(res.Stdout) == "active" {
		t.Error("vLLM was started without its model")
	}

	w.vm.Services.VLLM.HFTokenEnv = "SIM_HF_TOKEN"
	_, err = provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.optsEnv("token", rep, map[string]string{"SIM_HF_TOKEN": ""}))
	if !errors.Is(err, provision.ErrMissingHFToken) {
		t.Errorf("empty token variable: %v, want ErrMissingHFToken", err)
	}
	if _, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.optsEnv("token", rep, map[string]string{"SIM_HF_TOKEN": hfToken})); err != nil {
		t.Fatalf("with a token: %v", err)
	}
	res, err := r.Run(ctx, "sudo stat -c '%a %U' /opt/vllm/hf/token; systemctl is-active vllm")
	if err != nil || strings.Fields(res.Stdout)[0] != "600" || strings.Fields(res.Stdout)[1] != "vllm" || strings.Fields(res.Stdout)[2] != "active" {
		t.Errorf("token file / vllm: %q %v", res.Stdout, err)
	}
	vr, err := provision.VerifyGuest(ctx, r, w.vm, w.optsEnv("verify", nil, map[string]string{"SIM_HF_TOKEN": hfToken}))
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := vr.Check("vLLM answers a chat completion on the GPU"); !ok || !c.Pass {
		t.Errorf("completion: %+v", c)
	}
	tr, _ := os.ReadFile(filepath.Join(w.reports, "vm-llm-aimachine-token", "transcript.log"))
	if len(tr) == 0 {
		t.Fatal("no transcript")
	}
	if !strings.Contains(w.commands(), "/opt/vllm/venv/bin/hf download meta-llama/Llama-3.2-1B-Instruct") {
		t.Fatal("the guest's command-line record lacks the hf download")
	}
	vj, _ := json.Marshal(vr)
	for what, s := range map[string]string{"transcript": string(tr), "events": strings.Join(events, "\n"), "guest command lines": w.commands(), "verify report": string(vj)} {
		for name, secret := range map[string]string{"Hugging Face token": hfToken, "vLLM API key": apiKey} {
			if strings.Contains(s, secret) {
				t.Errorf("the %s appears in the %s", name, what)
			}
		}
	}
}

// commands are the command lines the guest ran (its journal of exec requests).
func (w *world) commands() string {
	return strings.Join(w.g.CommandLines(), "\n")
}

// TestModelTooLargeStopsBeforeVLLMStarts: 14B in bf16 (29 GB) against 0.60 × 16 GB.
func TestModelTooLargeStopsBeforeVLLMStarts(t *testing.T) {
	w := start(t)
	w.vm.Services.VLLM.Model = "Qwen/Qwen2.5-14B-Instruct"
	r := w.dial(t)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("large", nil))
	var te *provision.TaskError
	if !errors.As(err, &te) || !strings.HasPrefix(te.Task, "check Qwen/Qwen2.5-14B-Instruct fits") {
		t.Fatalf("want the fit check to fail, got %v", err)
	}
	for _, want := range []string{"weights 27.4 GiB", "0.60 × 15.9 GiB = 9.6 GiB"} {
		if !strings.Contains(te.Err.Error(), want) {
			t.Errorf("error %q lacks %q", te.Err, want)
		}
	}
	for _, want := range []string{"smaller or quantised model", "max_model_len", "gpu_memory_utilization cannot help"} {
		if !strings.Contains(te.Hint, want) {
			t.Errorf("hint %q lacks %q", te.Hint, want)
		}
	}
	res, _ := r.Run(ctx, "systemctl show -p NRestarts -p ActiveState vllm")
	if !strings.Contains(res.Stdout, "ActiveState=inactive") || !strings.Contains(res.Stdout, "NRestarts=0") {
		t.Errorf("vLLM was started: %q", res.Stdout)
	}
}

// TestModelDownloadFailuresNameTheModelAndTheFix: an unknown repo, a full disk and a download
// that breaks off (then resumes on the re-run); a model missing from the Ollama library.
func TestModelDownloadFailuresNameTheModelAndTheFix(t *testing.T) {
	w := start(t)
	r := w.dial(t)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(name string) *provision.TaskError {
		t.Helper()
		_, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts(name, nil))
		var te *provision.TaskError
		if !errors.As(err, &te) {
			t.Fatalf("%s: want a task error, got %v", name, err)
		}
		return te
	}
	w.vm.Services.VLLM.Model = "Qwen/Qwen2.5-3B-Instruct-Typo"
	te := run("unknown")
	if !strings.Contains(te.Err.Error(), "Model 'Qwen/Qwen2.5-3B-Instruct-Typo' not found") || !strings.Contains(te.Hint, "check services.vllm.model") {
		t.Errorf("unknown repo: %v (hint %q)", te.Err, te.Hint)
	}

	w.vm.Services.VLLM.Model = "Qwen/Qwen2.5-3B-Instruct"
	if _, err := w.f.InjectFault(fakeguest.Fault{Kind: fakeguest.FaultDiskFull, Count: 1}); err != nil {
		t.Fatal(err)
	}
	te = run("diskfull")
	if !strings.Contains(te.Err.Error(), "No space left on device") || !strings.Contains(te.Hint, "/opt/models is full") || !strings.Contains(te.Task, "Qwen/Qwen2.5-3B-Instruct") {
		t.Errorf("disk full: task %q: %v (hint %q)", te.Task, te.Err, te.Hint)
	}

	if _, err := w.f.InjectFault(fakeguest.Fault{Kind: fakeguest.FaultHubDrop, Count: 1}); err != nil {
		t.Fatal(err)
	}
	te = run("drop")
	if !strings.Contains(te.Err.Error(), "RemoteProtocolError") || !strings.Contains(te.Hint, "re-run") {
		t.Errorf("broken download: %v (hint %q)", te.Err, te.Hint)
	}

	w.vm.Services.Ollama.Models = []string{"qwen2.5:0.5b", "no-such-model:7b"}
	te = run("ollama")
	if te.Task != "pull the Ollama models qwen2.5:0.5b, no-such-model:7b" || !strings.Contains(te.Hint, `"no-such-model:7b" is not in the Ollama library`) {
		t.Errorf("ollama pull: task %q: %v (hint %q)", te.Task, te.Err, te.Hint)
	}
	res, _ := r.Run(ctx, "ls /opt/models/models--Qwen--Qwen2.5-3B-Instruct/blobs | grep -c incomplete; systemctl is-active vllm")
	if strings.Fields(res.Stdout)[0] != "0" || strings.Fields(res.Stdout)[1] != "active" {
		t.Errorf("the re-run did not finish the broken download and start vLLM: %q", res.Stdout)
	}
}

// TestPinnedRevisionAndIdempotentDownload: a pinned revision reaches hf download and vLLM
// (--revision), a complete snapshot is not downloaded again (no task changes on a re-run), and
// an Ollama model the catalog does not list is left alone.
func TestPinnedRevisionAndIdempotentDownload(t *testing.T) {
	w := start(t)
	w.vm.Services.VLLM.Revision = "main"
	r := w.dial(t)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("pin", nil)); err != nil {
		t.Fatal(err)
	}
	unit, err := r.Run(ctx, "cat /etc/systemd/system/vllm.service")
	if err != nil || !strings.Contains(unit.Stdout, " --revision main") {
		t.Errorf("the unit does not pin the revision: %v\n%s", err, unit.Stdout)
	}
	// a model the catalog does not list, pulled by hand, is left alone
	if _, err := r.Run(ctx, "OLLAMA_HOST=192.168.0.140:11434 ollama pull tinyllama"); err != nil {
		t.Fatal(err)
	}
	var changed []string
	rep := provision.ReporterFunc(func(e provision.Event) {
		if e.Status == provision.StatusChanged {
			changed = append(changed, e.Task)
		}
	})
	if _, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("again", rep)); err != nil || len(changed) != 0 {
		t.Fatalf("second run: %v, changed %v (a complete snapshot is no change)", err, changed)
	}
	if l, err := r.Run(ctx, "OLLAMA_HOST=192.168.0.140:11434 ollama list"); err != nil || !strings.Contains(l.Stdout, "tinyllama:latest") || !strings.Contains(l.Stdout, "qwen2.5:0.5b") {
		t.Errorf("ollama list after the re-run: %v\n%s", err, l.Stdout)
	}
	hfRuns := 0
	for _, l := range w.g.CommandLines() {
		if strings.HasPrefix(l, "/opt/vllm/venv/bin/hf download Qwen/Qwen2.5-3B-Instruct --cache-dir /opt/models --revision main") {
			hfRuns++
		}
	}
	if hfRuns != 1 {
		t.Errorf("hf download ran %d times for the pinned revision, want once", hfRuns)
	}
}
