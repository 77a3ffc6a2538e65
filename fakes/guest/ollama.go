package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ollama: install.sh (§8.1), the server (§8.2-8.4) and the CLI.

const ollamaVersion = "0.33.2"

type ollamaModel struct {
	digest string
	size   int64
	params string
	family string
	human  string
}

var ollamaLibrary = map[string]ollamaModel{
	"llama3.2:latest":  {"a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72", 2019393189, "3.2B", "llama", "2.0 GB"},
	"llama3.2:1b":      {"baf6a787fdffd633537aa2eb51cfd54cb93ff08e28040095462bb63daf552878", 1321098329, "1.2B", "llama", "1.3 GB"},
	"qwen2.5:0.5b":     {"a8b0c51577010a279d933d14c2a8ab4b268079d44c5c8830c0a93900f1827c67", 397821319, "494.03M", "qwen2", "397 MB"},
	"tinyllama:latest": {"2644915ede352ea7bdfaff0bfac0be74c719d5d5202acb63a6fb095b52f394a4", 637700138, "1B", "llama", "637 MB"},
	"smollm:135m":      {"ba3a9ba8a5d8c2e0b9f5cd4b8c3e5e7f3e6d9c10b4d6e2b0a8e6e9f1c2d3b4a5", 91739413, "134.52M", "llama", "91 MB"},
}

func normModel(n string) string {
	if !strings.Contains(n, ":") {
		return n + ":latest"
	}
	return n
}

func init() {
	programs["ollama"] = progOllama
	programs["ollama-install"] = progOllamaInstall
	daemons["ollama"] = daemonOllama
}

// ollamaHost parses OLLAMA_HOST the way envconfig.Host does.
func ollamaHost(v string) (string, int) {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(strings.TrimPrefix(v, "http://"), "https://")
	v = strings.TrimSuffix(v, "/")
	if v == "" {
		return "127.0.0.1", 11434
	}
	host, port := v, 11434
	if i := strings.LastIndex(v, ":"); i >= 0 && !strings.HasSuffix(v, "]") {
		host = v[:i]
		if n, err := strconv.Atoi(v[i+1:]); err == nil {
			port = n
		}
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port
}

func progOllamaInstall(p *proc) int {
	g := p.g
	s := g.sys
	step := func(msg string) { p.errorf(">>> %s\n", msg) }
	if !g.fs.exists("/usr/bin/zstd") {
		p.errorf("ERROR: This version requires zstd for extraction. Please install zstd and try again:\n  - Debian/Ubuntu: sudo apt-get install zstd\n  - RHEL/CentOS/Fedora: sudo dnf install zstd\n  - Arch: sudo pacman -S zstd\n")
		return 1
	}
	if !p.root() {
		if ok, np := g.sudoAllowed(p.user); !ok || !np {
			p.errorf("ERROR: This script requires superuser permissions. Please re-run as root.\n")
			return 1
		}
	}
	root, _ := g.fs.lookupUser("root")
	as := *p
	as.user = root
	run := func(script string) int {
		_, code := as.shell(script)
		return code
	}
	if g.fs.exists("/usr/local/lib/ollama") {
		step("Cleaning up old version at /usr/local/lib/ollama")
		g.fs.remove("/usr/local/lib/ollama")
	}
	step("Installing ollama to /usr/local")
	step("Downloading ollama-linux-amd64.tar.zst")
	if g.sleep(p.ctx, 20*time.Second) != nil {
		return 1
	}
	p.errorf("######################################################################## 100.0%%\n")
	g.fs.writeFile("/usr/local/bin/ollama", simBinary("ollama"), 0o755, owner{})
	g.fs.writeFile("/usr/local/lib/ollama/cuda_v13/libggml-cuda.so", []byte("ggml cuda v13\n"), 0o755, owner{})
	g.fs.writeFile("/usr/local/lib/ollama/cuda_v12/libggml-cuda.so", []byte("ggml cuda v12\n"), 0o755, owner{})
	if !g.fs.exists("/usr/bin/systemctl") {
		return 0
	}
	if _, err := g.fs.lookupUser("ollama"); err != nil {
		step("Creating ollama user...")
		run("useradd -r -s /bin/false -U -m -d /usr/share/ollama ollama")
	}
	for _, grp := range []string{"render", "video"} {
		if _, ok := g.fs.groupByName(grp); ok {
			step("Adding ollama user to " + grp + " group...")
			g.fs.addToGroup("ollama", grp)
		}
	}
	step("Adding current user to ollama group...")
	who := p.env["SUDO_USER"]
	if who == "" {
		who = p.user.Name
	}
	g.fs.addToGroup(who, "ollama")
	step("Creating ollama systemd service...")
	pathEnv := p.env["PATH"]
	unitText := "[Unit]\nDescription=Ollama Service\nAfter=network-online.target\n\n[Service]\nExecStart=/usr/local/bin/ollama serve\nUser=ollama\nGroup=ollama\nRestart=always\nRestartSec=3\nEnvironment=\"PATH=" + pathEnv + "\"\n\n[Install]\nWantedBy=default.target\n"
	g.fs.writeFile("/etc/systemd/system/ollama.service", []byte(unitText), 0o644, owner{})
	step("Enabling and starting ollama service...")
	var o strings.Builder
	q := as
	q.stdout, q.stderr = &o, &o
	q.shell("systemctl daemon-reload && systemctl enable ollama")
	p.errorf("%s", o.String())
	defer func() {
		s.daemonReload()
		if sv := s.service("ollama.service"); sv != nil {
			s.stopService(sv, "restart")
		}
		s.startUnitByName(p.ctx, "ollama.service", nil)
	}()
	if _, ok := g.lookPath("nvidia-smi", pathEnv); ok {
		step("NVIDIA GPU installed.")
		return 0
	}
	if s.nvidiaGPU() == nil {
		p.errorf("WARNING: No NVIDIA/AMD GPU detected. Ollama will run in CPU-only mode.\n")
		step("The Ollama API is now available at 127.0.0.1:11434.")
		step("Install complete. Run \"ollama\" from the command line.")
		return 0
	}
	// NVIDIA seen by lspci but no nvidia-smi: install NVIDIA's CUDA driver stack.
	step("Installing NVIDIA repository...")
	s.mu.Lock()
	s.installed["cuda-keyring"] = "1.1-1"
	s.mu.Unlock()
	s.postinst(&as, archive["cuda-keyring"])
	var out strings.Builder
	q2 := as
	q2.stdout, q2.stderr = &out, &out
	code := g.execArgs(&q2, []string{"apt-get", "update"})
	if code == 0 {
		step("Installing CUDA driver...")
		code = g.execArgs(&q2, []string{"apt-get", "-y", "install", "cuda-drivers"})
	}
	p.errorf("%s", out.String())
	if code != 0 {
		return code
	}
	kv := kernelRelease
	g.execArgs(&q2, []string{"apt-get", "-y", "install", "linux-headers-" + kv})
	if code := g.execArgs(&q2, []string{"dkms", "autoinstall"}); code != 0 {
		p.errorf("%s", out.String())
		return code
	}
	if msg := s.loadNvidia(false); msg != "" {
		p.errorf("%s\n", msg)
		return 1
	}
	s.loadUVM()
	step("NVIDIA GPU ready.")
	step("The Ollama API is now available at 127.0.0.1:11434.")
	step("Install complete. Run \"ollama\" from the command line.")
	return 0
}

// daemonOllama is `ollama serve`.
func daemonOllama(ctx context.Context, s *system, sv *service, argv []string, env map[string]string, u *user) int {
	pid := sv.pid
	logf := func(format string, a ...any) {
		s.logUnit(sv.u.name, "%s[%d]: %s", path.Base(argv[0]), pid, fmt.Sprintf(format, a...))
	}
	return runOllama(ctx, s, sv, argv, env, u, logf)
}

func runOllama(ctx context.Context, s *system, sv *service, argv []string, env map[string]string, u *user, logf func(string, ...any)) int {
	g := s.g
	if len(argv) < 2 || argv[1] != "serve" {
		return 0
	}
	ts := func() string { return time.Now().UTC().Format(time.RFC3339Nano) }
	host, port := ollamaHost(env["OLLAMA_HOST"])
	models := env["OLLAMA_MODELS"]
	if models == "" {
		models = u.Home + "/.ollama/models"
	}
	logf("time=%s level=INFO source=routes.go:1511 msg=\"server config\" env=\"map[OLLAMA_HOST:http://%s:%d OLLAMA_KEEP_ALIVE:5m0s OLLAMA_MODELS:%s OLLAMA_NUM_PARALLEL:1]\"", ts(), host, port, models)
	pr := &proc{g: g, ctx: ctx, user: u, env: env, dir: "/"}
	if err := pr.mkdir(models+"/blobs", 0o755, true); err != nil {
		logf("Error: mkdir %s: permission denied", firstUnwritable(pr, models))
		return 1
	}
	logf("time=%s level=INFO source=images.go:522 msg=\"total blobs: %d\"", ts(), len(g.fs.glob(models+"/blobs", "sha256-*")))
	shown := host
	if host == "0.0.0.0" || host == "::" {
		shown = "[::]"
	}
	logf("time=%s level=INFO source=routes.go:1564 msg=\"Listening on %s:%d (version %s)\"", ts(), shown, port, ollamaVersion)
	logf("time=%s level=INFO source=runner.go:67 msg=\"discovering available GPUs...\"", ts())
	_, flags := cpuFlags(g.bootInfo().CPU)
	avx := hasFlag(flags, "avx")
	// libcuda loads nvidia_uvm through the setuid nvidia-modprobe when it can
	usable, _ := s.gpuUsable()
	ok := false
	if avx {
		ok, _ = s.cudaInit()
	}
	s.mu.Lock()
	uvm := s.loaded["nvidia_uvm"]
	s.mu.Unlock()
	gpu := s.nvidiaGPU()
	onGPU := ok && uvm && avx && gpu != nil
	mem := g.bootInfo().MemoryMiB
	if onGPU {
		logf("time=%s level=INFO source=types.go:60 msg=\"inference compute\" id=GPU-b75c61a8-fba6-aa18-344a-8a8871ba6af9 filter_id=\"\" library=CUDA compute=%s name=CUDA0 description=\"%s\" libdirs=ollama,cuda_v13 driver=%s pci_id=0000:%s type=discrete total=\"%.1f GiB\" available=\"%.1f GiB\"",
			ts(), gpu.computeCap(), gpu.model, cudaVersionFor(s.loadedNvidiaBranch()), gpu.guestAddr, float64(gpu.memMiB)/1024, float64(gpu.memMiB)/1024-0.5)
	} else {
		if gpu != nil && usable && avx && !uvm {
			logf("time=%s level=WARN source=cuda_common.go:60 msg=\"cuda driver library init failure\" error=\"cuda driver library init failure: 999. see https://github.com/ollama/ollama/blob/main/docs/troubleshooting.md for more information\"", ts())
		}
		logf("time=%s level=INFO source=types.go:60 msg=\"inference compute\" id=cpu library=cpu compute=\"\" name=cpu description=cpu libdirs=ollama driver=\"\" pci_id=\"\" type=\"\" total=\"%.1f GiB\" available=\"%.1f GiB\"", ts(), float64(mem)/1024, float64(mem)/1024-0.9)
	}
	keep := 5 * time.Minute
	if v := env["OLLAMA_KEEP_ALIVE"]; v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			keep = d
		} else if n, err := strconv.Atoi(v); err == nil {
			keep = time.Duration(n) * time.Second
		}
	}
	st := &ollamaServer{s: s, models: models, user: u, onGPU: onGPU, pid: sv.pid, keep: keep}
	s.listen(host, port, st.handler())
	defer s.unlisten(host, port)
	defer func() {
		s.mu.Lock()
		delete(s.gpuProcs, st.pid)
		s.mu.Unlock()
	}()
	<-ctx.Done()
	return 0
}

func (s *system) loadedNvidiaBranch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadedNvidia == nil {
		return ""
	}
	return s.loadedNvidia.branch
}

func firstUnwritable(p *proc, dir string) string {
	cur := dir
	for d := dir; d != "/" && d != "."; d = path.Dir(d) {
		if p.g.fs.exists(d) {
			return cur
		}
		cur = d
	}
	return dir
}

type ollamaServer struct {
	s      *system
	models string
	user   *user
	onGPU  bool
	pid    int
	keep   time.Duration

	mu     sync.Mutex
	loaded map[string]time.Time // model -> until
}

// load marks a model loaded for OLLAMA_KEEP_ALIVE; on GPU it takes VRAM (nvidia-smi shows it).
func (o *ollamaServer) load(name string) {
	m := ollamaLibrary[name]
	o.mu.Lock()
	if o.loaded == nil {
		o.loaded = map[string]time.Time{}
	}
	until := time.Now().Add(o.s.g.scale(o.keep))
	if o.s.g.f.scale == 0 || o.keep < 0 {
		until = time.Time{} // instant time: a keep-alive never runs out
	}
	o.loaded[name] = until
	total := int64(0)
	for n := range o.loaded {
		total += ollamaLibrary[n].size
	}
	o.mu.Unlock()
	_ = m
	if o.onGPU {
		o.s.mu.Lock()
		o.s.gpuProcs[o.pid] = gpuProc{name: "/usr/local/bin/ollama", mib: int(total/(1<<20)) + 600, until: until}
		o.s.mu.Unlock()
	}
}

// expire unloads models whose keep-alive ran out.
func (o *ollamaServer) expire() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var names []string
	for n, until := range o.loaded {
		if !until.IsZero() && time.Now().After(until) {
			delete(o.loaded, n)
			continue
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		o.s.mu.Lock()
		delete(o.s.gpuProcs, o.pid)
		o.s.mu.Unlock()
	}
	sort.Strings(names)
	return names
}

func (o *ollamaServer) manifests() map[string]time.Time {
	out := map[string]time.Time{}
	base := o.models + "/manifests/registry.ollama.ai/library"
	for _, m := range o.s.g.fs.glob(base, "*") {
		for _, t := range o.s.g.fs.glob(m, "*") {
			fi, err := o.s.g.fs.stat(t, true)
			if err == nil {
				out[path.Base(m)+":"+path.Base(t)] = fi.ModTime()
			}
		}
	}
	return out
}

func (o *ollamaServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "Ollama is running")
	})
	mux.HandleFunc("/api/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"version": ollamaVersion})
	})
	mux.HandleFunc("/api/tags", func(w http.ResponseWriter, r *http.Request) {
		list := []any{}
		for name, mod := range o.manifests() {
			m := ollamaLibrary[name]
			list = append(list, map[string]any{"name": name, "model": name, "modified_at": mod.Format(time.RFC3339Nano), "size": m.size, "digest": m.digest,
				"details": map[string]any{"parent_model": "", "format": "gguf", "family": m.family, "families": []string{m.family}, "parameter_size": m.params, "quantization_level": "Q4_K_M"}})
		}
		writeJSON(w, 200, map[string]any{"models": list})
	})
	mux.HandleFunc("/api/ps", func(w http.ResponseWriter, r *http.Request) {
		list := []any{}
		for _, n := range o.expire() {
			m := ollamaLibrary[n]
			vram := m.size
			if !o.onGPU {
				vram = 0
			}
			list = append(list, map[string]any{"name": n, "model": n, "size": m.size, "digest": m.digest, "size_vram": vram, "context_length": 4096})
		}
		writeJSON(w, 200, map[string]any{"models": list})
	})
	gen := func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string `json:"model"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		name := normModel(req.Model)
		if _, ok := o.manifests()[name]; !ok {
			writeJSON(w, 404, map[string]string{"error": "model '" + req.Model + "' not found"})
			return
		}
		o.expire()
		o.load(name)
		if r.URL.Path == "/api/chat" {
			writeJSON(w, 200, map[string]any{"model": name, "message": map[string]string{"role": "assistant", "content": "Hello!"}, "done": true})
			return
		}
		writeJSON(w, 200, map[string]any{"model": name, "response": "Hello!", "done": true})
	}
	mux.HandleFunc("/api/generate", gen)
	mux.HandleFunc("/api/chat", gen)
	mux.HandleFunc("/v1/models", func(w http.ResponseWriter, r *http.Request) {
		data := []any{}
		for name := range o.manifests() {
			data = append(data, map[string]any{"id": name, "object": "model", "created": time.Now().Unix(), "owned_by": "library"})
		}
		writeJSON(w, 200, map[string]any{"object": "list", "data": data})
	})
	mux.HandleFunc("/api/pull", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model  string `json:"model"`
			Name   string `json:"name"`
			Stream *bool  `json:"stream"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		name := normModel(req.Model + req.Name)
		m, ok := ollamaLibrary[name]
		if !ok {
			writeJSON(w, 500, map[string]string{"error": "pull model manifest: file does not exist"})
			return
		}
		pr := &proc{g: o.s.g, ctx: r.Context(), user: o.user, env: map[string]string{}, dir: "/"}
		repo, tag, _ := strings.Cut(name, ":")
		dir := o.models + "/manifests/registry.ollama.ai/library/" + repo
		if err := pr.mkdir(dir, 0o755, true); err != nil {
			writeJSON(w, 500, map[string]string{"error": "mkdir " + dir + ": permission denied"})
			return
		}
		o.s.g.sleep(r.Context(), time.Duration(m.size/200_000_000+1)*time.Second)
		pr.writeFile(o.models+"/blobs/sha256-"+m.digest, []byte("gguf (simulated)\n"), 0o644)
		pr.writeFile(dir+"/"+tag, []byte(`{"schemaVersion":2}`), 0o644)
		enc := json.NewEncoder(w)
		for _, st := range []map[string]any{{"status": "pulling manifest"}, {"status": "pulling " + m.digest[:12], "digest": "sha256:" + m.digest, "total": m.size, "completed": m.size},
			{"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}} {
			enc.Encode(st)
		}
	})
	return mux
}

// progOllama is the CLI; it talks to OLLAMA_HOST like the real client.
func progOllama(p *proc) int {
	args := p.args[1:]
	host, port := ollamaHost(p.env["OLLAMA_HOST"])
	if host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	call := func(method, path, body string) (*http.Response, bool) {
		req := httptest.NewRequest(method, "http://"+host+":"+strconv.Itoa(port)+path, strings.NewReader(body))
		req = req.WithContext(p.ctx)
		resp, code, _ := p.g.fetch(req)
		return resp, code == 0 && resp != nil
	}
	if len(args) == 0 {
		p.printf("Usage:\n  ollama [flags]\n  ollama [command]\n")
		return 0
	}
	switch args[0] {
	case "--version", "-v", "version":
		if _, ok := call("GET", "/api/version", ""); !ok {
			p.printf("Warning: could not connect to a running Ollama instance\nWarning: client version is %s\n", ollamaVersion)
			return 0
		}
		p.printf("ollama version is %s\n", ollamaVersion)
		return 0
	case "serve":
		sv := &service{u: &unit{name: "foreground"}, pid: p.g.sys.pid()}
		w := p.stderr
		return runOllama(p.ctx, p.g.sys, sv, []string{p.path, "serve"}, p.env, p.user, func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) })
	}
	down := func() int {
		p.errorf("Error: could not connect to ollama server, run 'ollama serve' to start it\n")
		return 1
	}
	switch args[0] {
	case "list", "ls":
		resp, ok := call("GET", "/api/tags", "")
		if !ok {
			return down()
		}
		var tags struct {
			Models []struct {
				Name       string `json:"name"`
				Digest     string `json:"digest"`
				ModifiedAt string `json:"modified_at"`
			} `json:"models"`
		}
		json.NewDecoder(resp.Body).Decode(&tags)
		p.printf("%-18s %-15s %-8s %s    \n", "NAME", "ID", "SIZE", "MODIFIED")
		for _, m := range tags.Models {
			p.printf("%-18s %-15s %-8s %s    \n", m.Name, m.Digest[:12], ollamaLibrary[m.Name].human, "3 minutes ago")
		}
		return 0
	case "ps":
		resp, ok := call("GET", "/api/ps", "")
		if !ok {
			return down()
		}
		var ps struct {
			Models []struct {
				Name     string `json:"name"`
				Digest   string `json:"digest"`
				SizeVRAM int64  `json:"size_vram"`
			} `json:"models"`
		}
		json.NewDecoder(resp.Body).Decode(&ps)
		p.printf("%-18s %-15s %-8s %-10s %-8s %s    \n", "NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL")
		for _, m := range ps.Models {
			proc := "100% CPU"
			if m.SizeVRAM > 0 {
				proc = "100% GPU"
			}
			p.printf("%-18s %-15s %-8s %-10s %-8s %s    \n", m.Name, m.Digest[:12], ollamaLibrary[m.Name].human, proc, "4096", "4 minutes from now")
		}
		return 0
	case "run":
		if len(args) < 2 {
			p.errorf("Error: requires at least 1 arg(s), only received 0\n")
			return 1
		}
		prompt := strings.Join(args[2:], " ")
		if prompt == "" {
			prompt = "hello"
		}
		resp, ok := call("POST", "/api/generate", `{"model":"`+args[1]+`","prompt":"`+prompt+`"}`)
		if !ok {
			return down()
		}
		var g struct {
			Response string `json:"response"`
			Error    string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&g)
		if g.Error != "" {
			p.errorf("Error: %s\n", g.Error)
			return 1
		}
		p.printf("%s\n\n", g.Response)
		return 0
	case "pull":
		if len(args) < 2 {
			p.errorf("Error: accepts 1 arg(s), received 0\n")
			return 1
		}
		resp, ok := call("POST", "/api/pull", `{"model":"`+args[1]+`"}`)
		if !ok {
			return down()
		}
		if resp.StatusCode != 200 {
			var e struct{ Error string }
			json.NewDecoder(resp.Body).Decode(&e)
			p.errorf("pulling manifest \nError: %s\n", e.Error)
			return 1
		}
		m := ollamaLibrary[normModel(args[1])]
		p.errorf("pulling manifest \npulling %s: 100%% ▕██████████████████▏ %s                         \nverifying sha256 digest \nwriting manifest \nsuccess \n", m.digest[:12], m.human)
		return 0
	case "show", "rm", "create", "stop":
		if _, ok := call("GET", "/api/version", ""); !ok {
			return down()
		}
		return 0
	}
	p.errorf("Error: unknown command \"%s\" for \"ollama\"\n", args[0])
	return 1
}
