package tasks

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Paths the guest phase owns.
const (
	modulesLoadPath         = "/etc/modules-load.d/nvidia-uvm.conf"
	vllmRoot                = "/opt/vllm"
	vllmVenv                = "/opt/vllm/venv"
	vllmUnitPath            = "/etc/systemd/system/vllm.service"
	vllmEnvPath             = "/etc/vllm/vllm.env"
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
// environment file as VLLM_API_KEY, never on the command line. The model is downloaded
// before the service starts (models.go), so the service runs with HF_HUB_OFFLINE=1: a
// missing model is an immediate, clear error instead of a download that looks like a hang.
func RenderVLLMUnit(v *VLLMParams) string {
	args := []string{vllmVenv + "/bin/vllm", "serve", v.Model,
		"--host", vllmHost(v),
		"--port", strconv.Itoa(v.Port),
		"--gpu-memory-utilization", strconv.FormatFloat(v.GPUMemoryUtilization, 'f', 2, 64),
		"--download-dir", v.modelsDir(),
	}
	if v.Revision != "" {
		args = append(args, "--revision", v.Revision)
	}
	if v.MaxModelLen > 0 {
		args = append(args, "--max-model-len", strconv.Itoa(v.MaxModelLen))
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
Environment=HF_HUB_OFFLINE=1
EnvironmentFile=/etc/vllm/vllm.env
`)
	// The config and tokenizer are read through huggingface_hub's cache (HF_HUB_CACHE), the
	// weights through --download-dir: both point at the directory hf download filled.
	fmt.Fprintf(&b, "Environment=HF_HUB_CACHE=%s\n", v.modelsDir())
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
// VLLM_API_KEY. Without a key it holds only a comment.
func RenderVLLMEnv(v *VLLMParams) string {
	s := managed
	if v.APIKey != "" {
		s += "VLLM_API_KEY=" + v.APIKey + "\n"
	}
	return s
}

// RenderVLLMLoopbackSocket listens on 127.0.0.1:<port> for the loopback proxy.
func RenderVLLMLoopbackSocket(v *VLLMParams) string {
	return managed + fmt.Sprintf(`[Unit]
Description=vLLM API on 127.0.0.1:%[1]d (forwarded to %[2]s:%[1]d)

[Socket]
ListenStream=127.0.0.1:%[1]d

[Install]
WantedBy=sockets.target
`, v.Port, vllmHost(v))
}

// RenderVLLMLoopbackService forwards the loopback socket to vLLM's private address.
func RenderVLLMLoopbackService(v *VLLMParams) string {
	return managed + fmt.Sprintf(`[Unit]
Description=Forward 127.0.0.1:%[1]d to vLLM on %[2]s:%[1]d
Requires=vllm-loopback.socket
After=vllm-loopback.socket vllm.service

[Service]
ExecStart=%[3]s %[2]s:%[1]d
DynamicUser=yes
`, v.Port, vllmHost(v), socketProxyd)
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
	return managed + fmt.Sprintf(`[Service]
Environment="OLLAMA_HOST=%s"
Environment="OLLAMA_MODELS=%s"
`, ollamaHost(o), o.ModelsDir)
}
