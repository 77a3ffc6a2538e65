package tasks

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/aimachine/aimachine/provision/internal/encode"
)

// Paths the guest phase owns.
const (
	modulesLoadPath         = "/etc/modules-load.d/nvidia-uvm.conf"
	vllmRoot                = "/opt/vllm"
	vllmVenv                = "/opt/vllm/venv"
	vllmUnitPath            = "/etc/systemd/system/vllm.service"
	vllmEnvPath             = "/etc/vllm/vllm.env"
	vllmAuthHeaderPath      = "/etc/vllm/auth.header"
	vllmLoopbackSocketPath  = "/etc/systemd/system/vllm-loopback.socket"
	vllmLoopbackServicePath = "/etc/systemd/system/vllm-loopback.service"
	ollamaDropInPath        = "/etc/systemd/system/ollama.service.d/override.conf"
	socketProxyd            = "/usr/lib/systemd/systemd-socket-proxyd"
)

const managed = "# Managed by aimachine: local edits are overwritten by the next deploy.\n"

// RenderModulesLoad is /etc/modules-load.d/nvidia-uvm.conf: CUDA needs nvidia_uvm, which
// nothing else loads at boot.
func RenderModulesLoad() string {
	return managed + "nvidia\nnvidia_uvm\n"
}

// vllmHost is the one address vllm serve binds (--host takes a single value; vLLM's
// cli_args declares it as one nullable string and uvicorn binds it): 0.0.0.0 when the catalog
// lists it, else the first non-loopback address, else the first address.
func vllmHost(v *VLLMParams) string {
	for _, b := range v.Binds {
		if b == "0.0.0.0" {
			return b
		}
	}
	for _, b := range v.Binds {
		if ip := net.ParseIP(b); ip != nil && !ip.IsLoopback() {
			return b
		}
	}
	if len(v.Binds) > 0 {
		return v.Binds[0]
	}
	return "127.0.0.1"
}

// needsLoopbackProxy: the catalog wants 127.0.0.1 as well as the private address, which one
// vllm process cannot bind; a systemd socket on 127.0.0.1 forwards to it.
func needsLoopbackProxy(v *VLLMParams) bool {
	h := vllmHost(v)
	if h == "0.0.0.0" || net.ParseIP(h).IsLoopback() {
		return false
	}
	for _, b := range v.Binds {
		if ip := net.ParseIP(b); ip != nil && ip.IsLoopback() {
			return true
		}
	}
	return false
}

// RenderVLLMUnit is /etc/systemd/system/vllm.service. The API key lives in the 0600
// environment file as VLLM_API_KEY, never on the command line.
func RenderVLLMUnit(v *VLLMParams) string {
	args := []string{vllmVenv + "/bin/vllm", "serve", v.Model,
		"--host", vllmHost(v),
		"--port", strconv.Itoa(v.Port),
		"--gpu-memory-utilization", strconv.FormatFloat(v.GPUMemoryUtilization, 'f', 2, 64),
		"--download-dir", vllmRoot + "/models",
	}
	if v.MaxModelLen > 0 {
		args = append(args, "--max-model-len", strconv.Itoa(v.MaxModelLen))
	}
	for i, a := range args[1:] {
		args[i+1] = execArg(a)
	}
	var b strings.Builder
	b.WriteString(managed)
	b.WriteString(`[Unit]
Description=vLLM OpenAI-compatible API server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=vllm
Group=vllm
WorkingDirectory=/opt/vllm
Environment=HOME=/opt/vllm
Environment=HF_HOME=/opt/vllm/hf
Environment=VLLM_CACHE_ROOT=/opt/vllm/cache
EnvironmentFile=/etc/vllm/vllm.env
`)
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(args, " "))
	b.WriteString(`Restart=on-failure
RestartSec=10
LimitNOFILE=65536
TimeoutStopSec=60

[Install]
WantedBy=multi-user.target
`)
	return b.String()
}

// RenderVLLMEnv is /etc/vllm/vllm.env (mode 0600, root): the API key vLLM reads from
// VLLM_API_KEY, as an EnvironmentFile= line systemd reads (no shell ever sources it). Without
// a key it holds only a comment.
func RenderVLLMEnv(v *VLLMParams) string {
	s := managed
	if v.APIKey != "" {
		l, _ := encode.EnvFileLine("VLLM_API_KEY", v.APIKey) // "" when Validate would refuse it
		s += l
	}
	return s
}

// RenderVLLMAuthHeader is /etc/vllm/auth.header (mode 0600, root): the Authorization header
// the readiness probe sends with curl --header @FILE, so the key is never on a command line
// and the probe never sources the environment file. Empty without a key.
func RenderVLLMAuthHeader(v *VLLMParams) string {
	if v.APIKey == "" {
		return ""
	}
	l, _ := encode.HeaderLine("Authorization", "Bearer "+v.APIKey)
	return l
}

// RenderVLLMLoopbackSocket listens on 127.0.0.1:<port> for the loopback proxy.
func RenderVLLMLoopbackSocket(v *VLLMParams) string {
	return managed + fmt.Sprintf(`[Unit]
Description=%[1]s

[Socket]
ListenStream=%[2]s

[Install]
WantedBy=sockets.target
`, unitString(fmt.Sprintf("vLLM API on 127.0.0.1:%[1]d (forwarded to %[2]s:%[1]d)", v.Port, vllmHost(v))), unitString(net.JoinHostPort("127.0.0.1", strconv.Itoa(v.Port))))
}

// RenderVLLMLoopbackService forwards the loopback socket to vLLM's private address.
func RenderVLLMLoopbackService(v *VLLMParams) string {
	target := net.JoinHostPort(vllmHost(v), strconv.Itoa(v.Port))
	return managed + fmt.Sprintf(`[Unit]
Description=%[1]s
Requires=vllm-loopback.socket
After=vllm-loopback.socket vllm.service

[Service]
ExecStart=%[2]s %[3]s
DynamicUser=yes
`, unitString(fmt.Sprintf("Forward 127.0.0.1:%d to vLLM on %s", v.Port, target)), socketProxyd, execArg(target))
}

// ollamaHost is OLLAMA_HOST: one address (the first bind, the VM's IP by default).
func ollamaHost(o *OllamaParams) string {
	h := "127.0.0.1"
	if len(o.Binds) > 0 {
		h = o.Binds[0]
	}
	return net.JoinHostPort(h, strconv.Itoa(o.Port))
}

// RenderOllamaDropIn is /etc/systemd/system/ollama.service.d/override.conf: install.sh
// overwrites ollama.service on upgrade, so the configuration lives in a drop-in.
func RenderOllamaDropIn(o *OllamaParams) string {
	host, _ := encode.Environment("OLLAMA_HOST", ollamaHost(o))
	models, _ := encode.Environment("OLLAMA_MODELS", o.ModelsDir)
	return managed + fmt.Sprintf(`[Service]
Environment=%s
Environment=%s
`, host, models)
}

// execArg and unitString encode for the unit file; a value the encoders refuse (Validate
// reports it before anything runs) is left out, never written raw.
func execArg(s string) string {
	out, _ := encode.ExecArg(s)
	return out
}

func unitString(s string) string {
	out, _ := encode.UnitString(s)
	return out
}

// Validate checks that every value the guest phase writes into the guest can be carried by
// the sink it goes to (shell, unit file, environment file, HTTP header), so that a refused
// value stops the run before the first command, with the field named.
func (p *Params) Validate() error {
	var errs []error
	check := func(field string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	if v := p.VLLM; v != nil {
		_, err := encode.ExecArg(v.Model)
		check("services.vllm.model", err)
		for _, b := range v.Binds {
			_, err := encode.ExecArg(b)
			check("services.vllm.bind", err)
		}
		_, err = encode.Shell(v.Version)
		check("services.vllm.version", err)
		if v.APIKey != "" {
			check("the vLLM API key", ValidateAPIKey(v.APIKey))
		}
	}
	if o := p.Ollama; o != nil {
		_, err := encode.Environment("OLLAMA_HOST", ollamaHost(o))
		check("services.ollama.bind", err)
		_, err = encode.Environment("OLLAMA_MODELS", o.ModelsDir)
		check("services.ollama.models_dir", err)
		_, err = encode.Shell(o.ModelsDir)
		check("services.ollama.models_dir", err)
		_, err = encode.Shell(o.Version)
		check("services.ollama.version", err)
	}
	return errors.Join(errs...)
}

// MaxAPIKey is the longest API key accepted (bytes).
const MaxAPIKey = 4096

// ValidateAPIKey says whether a vLLM API key can travel: into the environment file vLLM reads
// (encode.EnvFileLine), into the Authorization header clients send (encode.HeaderLine), and
// as printable ASCII — vLLM compares the header Starlette decodes as Latin-1 with
// "Bearer "+key (vllm/entrypoints/openai/api_server.py), so a non-ASCII key never matches.
// The error never holds the key.
func ValidateAPIKey(key string) error {
	if _, err := encode.EnvFileLine("VLLM_API_KEY", key); err != nil {
		return err
	}
	if _, err := encode.HeaderLine("Authorization", "Bearer "+key); err != nil {
		return err
	}
	if len(key) > MaxAPIKey {
		return fmt.Errorf("it is %d bytes long, more than %d: HTTP servers cap request headers (h11, which uvicorn can serve vLLM with, refuses heads over 16 KiB)", len(key), MaxAPIKey)
	}
	for i := 0; i < len(key); i++ {
		if key[i] > 0x7e {
			return fmt.Errorf("it holds a non-ASCII character (at byte %d): vLLM compares the Authorization header, which HTTP carries as Latin-1, so the key would never match (hint: use printable ASCII, e.g. openssl rand -hex 32)", i)
		}
	}
	return nil
}

// Secrets are the strings to redact from transcripts and messages: the API key and every form
// in which the guest files hold it (the escaped environment-file line, the header line).
func (p *Params) Secrets() []string {
	if p.VLLM == nil || p.VLLM.APIKey == "" {
		return nil
	}
	out := []string{p.VLLM.APIKey}
	if l, err := encode.EnvFileLine("VLLM_API_KEY", p.VLLM.APIKey); err == nil {
		out = append(out, strings.TrimSuffix(l, "\n"))
	}
	return out
}
