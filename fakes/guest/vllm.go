package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// vLLM: `vllm serve` as a systemd daemon or in the foreground (guest.md §7).

func init() {
	programs["vllm"] = progVLLM
	daemons["vllm"] = daemonVLLM
}

type vllmConfig struct {
	model    string
	served   string
	host     string
	port     int
	apiKey   string
	util     float64
	maxLen   int
	download string
	revision string
	version  string
	venv     string
}

func parseVLLMArgs(argv []string, env map[string]string) (vllmConfig, string) {
	c := vllmConfig{host: "0.0.0.0", port: 8000, util: 0.9, apiKey: env["VLLM_API_KEY"]}
	args := argv[1:]
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	var bad string
	longOpts(args, func(k, a string, next func() string) bool {
		switch k {
		case "--model":
			c.model = next()
		case "--host":
			c.host = next()
		case "--port":
			n, err := strconv.Atoi(next())
			if err != nil {
				bad = "argument --port: invalid int value"
				return false
			}
			c.port = n
		case "--api-key":
			c.apiKey = next()
		case "--gpu-memory-utilization":
			f, err := strconv.ParseFloat(next(), 64)
			if err != nil {
				bad = "argument --gpu-memory-utilization: invalid float value"
				return false
			}
			c.util = f
		case "--max-model-len":
			v := strings.ToLower(next())
			n, err := strconv.Atoi(strings.TrimSuffix(v, "k"))
			if err != nil {
				bad = "argument --max-model-len: invalid value"
				return false
			}
			if strings.HasSuffix(v, "k") { // the value, also in the two-argument form
				n *= 1024
			}
			c.maxLen = n
		case "--revision":
			c.revision = next()
		case "--served-model-name":
			c.served = next()
		case "--download-dir":
			c.download = next()
		case "--dtype", "--quantization", "--tensor-parallel-size", "--max-num-seqs", "--kv-cache-dtype", "--uvicorn-log-level", "--trust-remote-code", "--enforce-eager", "--disable-log-requests", "--enable-prefix-caching", "--generation-config":
			if !strings.HasPrefix(k, "--enforce") && !strings.HasPrefix(k, "--trust") && !strings.HasPrefix(k, "--disable") && !strings.HasPrefix(k, "--enable") {
				next()
			}
		default:
			if !strings.HasPrefix(a, "-") && c.model == "" {
				c.model = a
			}
		}
		return true
	})
	if bad != "" {
		return c, bad
	}
	if c.model == "" {
		c.model = "Qwen/Qwen3-0.6B"
	}
	if c.served == "" {
		c.served = c.model
	}
	return c, ""
}

// knownModels: parameters (billions), KV cache bytes per token (bf16: layers x kv-heads x head-dim x 2 x 2),
// default max length, from the models' config.json files.
var knownModels = []struct {
	match  string
	params float64
	kvB    float64
	maxLen int
}{
	{"qwen2.5-0.5b", 0.49, 12288, 32768}, {"qwen2.5-1.5b", 1.54, 28672, 32768}, {"qwen2.5-3b", 3.09, 36864, 32768},
	{"qwen2.5-7b", 7.62, 57344, 32768}, {"qwen2.5-14b", 14.7, 196608, 32768}, {"qwen3-0.6b", 0.6, 114688, 40960},
	{"qwen3-4b", 4.02, 147456, 40960}, {"qwen3-8b", 8.19, 147456, 40960}, {"llama-3.2-1b", 1.24, 32768, 131072},
	{"llama-3.2-3b", 3.21, 114688, 131072}, {"llama-3.1-8b", 8.03, 131072, 131072}, {"meta-llama-3-8b", 8.03, 131072, 8192},
	{"mistral-7b", 7.25, 131072, 32768}, {"gemma-3-4b", 4.3, 139264, 131072},
}

// modelFacts estimates a model's weights (GiB), KV cache per token (GiB) and default max length.
func modelFacts(model string) (weights, kvPerToken float64, maxLen int) {
	lower := strings.ToLower(model)
	params, kvB := 0.0, 0.0
	maxLen = 32768
	for _, k := range knownModels {
		if strings.Contains(lower, k.match) {
			params, kvB, maxLen = k.params, k.kvB, k.maxLen
			break
		}
	}
	if params == 0 {
		params = 7.6
		if m := regexp.MustCompile(`(?i)(\d+(?:\.\d+)?)b\b`).FindStringSubmatch(model); m != nil {
			params, _ = strconv.ParseFloat(m[1], 64)
			params *= 1.05
		} else if m := regexp.MustCompile(`(?i)(\d+(?:\.\d+)?)m\b`).FindStringSubmatch(model); m != nil {
			f, _ := strconv.ParseFloat(m[1], 64)
			params = f / 1000
		}
		kvB = 131072 * params / 8
	}
	bpp := 2.0
	switch {
	case strings.Contains(lower, "awq") || strings.Contains(lower, "gptq") || strings.Contains(lower, "int4") || strings.Contains(lower, "4bit"):
		bpp = 0.56
	case strings.Contains(lower, "fp8") || strings.Contains(lower, "int8"):
		bpp = 1.05
	}
	weights = params * 1e9 * bpp / (1 << 30)
	kvPerToken = kvB / (1 << 30)
	return
}

func vllmVersion(g *Guest, exe string) (string, string) {
	venv := path.Dir(path.Dir(exe))
	return g.installedPy(venv)["vllm"], venv
}

// progVLLM is the CLI: --version, or serve in the foreground (logs to stdout).
func progVLLM(p *proc) int {
	ver, _ := vllmVersion(p.g, p.path)
	if len(p.args) > 1 && (p.args[1] == "--version" || p.args[1] == "-v") {
		p.printf("%s\n", ver)
		return 0
	}
	if len(p.args) < 2 || p.args[1] != "serve" {
		p.printf("usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...\n")
		return 2
	}
	w := p.stdout
	sv := &service{u: &unit{name: "foreground"}, pid: p.g.sys.pid()}
	return runVLLM(p.ctx, p.g.sys, sv, append([]string{p.path}, p.args[1:]...), p.env, p.user, func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) })
}

func daemonVLLM(ctx context.Context, s *system, sv *service, argv []string, env map[string]string, u *user) int {
	pid := sv.pid
	logf := func(format string, a ...any) {
		s.logUnit(sv.u.name, "%s[%d]: %s", path.Base(argv[0]), pid, fmt.Sprintf(format, a...))
	}
	return runVLLM(ctx, s, sv, argv, env, u, logf)
}

func runVLLM(ctx context.Context, s *system, sv *service, argv []string, env map[string]string, u *user, logf func(string, ...any)) int {
	g := s.g
	pid := sv.pid
	ver, venv := vllmVersion(g, argv[0])
	c, bad := parseVLLMArgs(argv, env)
	if bad != "" {
		logf("vllm serve: error: %s", bad)
		return 2
	}
	c.version, c.venv = ver, venv
	now := func() string { return time.Now().UTC().Format("01-02 15:04:05") }
	api := fmt.Sprintf("(APIServer pid=%d)", pid)
	logf("%s INFO %s [api_server.py:1896] vLLM API server version %s", api, now(), ver)
	logf("%s INFO %s [utils.py:233] non-default args: {'model_tag': '%s', 'host': '%s', 'port': %d, 'model': '%s', 'gpu_memory_utilization': %g}", api, now(), c.model, c.host, c.port, c.model, c.util)
	fail := func(lines ...string) int {
		for _, l := range lines {
			logf("%s", l)
		}
		return 1
	}
	// caches and downloads must be writable by the service user
	home := env["HF_HOME"]
	if home == "" {
		home = u.Home + "/.cache/huggingface"
	}
	dl := c.download
	if dl == "" {
		dl = env["HF_HUB_CACHE"] // huggingface_hub constants.py
	}
	if dl == "" {
		dl = home + "/hub"
	}
	pr := &proc{g: g, ctx: ctx, user: u, env: env, dir: "/"}
	if err := pr.mkdir(dl, 0o755, true); err != nil {
		return fail(fmt.Sprintf("%s ERROR %s [api_server.py:1480] PermissionError: [Errno 13] Permission denied: '%s'", api, now(), dl))
	}
	_, cu := torchFor(ver)
	if ok, reason := s.cudaInit(); !ok {
		return fail("RuntimeError: Failed to infer device type", fmt.Sprintf("(torch: %s)", reason))
	}
	// a torch build has kernels only for the architectures its CUDA version compiles (nvccSupports):
	// cu124 has none for Blackwell (guest.md §1), cu130 none for Pascal (CUDA 13.0 dropped it)
	if gpu := s.nvidiaGPU(); gpu != nil && !torchSupports(cu, gpu.computeCap()) {
		return fail(fmt.Sprintf("%s ERROR %s [core.py:708] EngineCore failed to start.", api, now()),
			"RuntimeError: CUDA error: no kernel image is available for execution on the device",
			"CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.")
	}
	gpu := s.nvidiaGPU()
	modelDir := dl + "/models--" + strings.ReplaceAll(c.model, "/", "--")
	first := !g.fs.exists(modelDir)
	if first && env["HF_HUB_OFFLINE"] == "1" {
		// transformers' message when the files are neither cached nor reachable (offline mode)
		return fail("huggingface_hub.errors.LocalEntryNotFoundError: Cannot find the requested files in the disk cache and outgoing traffic has been disabled.",
			"OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached files.",
			"Check your internet connection or see how to run the library in offline mode at 'https://huggingface.co/docs/transformers/installation#offline-mode'.",
			"RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}")
	}
	if first {
		logf("%s INFO %s [weight_utils.py:413] Downloading weights from HF hub for %s", api, now(), c.model)
		if g.sleep(ctx, 120*time.Second) != nil {
			return 0
		}
		if err := pr.mkdir(modelDir+"/snapshots", 0o755, true); err != nil {
			return fail(fmt.Sprintf("PermissionError: [Errno 13] Permission denied: '%s'", modelDir))
		}
	}
	weights, kvTok, defLen := modelFacts(c.model)
	if c.maxLen == 0 {
		c.maxLen = defLen
	}
	totalGiB := float64(gpu.memMiB) / 1024 * 0.972 // what torch sees (15.48 GiB of 16311 MiB)
	usedMiB, _ := s.gpuMemUsed()
	freeGiB := totalGiB - float64(usedMiB)/1024
	want := c.util * totalGiB
	logf("%s INFO %s [gpu_model_runner.py:2602] Starting to load model %s...", api, now(), c.model)
	if g.sleep(ctx, 30*time.Second) != nil {
		return 0
	}
	if freeGiB < want {
		return fail(fmt.Sprintf("ValueError: Free memory on device cuda:0 (%.2f/%.2f GiB) on startup is less than desired GPU memory utilization (%g, %.2f GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.", freeGiB, totalGiB, c.util, want),
			"RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}")
	}
	if s.g.f.fault(FaultVLLMOOM, g.id.VMID, nil) != nil || weights > want-0.3 {
		return fail(fmt.Sprintf("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.02 GiB. GPU 0 has a total capacity of %.2f GiB of which 212.06 MiB is free. Including non-PyTorch memory, this process has %.2f GiB memory in use.", totalGiB, math.Min(totalGiB-0.2, want)),
			"RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}")
	}
	if !g.fs.exists("/usr/bin/gcc") && !g.fs.exists("/usr/bin/cc") {
		return fail("RuntimeError: Failed to find C compiler. Please specify via CC environment variable or set triton.knobs.build.impl.",
			"RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}")
	}
	if !g.fs.exists("/usr/include/python3.12/Python.h") {
		return fail("/tmp/tmpx0m1kq2c/cuda_utils.c:6:10: fatal error: Python.h: No such file or directory",
			"subprocess.CalledProcessError: Command '['/usr/bin/gcc', '/tmp/tmpx0m1kq2c/cuda_utils.c', '-O3', '-shared', '-fPIC']' returned non-zero exit status 1.",
			"RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}")
	}
	kvAvail := want - weights - 1.1
	if kvNeed := float64(c.maxLen) * kvTok; kvNeed > kvAvail {
		est := int(kvAvail / kvTok)
		return fail(fmt.Sprintf("ValueError: To serve at least one request with the models's max seq len (%d), (%.2f GiB KV cache is needed, which is larger than the available KV cache memory (%.2f GiB). Based on the available memory, the estimated maximum model length is %d. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.", c.maxLen, kvNeed, math.Max(kvAvail, 0), est),
			"RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}")
	}
	reserveMiB := int(want * 1024)
	s.mu.Lock()
	s.gpuProcs[pid] = gpuProc{name: venv + "/bin/python3", mib: reserveMiB}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.gpuProcs, pid)
		s.mu.Unlock()
	}()
	tokens := int(kvAvail / kvTok)
	logf("%s INFO %s [gpu_worker.py:298] Available KV cache memory: %.2f GiB", api, now(), kvAvail)
	logf("%s INFO %s [kv_cache_utils.py:1087] GPU KV cache size: %d tokens", api, now(), tokens)
	logf("%s INFO %s [kv_cache_utils.py:1091] Maximum concurrency for %d tokens per request: %.2fx", api, now(), c.maxLen, float64(tokens)/float64(c.maxLen))
	if g.sleep(ctx, 40*time.Second) != nil {
		return 0
	}
	logf("%s INFO %s [core.py:210] init engine (profile, create kv cache, warmup model) took 40.11 seconds", api, now())
	logf("%s INFO %s [api_server.py:1971] Starting vLLM API server 0 on http://%s:%d", api, now(), c.host, c.port)
	logf("%s INFO %s [launcher.py:46] Route: /health, Methods: GET", api, now())
	logf("INFO:     Started server process [%d]", pid)
	logf("INFO:     Waiting for application startup.")
	logf("INFO:     Application startup complete.")
	eng := newEngine(weights*(1<<30), weights*(1<<30)/2, kvTok*(1<<30), gpuMemoryBandwidth(gpu), tokens, 256)
	h := vllmHandler(c, pid, eng)
	s.listen(c.host, c.port, h)
	defer s.unlisten(c.host, c.port)
	<-ctx.Done()
	return 0
}

func vllmHandler(c vllmConfig, pid int, eng *engine) http.Handler {
	created := time.Now().Unix()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"version": c.version})
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# HELP vllm:num_requests_running Number of requests in model execution batches.\n# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine=\"0\",model_name=\"%s\"} 0.0\n", c.served)
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		if c.apiKey != "" && r.Method != http.MethodOptions {
			// vLLM compares the header with "Bearer " + key (vllm/entrypoints/openai/api_server.py,
			// authentication middleware), and Starlette decodes header values as Latin-1
			// (starlette/datastructures.py Headers): a non-ASCII key never matches.
			raw := r.Header.Get("Authorization")
			auth := make([]rune, len(raw))
			for i := 0; i < len(raw); i++ {
				auth[i] = rune(raw[i])
			}
			if string(auth) != "Bearer "+c.apiKey {
				writeJSON(w, 401, map[string]string{"error": "Unauthorized"})
				return
			}
		}
		switch r.URL.Path {
		case "/v1/models":
			writeJSON(w, 200, map[string]any{"object": "list", "data": []any{map[string]any{
				"id": c.served, "object": "model", "created": created, "owned_by": "vllm", "root": c.model, "parent": nil, "max_model_len": c.maxLen,
				"permission": []any{map[string]any{"id": "modelperm-ba83413358dd8c4d", "object": "model_permission", "created": created, "allow_create_engine": false,
					"allow_sampling": true, "allow_logprobs": true, "allow_search_indices": false, "allow_view": true, "allow_fine_tuning": false, "organization": "*", "group": nil, "is_blocking": false}}}}})
		case "/v1/chat/completions", "/v1/completions":
			if r.Method != http.MethodPost {
				writeJSON(w, 405, map[string]string{"detail": "Method Not Allowed"})
				return
			}
			openAIChat(eng, c.served, c.maxLen, w, r)
		default:
			writeJSON(w, 404, map[string]string{"detail": "Not Found"})
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}
