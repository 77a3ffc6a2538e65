package tasks

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func sampleVLLM() *VLLMParams {
	return &VLLMParams{Version: "0.9.2", Model: "Qwen/Qwen2.5-3B-Instruct", Binds: []string{"192.168.0.140", "127.0.0.1"}, Port: 8000, APIKey: "sk-test", GPUMemoryUtilization: 0.6, MaxModelLen: 8192}
}

func TestRenderGolden(t *testing.T) {
	v := sampleVLLM()
	golden(t, "vllm.service", RenderVLLMUnit(v))
	golden(t, "vllm-loopback.socket", RenderVLLMLoopbackSocket(v))
	golden(t, "vllm-loopback.service", RenderVLLMLoopbackService(v))
	golden(t, "ollama-override.conf", RenderOllamaDropIn(&OllamaParams{Binds: []string{"192.168.0.140"}, Port: 11434, ModelsDir: "/opt/ollama/models"}))
	golden(t, "nvidia-uvm.conf", RenderModulesLoad())
}

func TestVLLMBinding(t *testing.T) {
	v := sampleVLLM()
	unit := RenderVLLMUnit(v)
	if !strings.Contains(unit, "--host 192.168.0.140 ") || strings.Contains(unit, "0.0.0.0") || !needsLoopbackProxy(v) {
		t.Fatalf("private IP + loopback: %s", unit)
	}
	if strings.Contains(unit, "sk-test") {
		t.Fatal("the API key must stay out of the unit (it is in the 0600 env file)")
	}
	if !strings.Contains(RenderVLLMEnv(v), "VLLM_API_KEY=\"sk-test\"\n") {
		t.Fatal("env file lacks the key")
	}
	v.Binds = []string{"0.0.0.0"}
	if !strings.Contains(RenderVLLMUnit(v), "--host 0.0.0.0 ") || needsLoopbackProxy(v) {
		t.Fatal("0.0.0.0 only when the catalog says so")
	}
	v.Binds = []string{"127.0.0.1"}
	if !strings.Contains(RenderVLLMUnit(v), "--host 127.0.0.1 ") || needsLoopbackProxy(v) {
		t.Fatal("loopback only")
	}
}

// Hostile catalog values and keys are encoded for their sink, or refused by Validate before
// anything runs; a refused value is never rendered raw.
func TestHostileValuesAreEncodedOrRefused(t *testing.T) {
	v := sampleVLLM()
	v.Model = `m"; touch /tmp/pwned; %n $HOME`
	v.APIKey = `k$(touch /tmp/pwned) "q" 'x' 100%`
	p := Params{VLLM: v, Ollama: &OllamaParams{Binds: []string{"192.168.0.140"}, Port: 11434, ModelsDir: "/opt/o l%$x"}}
	if err := p.Validate(); err != nil {
		t.Fatalf("representable values refused: %v", err)
	}
	unit := RenderVLLMUnit(v)
	if !strings.Contains(unit, ` serve "m\"; touch /tmp/pwned; %%n $$HOME" --host`) {
		t.Errorf("model not encoded as one ExecStart argument:\n%s", unit)
	}
	if got := RenderVLLMEnv(v); !strings.HasSuffix(got, "VLLM_API_KEY=\"k\\$(touch /tmp/pwned) \\\"q\\\" 'x' 100%\"\n") {
		t.Errorf("env file: %q", got)
	}
	if got := RenderVLLMAuthHeader(v); got != "Authorization: Bearer "+v.APIKey+"\n" {
		t.Errorf("header file: %q", got)
	}
	if got := RenderOllamaDropIn(p.Ollama); !strings.Contains(got, `Environment="OLLAMA_MODELS=/opt/o l%%$x"`) {
		t.Errorf("drop-in: %s", got)
	}
	for _, bad := range []struct{ field, model, key, dir string }{
		{"services.vllm.model", "a\x00b", "k", "/d"},
		{"the vLLM API key", "m", "a\nVLLM_X=1", "/d"},
		{"the vLLM API key", "m", "padded ", "/d"},
		{"the vLLM API key", "m", "ключ", "/d"},
		{"services.ollama.models_dir", "m", "k", "/a\x00"},
	} {
		v.Model, v.APIKey, p.Ollama.ModelsDir = bad.model, bad.key, bad.dir
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("%q/%q/%q: want a refusal naming %s, got %v", bad.model, bad.key, bad.dir, bad.field, err)
		}
		if err != nil && strings.Contains(err.Error(), bad.key) && len(bad.key) > 1 {
			t.Errorf("the refusal quotes the key: %v", err)
		}
		if strings.Contains(RenderVLLMEnv(v), "VLLM_X") {
			t.Errorf("a refused key was rendered")
		}
	}
}

// The ollama user gets the models directory and, for /opt/<app>/… or /srv/<app>/…, <app>;
// never a system or home directory.
func TestParentDirNeverHandsOutSystemDirectories(t *testing.T) {
	for in, want := range map[string]string{
		"/opt/ollama/models": "/opt/ollama", "/srv/llm/models": "/srv/llm", "/opt/models": "/opt/models",
		"/etc/models": "/etc/models", "/": "/", "/etc": "/etc", "/home/ubuntu/models": "/home/ubuntu/models",
		"/opt/ollama/models/": "/opt/ollama", "/var/lib/ollama": "/var/lib/ollama", "/opt/a/b/c": "/opt/a/b/c",
	} {
		if got := parentDir(in); got != want {
			t.Errorf("parentDir(%q) = %q, want %q", in, got, want)
		}
	}
}
