package guestsimtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/bench"
)

// TestBenchThroughputRisesUntilTheKVBudget: the simulated vLLM batches decode steps (each
// step reads the weights once), so output tokens/s rises with concurrency until the KV cache
// holds no more sequences. 0.45 × 15.5 GiB leaves ~0.11 GiB of KV cache for Qwen2.5-3B
// (36 KiB a token): ~3.2k tokens, about 34 sequences of 30 prompt + 64 output tokens.
func TestBenchThroughputRisesUntilTheKVBudget(t *testing.T) {
	w := start(t)
	w.vm.Services.VLLM.GPUMemoryUtilization = 0.45
	w.vm.Services.VLLM.MaxModelLen = 2048
	w.vm.Services.Ollama.Models = nil
	r := w.dial(t)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, w.opts("bench", nil)); err != nil {
		t.Fatal(err)
	}
	targets := provision.InferenceTargets(w.vm, func(k string) string { return map[string]string{"SIM_VLLM_KEY": apiKey}[k] })
	res, err := bench.Run(ctx, bench.Config{Targets: targets, Concurrency: []int{1, 4, 32, 128}, Duration: 1500 * time.Millisecond,
		Request: bench.Request{MaxTokens: 64}, Client: provision.HTTPClientVia(r)})
	if err != nil {
		t.Fatal(err)
	}
	var thr []float64
	for _, l := range res.Levels {
		t.Logf("c=%d completed %d failed %d output %.0f tok/s, P50 TTFT %.1f ms, P50 ITL %.1f ms %v", l.MaxConcurrency, l.Completed, l.Failed, l.OutputThrough, l.P50TTFT, l.P50ITL, l.Errors)
		if l.Failed > 0 || l.Completed == 0 {
			t.Fatalf("level %d: %d failed, %d completed: %v", l.MaxConcurrency, l.Failed, l.Completed, l.Errors)
		}
		thr = append(thr, l.OutputThrough)
	}
	if !(thr[1] > 2.5*thr[0] && thr[2] > 4*thr[1]) {
		t.Errorf("throughput does not rise with concurrency below the KV budget: %v", thr)
	}
	if thr[3] > 1.5*thr[2] {
		t.Errorf("throughput kept rising past the KV budget (128 clients, room for ~34 sequences): %v", thr)
	}
	if last := res.Levels[3]; last.P50TTFT < 3*res.Levels[2].P50TTFT {
		t.Errorf("queued requests should wait for KV room (P50 TTFT at 128 clients %.1f ms vs 32 clients %.1f ms)", last.P50TTFT, res.Levels[2].P50TTFT)
	}
	dir := t.TempDir()
	files, err := bench.Write(dir, "vm-llm-aimachine", res)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %v", f, err)
		}
		if strings.Contains(string(b), apiKey) {
			t.Errorf("%s holds the API key", filepath.Base(f))
		}
	}
}
