package tasks

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/engine"
)

// fileTask keeps one rendered file in place; changing it marks the service for a restart.
func (h *Host) fileTask(name, fact, path string, mode fs.FileMode, want func() string, service string, reload bool) engine.Task {
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, fact)
			if err != nil {
				return false, err
			}
			return f.RC == 0 && f.Out == want(), nil
		},
		apply: func(ctx context.Context) error {
			if err := h.R.Put(ctx, path, mode, []byte(want())); err != nil {
				return err
			}
			if reload {
				if _, err := h.Root(ctx, "systemctl daemon-reload"); err != nil {
					return err
				}
			}
			if service != "" {
				h.restart[service] = true
			}
			return nil
		},
	}
}

// unitState is systemctl show's view of a unit.
type unitState map[string]string

func (h *Host) unit(ctx context.Context, fact string) (unitState, error) {
	f, err := h.Fact(ctx, fact)
	if err != nil {
		return nil, err
	}
	return unitState(ParseKeyValues(f.Out)), nil
}

func (u unitState) running() bool { return u["ActiveState"] == "active" }

// started: systemd runs it or is restarting it (a crash loop is diagnosed by the readiness task).
func (u unitState) started() bool {
	return u["ActiveState"] == "active" || u["ActiveState"] == "activating" || u["ActiveState"] == "reloading"
}
func (u unitState) enabled() bool { return u["UnitFileState"] == "enabled" }

// appliedPath records the configuration a service was last (re)started with, so a re-run
// after a failure between writing a file and restarting still restarts it once.
func appliedPath(unit string) string { return "/var/lib/aimachine/" + unit + ".applied" }

// serviceConfig is what a running service must have been started with (it includes the API
// key: it is only ever stored keyed and salted, see appliedMarker).
func (h *Host) serviceConfig(unit string) string {
	var parts []string
	switch unit {
	case "vllm":
		v := h.P.VLLM
		parts = []string{v.Version, RenderVLLMUnit(v), RenderVLLMEnv(v)}
	case "ollama":
		o := h.P.Ollama
		parts = []string{o.Version, RenderOllamaDropIn(o)}
	}
	return strings.Join(parts, "\x00")
}

// appliedMarker is the content of appliedPath: a random salt and HMAC-SHA256(salt, config),
// so the marker (a root file, mode 0600) holds nothing from which the API key could be
// recovered or recognised by comparing unsalted hashes.
func (h *Host) appliedMarker(unit string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	return appliedLine(salt, h.serviceConfig(unit))
}

func appliedLine(salt []byte, config string) string {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(config))
	return "hmac-sha256 " + hex.EncodeToString(salt) + " " + hex.EncodeToString(m.Sum(nil)) + "\n"
}

// appliedMatches says whether the marker read from the guest was written for the current
// configuration.
func (h *Host) appliedMatches(unit, marker string) bool {
	f := strings.Fields(marker)
	if len(f) != 3 || f[0] != "hmac-sha256" {
		return false
	}
	salt, err := hex.DecodeString(f[1])
	if err != nil || len(salt) == 0 {
		return false
	}
	return hmac.Equal([]byte(appliedLine(salt, h.serviceConfig(unit))), []byte(strings.TrimSpace(marker)+"\n"))
}

// serviceTask keeps a unit enabled and running, restarting it once when its configuration
// changed since it was last started (and only then).
func (h *Host) serviceTask(unit, fact string) engine.Task {
	return &task{
		name: "enable and start " + unit,
		check: func(ctx context.Context) (bool, error) {
			u, err := h.unit(ctx, fact)
			if err != nil {
				return false, err
			}
			applied, err := h.Fact(ctx, unit+"_applied")
			if err != nil {
				return false, err
			}
			return u.enabled() && u.started() && !h.restart[unit] && h.appliedMatches(unit, applied.Out), nil
		},
		apply: func(ctx context.Context) error {
			u, err := h.unit(ctx, fact)
			if err != nil {
				return err
			}
			verb := "start"
			if u["ActiveState"] != "inactive" && u["ActiveState"] != "failed" {
				verb = "restart"
			}
			if u.started() && !h.restart[unit] {
				if applied, _ := h.Fact(ctx, unit+"_applied"); h.appliedMatches(unit, applied.Out) {
					verb = "start" // only enabling was missing
				}
			}
			res, err := h.Root(ctx, "systemctl enable "+unit+".service && systemctl "+verb+" "+unit+".service")
			if err != nil {
				j, _ := h.Root(ctx, "journalctl -u "+unit+".service -n 40 --no-pager")
				return engine.Fail(fmt.Errorf("systemctl %s %s: %w", verb, unit, err), "read the journal lines above", strings.TrimSpace(res.Stdout+res.Stderr+"\n"+j.Stdout))
			}
			if err := h.R.Put(ctx, appliedPath(unit), 0o600, []byte(h.appliedMarker(unit))); err != nil {
				return err
			}
			delete(h.restart, unit)
			return nil
		},
	}
}

// --- vLLM ---

func (h *Host) vllmTasks() []engine.Task {
	v := h.P.VLLM
	ts := []engine.Task{
		h.vllmUserTask(),
		h.vllmInstallTask(),
		h.envFileTask(),
		h.fileTask("write "+vllmUnitPath, "vllm_unit", vllmUnitPath, 0o644, func() string { return RenderVLLMUnit(v) }, "vllm", true),
	}
	if needsLoopbackProxy(v) {
		ts = append(ts, h.vllmLoopbackTask())
	}
	ts = append(ts, h.serviceTask("vllm", "vllm_show"), h.vllmReadyTask())
	return ts
}

// envFileTask writes the files holding the API key, root-owned and 0600: the environment file
// systemd reads for vLLM and the header file the readiness probe hands to curl.
func (h *Host) envFileTask() engine.Task {
	v := h.P.VLLM
	want := func() string {
		return RenderVLLMEnv(v) + "600 root\n::header\n" + RenderVLLMAuthHeader(v) + "600 root\n"
	}
	return &task{
		name: "write " + vllmEnvPath + " and " + vllmAuthHeaderPath + " (API key, mode 0600)",
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "vllm_env")
			if err != nil {
				return false, err
			}
			return f.RC == 0 && f.Out == want(), nil
		},
		apply: func(ctx context.Context) error {
			if err := h.R.Put(ctx, vllmEnvPath, 0o600, []byte(RenderVLLMEnv(v))); err != nil {
				return err
			}
			if err := h.R.Put(ctx, vllmAuthHeaderPath, 0o600, []byte(RenderVLLMAuthHeader(v))); err != nil {
				return err
			}
			h.restart["vllm"] = true
			return nil
		},
	}
}

func (h *Host) vllmUserTask() engine.Task {
	return &task{
		name: "create the vllm service user and /opt/vllm",
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Facts(ctx)
			if err != nil {
				return false, err
			}
			if f["vllm_user"].RC != 0 {
				return false, nil
			}
			owners := owners(f["vllm_dirs"].Out)
			return owners["/opt/vllm"] == "vllm" && owners["/opt/vllm/hf"] == "vllm", nil
		},
		apply: func(ctx context.Context) error {
			res, err := h.Root(ctx, "getent passwd vllm >/dev/null || useradd --system --user-group --home-dir /opt/vllm --shell /usr/sbin/nologin vllm; "+
				"install -d -o vllm -g vllm -m 0755 /opt/vllm /opt/vllm/hf /opt/vllm/cache /opt/vllm/models")
			if err != nil {
				return engine.Fail(fmt.Errorf("create user vllm: %w", err), "", guest.Tail(res.Stdout+res.Stderr, 10))
			}
			return nil
		},
	}
}

func owners(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if u, p, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			m[p] = u
		}
	}
	return m
}

func (h *Host) vllmInstallTask() engine.Task {
	v := h.P.VLLM
	name := "install vLLM " + v.Version + " in " + vllmVenv
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "vllm_pip")
			if err != nil {
				return false, err
			}
			return f.RC == 0 && PipShowVersion(f.Out) == v.Version, nil
		},
		apply: func(ctx context.Context) error {
			script := "set -e; cd /opt/vllm; [ -x " + vllmVenv + "/bin/pip ] || sudo -u vllm -H python3 -m venv " + vllmVenv + "; " +
				"sudo -u vllm -H " + vllmVenv + "/bin/pip install --no-input --disable-pip-version-check " + guest.Quote("vllm=="+v.Version)
			res, err := h.Root(ctx, script)
			if err != nil {
				out := res.Stdout + res.Stderr
				hint := "check the VM reaches pypi.org and that vllm==" + v.Version + " exists for Python 3.12"
				if strings.Contains(out, "ensurepip is not available") {
					hint = "python3.12-venv is missing (the base packages task installs it)"
				}
				if strings.Contains(out, "No space left") {
					hint = "the disk is full: the vLLM venv needs 10+ GB"
				}
				return engine.Fail(fmt.Errorf("pip install vllm==%s: %w", v.Version, err), hint, guest.Tail(out, 30))
			}
			h.restart["vllm"] = true
			return nil
		},
	}
}

func (h *Host) vllmLoopbackTask() engine.Task {
	v := h.P.VLLM
	return &task{
		name: "forward 127.0.0.1:" + strconv.Itoa(v.Port) + " to vLLM (vllm-loopback.socket)",
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Facts(ctx)
			if err != nil {
				return false, err
			}
			u := unitState(ParseKeyValues(f["vllm_lo_show"].Out))
			return f["vllm_lo_socket"].Out == RenderVLLMLoopbackSocket(v) && f["vllm_lo_service"].Out == RenderVLLMLoopbackService(v) &&
				u.enabled() && u.running(), nil
		},
		apply: func(ctx context.Context) error {
			if err := h.R.Put(ctx, vllmLoopbackSocketPath, 0o644, []byte(RenderVLLMLoopbackSocket(v))); err != nil {
				return err
			}
			if err := h.R.Put(ctx, vllmLoopbackServicePath, 0o644, []byte(RenderVLLMLoopbackService(v))); err != nil {
				return err
			}
			res, err := h.Root(ctx, "systemctl daemon-reload && systemctl enable vllm-loopback.socket && systemctl stop vllm-loopback.service; systemctl restart vllm-loopback.socket")
			if err != nil {
				return engine.Fail(fmt.Errorf("start vllm-loopback.socket: %w", err), "", guest.Tail(res.Stdout+res.Stderr, 20))
			}
			return nil
		},
	}
}

// vllmProbe is a read-only script: HTTP codes of /health on every bind, /v1/models with the
// key (curl reads the Authorization header from the 0600 header file: the key is never on a
// command line, and no shell reads the environment file), and the unit's state.
func (h *Host) vllmProbe() string {
	var b strings.Builder
	for _, addr := range h.vllmAddrs() {
		fmt.Fprintf(&b, "printf 'health %%s %%s\\n' %s \"$(curl -s -o /dev/null -w '%%{http_code}' --max-time 5 %s)\"\n", guest.Quote(addr), guest.Quote("http://"+addr+"/health"))
	}
	addr := h.vllmAddrs()[0]
	fmt.Fprintf(&b, "echo '::models'; curl -s --max-time 5 --header @%s %s; echo\n", vllmAuthHeaderPath, guest.Quote("http://"+addr+"/v1/models"))
	b.WriteString("echo '::show'; " + systemctlShow("vllm.service") + "\n")
	return b.String()
}

// vllmAddrs are host:port pairs vLLM must answer on (each bind; 0.0.0.0 is probed via the VM's IP).
func (h *Host) vllmAddrs() []string {
	v := h.P.VLLM
	var out []string
	for _, b := range v.Binds {
		if b == "0.0.0.0" {
			if h.P.IP != "" {
				out = append(out, net.JoinHostPort(h.P.IP, strconv.Itoa(v.Port)))
			}
			out = append(out, net.JoinHostPort("127.0.0.1", strconv.Itoa(v.Port)))
			continue
		}
		out = append(out, net.JoinHostPort(b, strconv.Itoa(v.Port)))
	}
	if len(out) == 0 {
		out = append(out, net.JoinHostPort("127.0.0.1", strconv.Itoa(v.Port)))
	}
	return out
}

// VLLMStatus is one probe's reading.
type VLLMStatus struct {
	Health      map[string]string // addr -> HTTP code ("000" = refused)
	Models      string            // /v1/models body
	ModelListed bool
	Unit        unitState
}

// Ready is /health 200 everywhere and the model listed.
func (s VLLMStatus) Ready() bool {
	if len(s.Health) == 0 || !s.ModelListed {
		return false
	}
	for _, c := range s.Health {
		if c != "200" {
			return false
		}
	}
	return true
}

func (s VLLMStatus) summary() string {
	var parts []string
	for a, c := range s.Health {
		parts = append(parts, "/health on "+a+": "+c)
	}
	parts = append(parts, "unit "+s.Unit["ActiveState"]+"/"+s.Unit["SubState"]+", restarts "+s.Unit["NRestarts"])
	return strings.Join(parts, "; ")
}

func parseVLLMProbe(out, model string) VLLMStatus {
	s := VLLMStatus{Health: map[string]string{}}
	head, rest, _ := strings.Cut(out, "::models\n")
	for _, line := range strings.Split(head, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "health" {
			s.Health[f[1]] = f[2]
		}
	}
	models, show, _ := strings.Cut(rest, "::show\n")
	s.Models = strings.TrimSpace(models)
	s.ModelListed = modelListed(s.Models, model)
	s.Unit = unitState(ParseKeyValues(show))
	return s
}

// modelListed checks an OpenAI /v1/models body for the id.
func modelListed(body, model string) bool {
	return regexp.MustCompile(`"id"\s*:\s*"` + regexp.QuoteMeta(model) + `"`).MatchString(body)
}

// VLLM failure patterns in the journal (guest.md §7.7, §10.3).
var vllmFailures = []struct{ re, hint string }{
	{`Free memory on device .* is less than desired GPU memory utilization`, "not enough free VRAM at start: lower services.vllm.gpu_memory_utilization, or stop what holds the GPU (Ollama keeps models loaded for OLLAMA_KEEP_ALIVE)"},
	{`KV cache is needed, which is larger than the available KV cache memory|larger than the maximum number of tokens that can be stored in KV cache`, "the context does not fit the KV cache: set services.vllm.max_model_len lower (the message names the estimated maximum) or raise gpu_memory_utilization"},
	{`CUDA out of memory|OutOfMemoryError`, "the model does not fit in VRAM: choose a smaller or quantised model, or lower max_model_len"},
	{`no kernel image is available for execution on the device|not compatible with the current PyTorch installation`, "the installed PyTorch lacks sm_120: pin a vLLM version with cu128+ wheels (0.9.0 or newer)"},
	{`NVIDIA driver on your system is too old`, "the vLLM wheels need a newer driver: install a newer -open driver branch"},
	{`Illegal instruction|status=4/ILL`, "the CPU lacks instructions the wheels need: set the VM's cpu type to host (kvm64 hides AVX)"},
	{`Failed to find C compiler|Python.h: No such file`, "install build-essential and python3.12-dev (the base packages task does)"},
	{`401 Client Error|Unauthorized for url|gated repo`, "the model is gated: provide HF_TOKEN or choose an open model"},
	{`No space left on device`, "the disk is full: the model download needs space under /opt/vllm"},
}

func vllmHint(journal string) string {
	for _, f := range vllmFailures {
		if regexp.MustCompile(f.re).MatchString(journal) {
			return f.hint
		}
	}
	return "read the vLLM journal above (journalctl -u vllm on the VM)"
}

func (h *Host) vllmReadyTask() engine.Task {
	v := h.P.VLLM
	name := "wait for vLLM to serve " + v.Model
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "vllm_ready")
			if err != nil {
				return false, err
			}
			return parseVLLMProbe(f.Out, v.Model).Ready(), nil
		},
		apply: func(ctx context.Context) error {
			var base string
			var last VLLMStatus
			err := h.poll(ctx, name, "vLLM /health 200 and /v1/models listing "+v.Model, h.P.ReadyTimeout, func(ctx context.Context) (bool, string, error) {
				res, err := h.Root(ctx, h.vllmProbe())
				if err != nil {
					var ee *guest.ExitError
					if !errors.As(err, &ee) {
						return false, "", err
					}
				}
				last = parseVLLMProbe(res.Stdout, v.Model)
				if last.Ready() {
					return true, "", nil
				}
				if base == "" {
					base = last.Unit["NRestarts"]
				}
				if last.Unit["ActiveState"] == "failed" || (last.Unit["NRestarts"] != base && base != "") {
					return false, "", h.serviceFailure("vllm", "vLLM stopped while starting ("+last.summary()+")", vllmHint)
				}
				if last.ModelListed == false && len(last.Health) > 0 && allCode(last.Health, "200") && last.Models != "" {
					return false, "healthy, but /v1/models does not list " + v.Model, nil
				}
				return false, last.summary(), nil
			})
			if err != nil {
				var f *engine.Failure
				if errors.As(err, &f) || ctx.Err() != nil {
					return err
				}
				return h.serviceFailure("vllm", err.Error(), vllmHint)
			}
			return nil
		},
		waitOnly: always,
	}
}

func allCode(m map[string]string, code string) bool {
	for _, c := range m {
		if c != code {
			return false
		}
	}
	return true
}

// serviceFailure reads the unit's journal and builds the failure.
func (h *Host) serviceFailure(unit, msg string, hint func(string) string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30e9)
	defer cancel()
	j, _ := h.Root(ctx, "journalctl -u "+unit+".service -n 60 --no-pager")
	return engine.Fail(errors.New(msg), hint(j.Stdout), guest.Tail(j.Stdout, 40))
}

// --- Ollama ---

func (h *Host) ollamaTasks() []engine.Task {
	o := h.P.Ollama
	return []engine.Task{
		h.ollamaInstallTask(),
		h.ollamaDirTask(),
		h.fileTask("write "+ollamaDropInPath, "ollama_dropin", ollamaDropInPath, 0o644, func() string { return RenderOllamaDropIn(o) }, "ollama", true),
		h.serviceTask("ollama", "ollama_show"),
		h.ollamaGPUTask(),
	}
}

func (h *Host) ollamaInstallTask() engine.Task {
	o := h.P.Ollama
	name := "install Ollama"
	if o.Version != "" {
		name += " " + o.Version
	}
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Facts(ctx)
			if err != nil {
				return false, err
			}
			if f["ollama_bin"].RC != 0 {
				return false, nil
			}
			return o.Version == "" || OllamaVersion(f["ollama_version"].Out) == o.Version, nil
		},
		apply: func(ctx context.Context) error {
			// install.sh installs NVIDIA's cuda-drivers when nvidia-smi is missing (guest.md §8.1).
			f, err := h.Fact(ctx, "smi")
			if err != nil {
				return err
			}
			if f.RC != 0 {
				return engine.Fail(fmt.Errorf("refusing to run Ollama's installer while nvidia-smi fails (exit %d): it would install NVIDIA's cuda-drivers over the Ubuntu driver", f.RC), "get the NVIDIA driver working first (the driver tasks run before this one)", guest.Tail(f.Out, 5))
			}
			env := ""
			if o.Version != "" {
				env = "OLLAMA_VERSION=" + guest.Quote(o.Version) + " "
			}
			res, err := h.Root(ctx, "set -e; curl -fsSL -o /tmp/ollama-install.sh https://ollama.com/install.sh; "+env+"sh /tmp/ollama-install.sh; rm -f /tmp/ollama-install.sh")
			if err != nil {
				out := res.Stdout + res.Stderr
				hint := "the VM must reach ollama.com and github.com"
				if strings.Contains(out, "requires zstd") {
					hint = "install zstd (the base packages task does)"
				}
				return engine.Fail(fmt.Errorf("Ollama's install.sh: %w", err), hint, guest.Tail(out, 30))
			}
			h.restart["ollama"] = true
			return nil
		},
	}
}

func (h *Host) ollamaDirTask() engine.Task {
	o := h.P.Ollama
	return &task{
		name: "give " + o.ModelsDir + " to the ollama user",
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "ollama_dirs")
			if err != nil {
				return false, err
			}
			return owners(f.Out)[o.ModelsDir] == "ollama", nil
		},
		apply: func(ctx context.Context) error {
			res, err := h.Root(ctx, "install -d -o ollama -g ollama -m 0755 "+guest.Quote(o.ModelsDir)+" && chown ollama:ollama "+guest.Quote(parentDir(o.ModelsDir)))
			if err != nil {
				return engine.Fail(fmt.Errorf("create %s: %w", o.ModelsDir, err), "the ollama user comes from Ollama's installer", guest.Tail(res.Stdout+res.Stderr, 10))
			}
			h.restart["ollama"] = true
			return nil
		},
	}
}

// parentDir is the directory the ollama user also gets: the parent of the models directory
// when that parent is an application directory directly under /opt or /srv (the default
// /opt/ollama/models gives /opt/ollama), else the models directory itself — never a system or
// home directory (a models_dir of /etc/models must not hand /etc to the ollama user).
func parentDir(p string) string {
	p = path.Clean(p)
	d := path.Dir(p)
	if top := path.Dir(d); (top == "/opt" || top == "/srv") && d != top {
		return d
	}
	return p
}

func (h *Host) ollamaProbe() string {
	o := h.P.Ollama
	return "journalctl -u ollama.service -b --no-pager -o cat | grep 'msg=\"inference compute\"' | tail -n 3; echo '::api'; curl -s --max-time 5 " + guest.Quote("http://"+ollamaHost(o)+"/api/version") + "; echo; echo '::show'; " + systemctlShow("ollama.service")
}

func parseOllamaProbe(out string) (OllamaCompute, string, unitState) {
	logs, rest, _ := strings.Cut(out, "::api\n")
	api, show, _ := strings.Cut(rest, "::show\n")
	return ParseOllamaCompute(logs), strings.TrimSpace(api), unitState(ParseKeyValues(show))
}

func (h *Host) ollamaGPUTask() engine.Task {
	name := "check Ollama runs on the GPU"
	restarted := false
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "ollama_ready")
			if err != nil {
				return false, err
			}
			c, api, _ := parseOllamaProbe(f.Out)
			return c.OnGPU() && strings.Contains(api, `"version"`), nil
		},
		apply: func(ctx context.Context) error {
			wait := func() (OllamaCompute, error) {
				var c OllamaCompute
				err := h.poll(ctx, name, "Ollama's API and its inference-compute log line", h.P.ReadyTimeout, func(ctx context.Context) (bool, string, error) {
					res, err := h.Root(ctx, h.ollamaProbe())
					if err != nil {
						var ee *guest.ExitError
						if !errors.As(err, &ee) {
							return false, "", err
						}
					}
					var api string
					var u unitState
					c, api, u = parseOllamaProbe(res.Stdout)
					if u["ActiveState"] == "failed" {
						return false, "", h.serviceFailure("ollama", "the ollama service failed", ollamaHint)
					}
					if c.Found && strings.Contains(api, `"version"`) {
						return true, "", nil
					}
					return false, "unit " + u["ActiveState"] + ", API " + orNone(api), nil
				})
				return c, err
			}
			c, err := wait()
			if err != nil {
				var f *engine.Failure
				if errors.As(err, &f) || ctx.Err() != nil {
					return err
				}
				return h.serviceFailure("ollama", err.Error(), ollamaHint)
			}
			if c.OnGPU() {
				return nil
			}
			// Started before the driver worked (guest.md §10.4): one restart.
			h.progress(name, "Ollama found no GPU ("+c.Line+"): restarting it once now that the driver works")
			if _, err := h.Root(ctx, "modprobe nvidia_uvm; systemctl restart ollama.service"); err != nil {
				return err
			}
			restarted = true
			c, err = wait()
			if err != nil {
				return err
			}
			if !c.OnGPU() {
				return h.serviceFailure("ollama", "Ollama runs on the CPU: its log says "+c.Line, ollamaHint)
			}
			return nil
		},
		waitOnly: func() bool { return !restarted },
	}
}

func orNone(s string) string {
	if s == "" {
		return "not answering"
	}
	return "answering"
}

func ollamaHint(journal string) string {
	switch {
	case strings.Contains(journal, "permission denied"):
		return "the ollama user cannot write OLLAMA_MODELS: chown -R ollama:ollama the models directory"
	case strings.Contains(journal, "library=cpu"):
		return "Ollama sees no GPU: check nvidia-smi, load nvidia_uvm (modprobe nvidia_uvm), then systemctl restart ollama"
	case strings.Contains(journal, "address already in use"):
		return "another process holds Ollama's port"
	}
	return "read the Ollama journal above (journalctl -u ollama on the VM)"
}
