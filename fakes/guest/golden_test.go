package guest

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/aimachine/aimachine/fakes/pve"
)

// -update rewrites only the goldens that are NOT copied from guest.md (testdata/README.md lists them).
var update = flag.Bool("update", false, "rewrite the generated (non-guest.md) goldens in testdata")

// generatedGoldens are the only files -update may write; every other golden is copied from guest.md.
var generatedGoldens = map[string]bool{"os-release.txt": true, "mokutil-sb-state-disabled.txt": true, "mokutil-sb-state-enabled.txt": true}

// Normalisations (documented in testdata/README.md): the same rewrite runs on the golden and on the output.
var (
	reKmsgTime    = regexp.MustCompile(`(?m)^\[ *[0-9]+\.[0-9]+\] `)
	reOllamaTime  = regexp.MustCompile(`time=\S+ `)
	reOllamaSrc   = regexp.MustCompile(`source=([a-z_]+\.go):\S+`)
	reGPUUUID     = regexp.MustCompile(`GPU-[0-9a-f]{8}-\S*`)
	reLastUpdate  = regexp.MustCompile(`(?m)^last_update: .*$`)
	reWaitDots    = regexp.MustCompile(`(?m)^\.*\n?status: `)
	reJournalHead = regexp.MustCompile(`(?m)^[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} \S+ [a-z-]+\[[0-9]+\]: `)
	reDigits      = regexp.MustCompile(`[0-9]+`)
	reMemGiB      = regexp.MustCompile(`(total|available)="[0-9.]+ GiB"`)
	reFailedProcs = regexp.MustCompile(`(?m) Failed core proc\(s\): .*$`)
)

func normalise(s string) string {
	s = reKmsgTime.ReplaceAllString(s, "[T] ")
	s = reOllamaTime.ReplaceAllString(s, "")
	s = reOllamaSrc.ReplaceAllString(s, "source=$1:…")
	s = reGPUUUID.ReplaceAllString(s, "GPU-<uuid>")
	s = reLastUpdate.ReplaceAllString(s, "last_update: <time>")
	return reWaitDots.ReplaceAllString(s, "status: ")
}

// vllmNorm also blanks numbers (guest.md §7.4/§7.7 say "numbers illustrative") and drops the
// " Failed core proc(s): {…}" suffix newer vLLM v1 builds append to guest.md's RuntimeError text.
func vllmNorm(s string) string {
	return reDigits.ReplaceAllString(reFailedProcs.ReplaceAllString(normalise(s), ""), "N")
}

// checkGolden compares got with testdata/name after norm.
func checkGolden(t *testing.T, name, got string, norm func(string) string) {
	t.Helper()
	if *update && generatedGoldens[name] {
		if err := os.WriteFile("testdata/"+name, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := golden(t, name)
	if norm(got) != norm(want) {
		t.Errorf("%s differs from the reference:\n--- got ---\n%s--- want ---\n%s", name, norm(got), norm(want))
	}
}

// grepLines keeps the lines matching re (a continuation line stays with the line before it).
func grepLines(s, re string) string {
	rx := regexp.MustCompile(re)
	var b strings.Builder
	keep := false
	for _, l := range strings.SplitAfter(s, "\n") {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, " ") {
			if keep {
				b.WriteString(l)
			}
			continue
		}
		keep = rx.MatchString(l)
		if keep {
			b.WriteString(l)
		}
	}
	return b.String()
}

// TestGoldenUbuntuDrivers: guest.md §2.1–§2.4.
func TestGoldenUbuntuDrivers(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y ubuntu-drivers-common")
	r := vm.sh(c, "ubuntu-drivers devices")
	if r.code != 0 {
		t.Errorf("devices exit %d", r.code)
	}
	checkGolden(t, "ubuntu-drivers-devices.txt", r.stdout, normalise)
	checkGolden(t, "ubuntu-drivers-aplay.stderr.txt", r.stderr, normalise)
	r = vm.sh(c, "ubuntu-drivers list --gpgpu")
	checkGolden(t, "ubuntu-drivers-list-gpgpu.txt", r.stdout, normalise)
	r = vm.sh(c, "ubuntu-drivers install --gpgpu nvidia:580-open")
	if r.code != 1 {
		t.Errorf("non-root install exit %d, want 1", r.code)
	}
	checkGolden(t, "ubuntu-drivers-install-nonroot.stderr.txt", grepLines(r.stderr, `^Error:`), normalise)
	for _, tc := range []struct{ cmd, golden string }{
		{"sudo ubuntu-drivers install --gpgpu nvidia:999-open", "ubuntu-drivers-install-nomatch.txt"},
		{"sudo ubuntu-drivers install --gpgpu nvidia:580-open >/dev/null && sudo ubuntu-drivers install --gpgpu nvidia:580-open", "ubuntu-drivers-install-again.txt"},
	} {
		r := vm.sh(c, tc.cmd)
		if r.code != 0 {
			t.Errorf("%s: exit %d, want 0 (ubuntu-drivers install always exits 0 as root)", tc.cmd, r.code)
		}
		checkGolden(t, tc.golden, r.stdout, normalise)
	}

	// §2.4 step 4: no prebuilt modules for the running ABI, no --include-dkms.
	np := newVM(t, 0, nil)
	np.f.InjectFault(Fault{Kind: FaultNoPrebuiltModules})
	np.ready()
	c = np.client()
	np.must(c, "sudo apt-get update && sudo apt-get install -y ubuntu-drivers-common")
	r = np.sh(c, "sudo ubuntu-drivers install --gpgpu nvidia:580-open")
	if r.code != 0 {
		t.Errorf("no-prebuilt install exit %d", r.code)
	}
	checkGolden(t, "ubuntu-drivers-install-noprebuilt.txt", r.stdout, normalise)
}

// TestGoldenDriverFailuresAndKernelLog: guest.md §3.4 (exit 6, 9, 18), §4.1 and §4.2.
func TestGoldenDriverFailuresAndKernelLog(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y nvidia-headless-no-dkms-580-open linux-modules-nvidia-580-open-generic nvidia-utils-580")
	r := vm.sh(c, "nvidia-smi")
	if r.code != 9 {
		t.Errorf("nvidia-smi before modprobe: exit %d, want 9", r.code)
	}
	checkGolden(t, "nvidia-smi-failed.txt", r.stdout, normalise)
	vm.must(c, "sudo modprobe nvidia && sudo modprobe nvidia_uvm")
	dmesg := vm.must(c, "sudo dmesg")
	checkGolden(t, "dmesg-clean-open-headless.txt", grepLines(dmesg, `nvidia|NVRM`), normalise)
	if ts := reKmsgTime.FindAllString(dmesg, -1); !sortedStamps(ts) {
		t.Errorf("dmesg timestamps not monotonic:\n%s", dmesg)
	}
	journal := vm.must(c, "sudo journalctl -k --no-pager")
	k := reJournalHead.ReplaceAllString(regexp.MustCompile(`(?m)^[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} \S+ kernel: `).ReplaceAllString(journal, "[T] "), "")
	checkGolden(t, "dmesg-clean-open-headless.txt", grepLines(k, `nvidia|NVRM`), normalise)
	vm.must(c, "sudo apt-get install -y nvidia-headless-no-dkms-595-open linux-modules-nvidia-595-open-generic nvidia-utils-595")
	r = vm.sh(c, "nvidia-smi")
	if r.code != 18 {
		t.Errorf("nvidia-smi after branch switch: exit %d, want 18", r.code)
	}
	checkGolden(t, "nvidia-smi-mismatch.txt", r.stdout, normalise)

	// proprietary flavour on Blackwell: §4.2 lines, nvidia-smi exit 6
	cl := newVM(t, 0, nil).ready()
	c = cl.client()
	cl.must(c, "sudo apt-get update && sudo apt-get install -y nvidia-headless-no-dkms-580 linux-modules-nvidia-580-generic nvidia-utils-580")
	r = cl.sh(c, "sudo modprobe nvidia; nvidia-smi")
	if r.code != 6 {
		t.Errorf("closed module on Blackwell: nvidia-smi exit %d, want 6", r.code)
	}
	checkGolden(t, "nvidia-smi-nodevices.txt", r.stdout, normalise)
	errs := grepLines(cl.must(c, "sudo dmesg"), `NVRM: (The NVIDIA GPU|GPU 0000)`)
	if first := strings.SplitAfterN(errs, "\n", 5); len(first) < 5 {
		t.Errorf("§4.2 lines missing:\n%s", errs)
	} else {
		checkGolden(t, "dmesg-proprietary-on-blackwell.txt", strings.Join(first[:4], ""), normalise)
	}
}

func sortedStamps(ts []string) bool {
	prev := ""
	for _, s := range ts {
		v := strings.TrimSpace(strings.Trim(strings.TrimSpace(s), "[]"))
		v = strings.Repeat(" ", 20-len(v)) + v
		if v < prev {
			return false
		}
		prev = v
	}
	return true
}

// TestGoldenCloudInitAndImage: guest.md §9 (done / degraded / error), §7.1, plus the generated
// goldens /etc/os-release and mokutil --sb-state (not in guest.md).
func TestGoldenCloudInitAndImage(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	r := vm.sh(c, "cloud-init status --wait")
	if r.code != 0 {
		t.Errorf("status --wait exit %d", r.code)
	}
	checkGolden(t, "cloud-init-status-wait-done.txt", r.stdout, normalise)
	checkGolden(t, "cloud-init-status-long-done.txt", vm.must(c, "cloud-init status --long"), normalise)
	r = vm.sh(c, "python3 -m venv /tmp/v")
	if r.code != 1 {
		t.Errorf("venv without python3.12-venv: exit %d, want 1", r.code)
	}
	checkGolden(t, "python3-venv-no-ensurepip.txt", r.stdout+r.stderr, normalise)
	// guest.md quotes the message unwrapped, with elisions.
	if flat := strings.Join(strings.Fields(r.stdout+r.stderr), " "); !strings.Contains(flat, "The virtual environment was not created successfully because ensurepip is not available. On Debian/Ubuntu systems, you need to install the python3-venv package using the following command.") || !strings.Contains(flat, "apt install python3.12-venv") {
		t.Errorf("venv message: %q", flat)
	}
	checkGolden(t, "os-release.txt", vm.must(c, "cat /etc/os-release"), normalise)
	checkGolden(t, "mokutil-sb-state-disabled.txt", vm.must(c, "mokutil --sb-state"), normalise)

	for _, tc := range []struct {
		fault, wait, long string
		code              int
	}{
		{FaultCloudInitDegraded, "cloud-init-status-wait-done.txt", "cloud-init-status-long-degraded.head.txt", 2},
		{FaultCloudInitCrash, "cloud-init-status-wait-error.txt", "cloud-init-status-long-error.head.txt", 1},
	} {
		vm := newVM(t, 0, nil)
		vm.f.InjectFault(Fault{Kind: tc.fault})
		vm.ready()
		c := vm.client()
		r := vm.sh(c, "cloud-init status --wait")
		if r.code != tc.code {
			t.Errorf("%s: status --wait exit %d, want %d", tc.fault, r.code, tc.code)
		}
		checkGolden(t, tc.wait, r.stdout, normalise)
		long := strings.SplitAfterN(vm.sh(c, "cloud-init status --long").stdout, "\n", 3)
		checkGolden(t, tc.long, strings.Join(long[:min(2, len(long))], ""), normalise)
	}

	sb := newVM(t, 0, nil)
	sb.f.InjectFault(Fault{Kind: FaultSecureBoot})
	sb.ready()
	checkGolden(t, "mokutil-sb-state-enabled.txt", sb.must(sb.client(), "mokutil --sb-state"), normalise)
}

// TestGoldenOllama: guest.md §8.1, §8.3, §8.4.
func TestGoldenOllama(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y zstd nvidia-headless-no-dkms-580-open linux-modules-nvidia-580-open-generic nvidia-utils-580 && sudo modprobe nvidia && sudo modprobe nvidia_uvm")
	vm.must(c, "sudo mkdir -p /etc/systemd/system/ollama.service.d /opt/ollama/models && printf '[Service]\\nEnvironment=\"OLLAMA_HOST=0.0.0.0:11434\"\\nEnvironment=\"OLLAMA_MODELS=/opt/ollama/models\"\\n' | sudo tee /etc/systemd/system/ollama.service.d/override.conf >/dev/null")
	r := vm.sh(c, "curl -fsSL https://ollama.com/install.sh | sh")
	if r.code != 0 {
		t.Fatalf("install.sh exit %d\n%s", r.code, r.stderr)
	}
	checkGolden(t, "ollama-install-nvidia.stderr.txt", r.stderr, normalise)
	vm.must(c, "sudo chown -R ollama:ollama /opt/ollama && sudo systemctl restart ollama")
	vm.poll(c, "curl -sf http://127.0.0.1:11434/api/version")
	checkGolden(t, "ollama-version.txt", vm.must(c, "ollama --version"), normalise)
	vm.poll(c, "sudo journalctl -u ollama --no-pager | grep -q 'inference compute'")
	log := reJournalHead.ReplaceAllString(vm.must(c, "sudo journalctl -u ollama --no-pager -n 4"), "")
	checkGolden(t, "ollama-log-startup-gpu.txt", grepLines(log, `msg="(Listening on|discovering available GPUs|inference compute)`), normalise)
	vm.must(c, "sudo systemctl stop ollama")
	checkGolden(t, "ollama-version-server-down.txt", vm.must(c, "ollama --version"), normalise)
	r = vm.sh(c, "ollama list")
	if r.code != 1 {
		t.Errorf("ollama list with server down: exit %d", r.code)
	}
	checkGolden(t, "ollama-cli-server-down.stderr.txt", r.stderr, normalise)

	// no GPU passed through: installer warning and the CPU "inference compute" line (§8.1 step 4, §8.4);
	// total/available depend on the VM's RAM and are blanked.
	cpu := newVM(t, 0, func(b *pve.BootInfo) { b.GPUs = nil }).ready()
	c = cpu.client()
	r = cpu.sh(c, "sudo apt-get update >/dev/null && sudo apt-get install -y zstd >/dev/null && curl -fsSL https://ollama.com/install.sh | sh")
	if r.code != 0 {
		t.Fatalf("install.sh without GPU: exit %d\n%s", r.code, r.stderr)
	}
	checkGolden(t, "ollama-install-nogpu-warning.txt", grepLines(r.stderr, `^WARNING:`), normalise)
	cpu.poll(c, "sudo journalctl -u ollama --no-pager | grep -q 'inference compute'")
	log = reJournalHead.ReplaceAllString(cpu.must(c, "sudo journalctl -u ollama --no-pager"), "")
	checkGolden(t, "ollama-log-startup-cpu.txt", grepLines(log, `msg="inference compute"`), func(s string) string {
		return reMemGiB.ReplaceAllString(normalise(s), `$1="N GiB"`)
	})
}

// TestGoldenVLLM: guest.md §7.4 (API server lines) and §7.7 (memory errors); numbers are blanked.
func TestGoldenVLLM(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.gpuReady(c)
	vm.must(c, "sudo apt-get install -y python3.12-venv python3.12-dev build-essential && python3 -m venv ~/venv && ~/venv/bin/pip install vllm")
	r := vm.sh(c, "~/venv/bin/vllm serve Qwen/Qwen2.5-7B-Instruct --max-model-len 8192")
	if r.code != 1 {
		t.Errorf("7B bf16: exit %d", r.code)
	}
	oom := grepLines(r.stdout+r.stderr, `^(torch\.OutOfMemoryError|RuntimeError: Engine core)`)
	oom = regexp.MustCompile(`Tried to allocate .*`).ReplaceAllString(oom, "Tried to allocate …")
	checkGolden(t, "vllm-weights-oom.txt", oom, vllmNorm)
	r = vm.sh(c, "~/venv/bin/vllm serve Qwen/Qwen2.5-3B-Instruct --gpu-memory-utilization 0.5")
	checkGolden(t, "vllm-kv-cache-too-small.txt", grepLines(r.stdout+r.stderr, `^(ValueError|RuntimeError: Engine core)`), vllmNorm)

	vm.must(c, "sudo useradd --system --create-home --home-dir /opt/vllm --shell /usr/sbin/nologin vllm")
	vm.must(c, "sudo python3 -m venv /opt/vllm/venv && sudo /opt/vllm/venv/bin/pip install vllm && sudo chown -R vllm:vllm /opt/vllm")
	vm.must(c, "sudo tee /etc/systemd/system/vllm.service >/dev/null <<'EOF'\n"+vllmUnit+"EOF")
	vm.must(c, "sudo systemctl daemon-reload && sudo systemctl start vllm")
	if r := vm.poll(c, "curl -sf http://127.0.0.1:8000/health"); r.code != 0 {
		t.Fatalf("vLLM never healthy")
	}
	j := reJournalHead.ReplaceAllString(vm.must(c, "sudo journalctl -u vllm --no-pager"), "")
	checkGolden(t, "vllm-log-api-server.txt", grepLines(j, `Starting vLLM API server|Route: /health,|^INFO: `), vllmNorm)
	// the service holds most of the VRAM: a second engine cannot reserve its share
	r = vm.sh(c, "~/venv/bin/vllm serve Qwen/Qwen2.5-3B-Instruct --max-model-len 4096")
	if r.code != 1 {
		t.Errorf("second engine: exit %d", r.code)
	}
	checkGolden(t, "vllm-free-memory.txt", grepLines(r.stdout+r.stderr, `^(ValueError|RuntimeError: Engine core)`), vllmNorm)
}
