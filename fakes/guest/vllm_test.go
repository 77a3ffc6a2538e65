package guest

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const vllmUnit = `[Unit]
Description=vLLM OpenAI-compatible server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=vllm
Group=vllm
WorkingDirectory=/opt/vllm
Environment=HF_HOME=/opt/vllm/hf
EnvironmentFile=-/etc/vllm/vllm.env
ExecStart=/opt/vllm/venv/bin/vllm serve Qwen/Qwen2.5-7B-Instruct-AWQ --host 0.0.0.0 --port 8000 --gpu-memory-utilization 0.85 --max-model-len 8192 --download-dir /opt/vllm/models
Restart=on-failure
RestartSec=10

[Install]
WantedBy=multi-user.target
`

// gpuReady installs the open 595 driver and loads it.
func (vm *testVM) gpuReady(c *ssh.Client) {
	vm.t.Helper()
	vm.must(c, "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y ubuntu-drivers-common && sudo ubuntu-drivers install --gpgpu nvidia:595-open && sudo apt-get install -y nvidia-utils-595 && sudo modprobe nvidia")
}

// poll runs cmd until it exits 0 (bounded).
func (vm *testVM) poll(c *ssh.Client, cmd string) result {
	vm.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := vm.sh(c, cmd)
		if r.code == 0 || time.Now().After(deadline) {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestVLLMService(t *testing.T) {
	vm := newVM(t, 0.002, nil).ready()
	c := vm.client()
	vm.gpuReady(c)
	r := vm.sh(c, "python3 -m venv /tmp/v1")
	if r.code != 1 || !strings.Contains(r.stdout, "ensurepip is not\navailable") {
		t.Errorf("venv without python3.12-venv: %d %q", r.code, r.stdout)
	}
	if r := vm.sh(c, "pip install vllm"); r.code != 127 {
		t.Errorf("pip on a fresh image: %d", r.code)
	}
	vm.must(c, "sudo apt-get install -y python3.12-venv python3.12-dev build-essential")
	vm.must(c, "sudo useradd --system --create-home --home-dir /opt/vllm --shell /usr/sbin/nologin vllm")
	vm.must(c, "sudo python3 -m venv /opt/vllm/venv && sudo /opt/vllm/venv/bin/pip install vllm==0.11.0 && sudo chown -R vllm:vllm /opt/vllm")
	if got := vm.must(c, "sudo -u vllm /opt/vllm/venv/bin/vllm --version"); got != "0.11.0\n" {
		t.Errorf("vllm --version %q", got)
	}
	vm.must(c, "sudo mkdir -p /etc/vllm && echo 'VLLM_API_KEY=s3cret' | sudo tee /etc/vllm/vllm.env >/dev/null && sudo chmod 600 /etc/vllm/vllm.env")
	vm.must(c, "sudo tee /etc/systemd/system/vllm.service >/dev/null <<'EOF'\n"+vllmUnit+"EOF")
	vm.must(c, "sudo systemctl daemon-reload && sudo systemctl enable --now vllm")
	if got := vm.must(c, "systemctl is-active vllm; systemctl is-enabled vllm"); got != "active\nenabled\n" {
		t.Errorf("state %q", got)
	}
	r = vm.sh(c, "curl -sS http://127.0.0.1:8000/health")
	if r.code != 7 || !strings.Contains(r.stderr, "Couldn't connect to server") {
		t.Errorf("health while loading: %d %q", r.code, r.stderr)
	}
	r = vm.poll(c, "curl -sf -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health")
	if r.stdout != "200" {
		t.Fatalf("health never 200: %+v\n%s", r, vm.must(c, "sudo journalctl -u vllm --no-pager"))
	}
	if r := vm.sh(c, "curl -s -w ' %{http_code}' http://192.168.0.140:8000/v1/models"); r.stdout != `{"error":"Unauthorized"} 401` {
		t.Errorf("no key: %q", r.stdout)
	}
	if got := vm.must(c, "curl -sf -H 'Authorization: Bearer s3cret' http://localhost:8000/v1/models"); !strings.Contains(got, `"id":"Qwen/Qwen2.5-7B-Instruct-AWQ"`) {
		t.Errorf("models %q", got)
	}
	// vLLM compares "Bearer " + key exactly (api_server.py): another case or a prefix is refused.
	for _, h := range []string{"bearer s3cret", "Bearer s3cre", "Bearer s3cret2"} {
		if r := vm.sh(c, "curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: "+h+"' http://localhost:8000/v1/models"); r.stdout != "401" {
			t.Errorf("%q: %q, want 401", h, r.stdout)
		}
	}
	if smi := vm.must(c, "nvidia-smi"); !strings.Contains(smi, "/opt/vllm/venv/bin/python3") {
		t.Errorf("nvidia-smi lacks the vLLM process:\n%s", smi)
	}
	pid := vm.must(c, "systemctl show -p MainPID --value vllm")
	if again := vm.must(c, "systemctl show -p MainPID --value vllm"); again != pid || pid == "0\n" {
		t.Errorf("MainPID unstable: %q %q", pid, again)
	}
	// drop-in that binds to loopback only: needs daemon-reload, then restart
	vm.must(c, "sudo mkdir -p /etc/systemd/system/vllm.service.d && printf '[Service]\\nExecStart=\\nExecStart=/opt/vllm/venv/bin/vllm serve Qwen/Qwen2.5-7B-Instruct-AWQ --host 127.0.0.1 --port 8000 --max-model-len 8192\\n' | sudo tee /etc/systemd/system/vllm.service.d/override.conf >/dev/null")
	r = vm.sh(c, "sudo systemctl restart vllm")
	if !strings.Contains(r.stderr, "changed on disk. Run 'systemctl daemon-reload' to reload units.") {
		t.Errorf("restart without daemon-reload: %q", r.stderr)
	}
	vm.must(c, "sudo systemctl daemon-reload && sudo systemctl restart vllm")
	if vm.must(c, "systemctl show -p MainPID --value vllm") == pid {
		t.Error("MainPID unchanged by restart")
	}
	vm.poll(c, "curl -sf http://127.0.0.1:8000/health")
	if r := vm.sh(c, "curl -s http://192.168.0.140:8000/health"); r.code != 7 {
		t.Errorf("loopback-bound vLLM answered on the guest IP: %d", r.code)
	}
	// injected OOM: the engine dies, systemd keeps restarting it
	vm.f.InjectFault(Fault{Kind: FaultVLLMOOM, Count: 1})
	vm.must(c, "sudo systemctl restart vllm")
	j := vm.poll(c, "sudo journalctl -u vllm --no-pager | grep -q 'torch.OutOfMemoryError: CUDA out of memory'")
	if j.code != 0 {
		t.Fatalf("no OOM in the journal:\n%s", vm.must(c, "sudo journalctl -u vllm --no-pager -n 40"))
	}
	vm.poll(c, "sudo journalctl -u vllm --no-pager | grep -q 'Main process exited, code=exited, status=1/FAILURE'")
	// after the fault is consumed, the restart succeeds
	vm.poll(c, "curl -sf http://127.0.0.1:8000/health")
}

func TestVLLMDoesNotFitBF16(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.gpuReady(c)
	vm.must(c, "sudo apt-get install -y python3.12-venv python3.12-dev build-essential && python3 -m venv ~/venv && ~/venv/bin/pip install vllm")
	r := vm.sh(c, "~/venv/bin/vllm serve Qwen/Qwen2.5-7B-Instruct --max-model-len 8192")
	if r.code != 1 || !strings.Contains(r.stdout, "torch.OutOfMemoryError: CUDA out of memory.") {
		t.Errorf("7B bf16 on 16 GB: %d\n%s", r.code, r.stdout)
	}
	r = vm.sh(c, "~/venv/bin/vllm serve Qwen/Qwen2.5-3B-Instruct --gpu-memory-utilization 0.5")
	if r.code != 1 || !strings.Contains(r.stdout, "ValueError: To serve at least one request with the models's max seq len (32768)") {
		t.Errorf("KV cache too small: %d\n%s", r.code, r.stdout)
	}
}

// TestSocketProxyAndModulesLoad: the library's loopback forwarder (a .socket + systemd-socket-proxyd)
// and /etc/modules-load.d at boot.
func TestSocketProxyAndModulesLoad(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.gpuReady(c)
	vm.must(c, "sudo apt-get install -y python3.12-venv python3.12-dev build-essential && sudo python3 -m venv /opt/vllm/venv && sudo /opt/vllm/venv/bin/pip install vllm")
	unit := strings.Replace(vllmUnit, "--host 0.0.0.0", "--host 192.168.0.140", 1)
	vm.must(c, "sudo useradd --system --create-home --home-dir /opt/vllm vllm; sudo chown -R vllm:vllm /opt/vllm && sudo tee /etc/systemd/system/vllm.service >/dev/null <<'EOF'\n"+unit+"EOF")
	vm.must(c, `sudo tee /etc/systemd/system/vllm-loopback.socket >/dev/null <<'EOF'
[Unit]
Description=vLLM API on 127.0.0.1:8000

[Socket]
ListenStream=127.0.0.1:8000

[Install]
WantedBy=sockets.target
EOF`)
	vm.must(c, `sudo tee /etc/systemd/system/vllm-loopback.service >/dev/null <<'EOF'
[Unit]
Requires=vllm-loopback.socket

[Service]
ExecStart=/usr/lib/systemd/systemd-socket-proxyd 192.168.0.140:8000
DynamicUser=yes
EOF`)
	vm.must(c, "sudo systemctl daemon-reload && sudo systemctl enable --now vllm vllm-loopback.socket")
	if got := vm.must(c, "systemctl is-active vllm-loopback.socket"); got != "active\n" {
		t.Errorf("socket: %q", got)
	}
	vm.poll(c, "curl -sf http://192.168.0.140:8000/health")
	if r := vm.sh(c, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health"); r.stdout != "200" {
		t.Errorf("through the proxy: %+v", r)
	}
	vm.must(c, "sudo systemctl stop vllm")
	if r := vm.sh(c, "curl -sS http://127.0.0.1:8000/health"); r.code != 56 {
		t.Errorf("proxy with vLLM down: %+v", r)
	}
	vm.must(c, "printf 'nvidia\\nnvidia_uvm\\n' | sudo tee /etc/modules-load.d/nvidia-uvm.conf >/dev/null")
	runErr(c, "sudo reboot")
	vm.ready()
	c2 := vm.client()
	if got := vm.must(c2, "lsmod | grep -c '^nvidia_uvm'"); got != "1\n" {
		t.Errorf("nvidia_uvm not loaded at boot: %q", got)
	}
	vm.poll(c2, "curl -sf http://127.0.0.1:8000/health") // vllm and the socket come back enabled
}
