package guest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/aimachine/aimachine/fakes/pve"
)

func TestOllamaInstallAfterDriver(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.gpuReady(c)
	r := vm.sh(c, "curl -fsSL https://ollama.com/install.sh | sh")
	if r.code != 1 || !strings.Contains(r.stderr, "requires zstd") {
		t.Errorf("without zstd: %d %q", r.code, r.stderr)
	}
	vm.must(c, "sudo apt-get install -y zstd")
	r = vm.sh(c, "curl -fsSL https://ollama.com/install.sh | sh")
	if r.code != 0 || !strings.Contains(r.stderr, ">>> NVIDIA GPU installed.") || !strings.Contains(r.stderr, "Created symlink /etc/systemd/system/default.target.wants/ollama.service") {
		t.Fatalf("install.sh: %d\n%s", r.code, r.stderr)
	}
	if vm.g.sys.isInstalled("cuda-drivers") {
		t.Error("install.sh installed cuda-drivers although nvidia-smi was present")
	}
	vm.poll(c, "curl -sf http://127.0.0.1:11434/api/version")
	if got := vm.must(c, "ollama --version"); got != "ollama version is 0.33.2\n" {
		t.Errorf("ollama --version: %q", got)
	}
	vm.must(c, "sudo mkdir -p /etc/systemd/system/ollama.service.d /opt/ollama/models && printf '[Service]\\nEnvironment=\"OLLAMA_HOST=0.0.0.0:11434\"\\nEnvironment=\"OLLAMA_MODELS=/opt/ollama/models\"\\n' | sudo tee /etc/systemd/system/ollama.service.d/override.conf >/dev/null && sudo systemctl daemon-reload && sudo systemctl restart ollama")
	j := vm.poll(c, "sudo journalctl -u ollama --no-pager | grep -q 'permission denied'")
	if j.code != 0 {
		t.Errorf("models dir owned by root did not crash ollama:\n%s", vm.must(c, "sudo journalctl -u ollama --no-pager -n 20"))
	}
	vm.must(c, "sudo chown -R ollama:ollama /opt/ollama && sudo systemctl restart ollama")
	vm.poll(c, "curl -sf http://192.168.0.140:11434/api/version")
	if got := vm.must(c, "curl -s http://192.168.0.140:11434/"); got != "Ollama is running" {
		t.Errorf("GET /: %q", got)
	}
	log := vm.must(c, "sudo journalctl -u ollama --no-pager")
	if !strings.Contains(log, `msg="inference compute"`) || !strings.Contains(log, "library=CUDA") || !strings.Contains(log, `description="NVIDIA GeForce RTX 5060 Ti"`) {
		t.Errorf("ollama did not find the GPU:\n%s", log)
	}
	vm.must(c, "OLLAMA_HOST=127.0.0.1:11434 ollama pull qwen2.5:0.5b")
	if got := vm.must(c, "ollama list"); !strings.Contains(got, "qwen2.5:0.5b") {
		t.Errorf("ollama list: %q", got)
	}
	vm.must(c, "sudo systemctl stop ollama")
	if got := vm.must(c, "ollama --version"); got != "Warning: could not connect to a running Ollama instance\nWarning: client version is 0.33.2\n" {
		t.Errorf("--version with the server down: %q", got)
	}
}

func TestOllamaInstallerBringsCudaDriversWithoutNvidiaSmi(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y zstd && sudo apt-get install -y nvidia-headless-no-dkms-595-open linux-modules-nvidia-595-open-generic")
	r := vm.sh(c, "curl -fsSL https://ollama.com/install.sh | sh")
	if !strings.Contains(r.stderr, ">>> Installing NVIDIA repository...") {
		t.Errorf("install.sh without nvidia-smi did not go for NVIDIA's driver:\n%s", r.stderr)
	}
	if r.code == 0 || !strings.Contains(r.stderr, "Conflicts") {
		t.Errorf("cuda-drivers next to Ubuntu's driver should conflict: %d\n%s", r.code, r.stderr)
	}
}

func TestOllamaCPUFallbackWithoutAVX(t *testing.T) {
	vm := newVM(t, 0, func(b *pve.BootInfo) { b.CPU = "kvm64" }).ready()
	c := vm.client()
	if r := vm.sh(c, "grep -c avx /proc/cpuinfo"); r.stdout != "0\n" {
		t.Errorf("kvm64 shows AVX: %q", r.stdout)
	}
	vm.gpuReady(c)
	vm.must(c, "sudo apt-get install -y zstd && curl -fsSL https://ollama.com/install.sh | sh")
	r := vm.poll(c, "sudo journalctl -u ollama --no-pager | grep 'inference compute'")
	if !strings.Contains(r.stdout, "id=cpu library=cpu") {
		t.Errorf("expected CPU fallback: %q", r.stdout)
	}
}

func TestGuestAgent(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	a := vm.g.Agent()
	if a == nil || !a.Ready() {
		t.Fatal("agent not running after cloud-init installed qemu-guest-agent")
	}
	pub, err := a.FileRead("/etc/ssh/ssh_host_ed25519_key.pub")
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil || !bytes.Equal(k.Marshal(), vm.g.HostKeys()[0].Marshal()) {
		t.Errorf("agent host key file does not match sshd: %v", err)
	}
	pid, err := a.Exec([]string{"id", "-un"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st pve.ExecStatus
	for !st.Exited {
		st, _ = a.ExecStatus(pid)
	}
	if st.ExitCode != 0 || string(st.Stdout) != "root\n" {
		t.Errorf("exec: %+v", st)
	}
	ifs := a.Interfaces()
	if len(ifs) != 2 || ifs[1].Name != "eth0" || ifs[1].IPs[0].Addr != "192.168.0.140" || ifs[1].HardwareAddress != "bc:24:11:aa:bb:cc" {
		t.Errorf("interfaces: %+v", ifs)
	}

	noVendor := newVM(t, 0, func(b *pve.BootInfo) { b.CloudInit.VendorData = "" }).ready()
	if noVendor.g.Agent() != nil {
		t.Error("agent answers although the cloud image has no qemu-guest-agent")
	}
	noPort := newVM(t, 0, func(b *pve.BootInfo) { delete(b.Config, "agent") }).ready()
	if noPort.g.Agent() != nil {
		t.Error("agent answers without the virtio port (agent: 1 missing)")
	}
	faulted := newVM(t, 0, nil)
	faulted.f.InjectFault(Fault{Kind: FaultAgentNeverStarts})
	faulted.ready()
	if faulted.g.Agent() != nil {
		t.Error("agent-never-starts fault ignored")
	}
	faulted.f.ClearFaults(FaultAgentNeverStarts)
	if faulted.g.Agent() == nil {
		t.Error("agent still down after clearing the fault")
	}
}

func TestCloudInitStatusCodes(t *testing.T) {
	for _, tc := range []struct {
		fault, status string
		code          int
	}{{"", "status: done\n", 0}, {FaultCloudInitDegraded, "status: done\n", 2}, {FaultCloudInitCrash, "status: error\n", 1}} {
		vm := newVM(t, 0, nil)
		if tc.fault != "" {
			vm.f.InjectFault(Fault{Kind: tc.fault})
		}
		vm.ready()
		c := vm.client()
		r := vm.sh(c, "cloud-init status --wait")
		if r.code != tc.code || !strings.HasSuffix(r.stdout, tc.status) {
			t.Errorf("fault %q: %d %q", tc.fault, r.code, r.stdout)
		}
		if tc.fault == FaultCloudInitDegraded {
			if got := vm.sh(c, "cloud-init status --long").stdout; !strings.Contains(got, "extended_status: degraded done") {
				t.Errorf("--long: %q", got)
			}
		}
	}
}

func TestSSHDropFault(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.f.InjectFault(Fault{Kind: FaultSSHDrop, Pattern: "apt-get install"})
	err := runErr(c, "sudo apt-get update && sudo apt-get install -y jq")
	var missing *ssh.ExitMissingError
	if err == nil || (!errors.As(err, &missing) && !strings.Contains(err.Error(), "EOF")) {
		t.Fatalf("expected a dropped connection, got %v", err)
	}
	// the command ran before the drop: the package is there
	c2 := vm.client()
	if got := vm.sh(c2, "dpkg-query -W -f '${Status}' jq").stdout; got != "install ok installed" {
		t.Errorf("jq after drop: %q", got)
	}
	vm.must(c2, "sudo apt-get install -y jq") // fault consumed
}

func TestControlHandler(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	srv := httptest.NewServer(http.StripPrefix("", vm.f.ControlHandler()))
	defer srv.Close()
	post := func(body string) *http.Response {
		r, err := http.Post(srv.URL+"/_sim/guest/faults", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := post(`{"kind":"nope"}`); r.StatusCode != 400 {
		t.Errorf("unknown kind: %d", r.StatusCode)
	}
	r := post(`{"kind":"apt-404","pattern":"nvidia-utils-*","vmid":140}`)
	var ft Fault
	json.NewDecoder(r.Body).Decode(&ft)
	if r.StatusCode != 201 || ft.ID == 0 {
		t.Fatalf("inject: %d %+v", r.StatusCode, ft)
	}
	c := vm.client()
	vm.must(c, "sudo apt-get update")
	res := vm.sh(c, "sudo apt-get install -y nvidia-utils-595")
	if res.code != 100 || !strings.Contains(res.stderr, "404  Not Found") || !strings.Contains(res.stderr, "nvidia-graphics-drivers-595/nvidia-utils-595_595.84-0ubuntu0.24.04.1_amd64.deb") {
		t.Errorf("apt 404: %d %q", res.code, res.stderr)
	}
	req, _ := http.NewRequest("DELETE", srv.URL+"/_sim/guest/faults", nil)
	if r, _ := http.DefaultClient.Do(req); r.StatusCode != 200 {
		t.Errorf("clear: %d", r.StatusCode)
	}
	vm.must(c, "sudo apt-get install -y nvidia-utils-595")
	r, _ = http.Get(srv.URL + "/_sim/guest/stats")
	var st Stats
	json.NewDecoder(r.Body).Decode(&st)
	if st.Commands < 3 || st.Guests[140] == nil || st.Guests[140].Commands != st.Commands {
		t.Errorf("stats: %+v", st)
	}
	r, _ = http.Get(srv.URL + "/_sim/guest/guests")
	var gs []GuestInfo
	json.NewDecoder(r.Body).Decode(&gs)
	if len(gs) != 1 || gs[0].IP != "192.168.0.140" || gs[0].State != PowerRunning || !gs[0].AgentReady || gs[0].CloudInit != "done" {
		t.Errorf("guests: %+v", gs)
	}
}

func TestCudaToolkitFromNvidiaRepo(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.gpuReady(c)
	vm.must(c, "sudo apt-get install -y build-essential")
	if r := vm.sh(c, "sudo apt-get install -y cuda-toolkit-12-8"); r.code != 100 || !strings.Contains(r.stderr, "Unable to locate package cuda-toolkit-12-8") {
		t.Errorf("toolkit before the keyring: %d %q", r.code, r.stderr)
	}
	vm.must(c, "cd /tmp && wget -q https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/cuda-keyring_1.1-1_all.deb && sudo dpkg -i cuda-keyring_1.1-1_all.deb && sudo apt-get update && sudo apt-get -y install cuda-toolkit-12-8")
	if out := vm.must(c, "cd /tmp && sudo apt-get install -y ./cuda-keyring_1.1-1_all.deb"); !strings.Contains(out, "Note, selecting 'cuda-keyring' instead of './cuda-keyring_1.1-1_all.deb'") {
		t.Errorf("apt-get install ./file.deb: %q", out)
	}
	if got := vm.must(c, "/usr/local/cuda/bin/nvcc --version"); got != golden(t, "nvcc-12.8.txt") {
		t.Errorf("nvcc --version:\n%s", got)
	}
	if r := vm.sh(c, "nvcc --version"); r.code != 127 {
		t.Errorf("nvcc must not be on PATH: %d", r.code)
	}
	vm.must(c, `cat > /tmp/hello.cu <<'EOF'
#include <cstdio>
__global__ void k() {}
int main() { k<<<1,1>>>(); cudaDeviceSynchronize(); printf("hello from %s\n", "gpu"); return 0; }
EOF`)
	vm.must(c, "/usr/local/cuda/bin/nvcc -arch=sm_120 -o /tmp/hello /tmp/hello.cu")
	if got := vm.must(c, "/tmp/hello"); got != "hello from NVIDIA GeForce RTX 5060 Ti\n" {
		t.Errorf("cuda app: %q", got)
	}
	// the provisioning library's vector-add sample (verify.go)
	vm.must(c, `cat > /tmp/add.cu <<'EOF'
#include <cstdio>
int main() {
  const int n = 1 << 16;
  float *a, *b, *c;
  if (cudaMallocManaged(&a, n * sizeof(float)) != cudaSuccess) { printf("FAIL cudaMallocManaged\n"); return 1; }
  cudaError_t err = cudaDeviceSynchronize();
  if (err != cudaSuccess) { printf("FAIL %s\n", cudaGetErrorString(err)); return 1; }
  printf("PASS vector add of %d elements\n", n);
  return 0;
}
EOF`)
	vm.must(c, "/usr/local/cuda/bin/nvcc -o /tmp/add /tmp/add.cu")
	if got := vm.must(c, "/tmp/add"); got != "PASS vector add of 65536 elements\n" {
		t.Errorf("vector add: %q", got)
	}
	vm.must(c, "sudo rmmod nvidia")
	if r := vm.sh(c, "/tmp/add"); r.code != 1 || r.stdout != "FAIL cudaMallocManaged\n" {
		t.Errorf("cuda app without the driver: %+v", r)
	}
}

func TestOllamaInstallerInstallsNvidiaDriverStack(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y zstd")
	r := vm.sh(c, "curl -fsSL https://ollama.com/install.sh | sh")
	if r.code != 0 || !strings.Contains(r.stderr, ">>> Installing CUDA driver...") || !strings.Contains(r.stderr, ">>> NVIDIA GPU ready.") {
		t.Fatalf("install.sh on a GPU guest without driver: %d\n%s", r.code, r.stderr)
	}
	if got := vm.must(c, "dpkg-query -W -f='${Version}' cuda-drivers"); got != "580.173.02-1" {
		t.Errorf("cuda-drivers: %q", got)
	}
	if got := vm.must(c, "nvidia-smi --query-gpu=driver_version --format=csv,noheader"); got != "580.173.02\n" {
		t.Errorf("driver from NVIDIA's repo: %q", got)
	}
}
