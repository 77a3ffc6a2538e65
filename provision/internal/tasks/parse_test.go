package tasks

import (
	"errors"
	"strings"
	"testing"
)

// Samples from shared/reference/guest.md.
const listJammy = `nvidia-driver-535-server-open, (kernel modules provided by linux-modules-nvidia-535-server-open-generic-hwe-22.04)
nvidia-driver-535-open, (kernel modules provided by linux-modules-nvidia-535-open-generic-hwe-22.04)
nvidia-driver-535-server, (kernel modules provided by linux-modules-nvidia-535-server-generic-hwe-22.04)
nvidia-driver-535, (kernel modules provided by linux-modules-nvidia-535-generic-hwe-22.04)
`

const listNoble = `ERROR:root:aplay command not found
nvidia-driver-580, (kernel modules provided by linux-modules-nvidia-580-generic)
nvidia-driver-595-open, (kernel modules provided by linux-modules-nvidia-595-open-generic)
nvidia-driver-580-server-open, (kernel modules provided by linux-modules-nvidia-580-server-open-generic)
nvidia-driver-595-server-open, (kernel modules provided by linux-modules-nvidia-595-server-open-generic)
nvidia-driver-610, (kernel modules provided by linux-modules-nvidia-610-generic)
nvidia-driver-open, (kernel modules provided by nvidia-dkms-open)
`

func TestChooseDriver(t *testing.T) {
	cases := []struct {
		name, list string
		needsOpen  bool
		want       string
		wantErr    string
	}{
		{"jammy sample: server-open first on a tie", listJammy, true, "nvidia-driver-535-server-open", ""},
		// 610 is newer but proprietary: the newest -open wins, whatever the order.
		{"newest -open wins over a newer closed branch", listNoble, true, "nvidia-driver-595-server-open", ""},
		{"recommended closed driver is not trusted", "nvidia-driver-570 linux-modules-nvidia-570-generic\n", true, "", "only proprietary"},
		{"proprietary only on Blackwell refused", "nvidia-driver-580, (kernel modules provided by linux-modules-nvidia-580-generic)\nnvidia-driver-580-server, (kernel modules provided by linux-modules-nvidia-580-server-generic)\n", true, "", "Blackwell GPU works only with the NVIDIA open kernel module"},
		{"proprietary allowed elsewhere", "nvidia-driver-580, (kernel modules provided by linux-modules-nvidia-580-generic)\n", false, "nvidia-driver-580", ""},
		{"prebuilt before DKMS", "nvidia-driver-545-open, (kernel modules provided by nvidia-dkms-545-open)\nnvidia-driver-545-server-open, (kernel modules provided by linux-modules-nvidia-545-server-open-generic)\n", true, "nvidia-driver-545-server-open", ""},
		{"nothing offered", "ERROR:root:aplay command not found\n", true, "", "offers no NVIDIA driver"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ChooseDriver(ParseDriverList(c.list), c.needsOpen, "Blackwell")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("want error %q, got %v (%v)", c.wantErr, err, got)
				}
				return
			}
			if err != nil || got.Package != c.want {
				t.Fatalf("got %v %v, want %s", got.Package, err, c.want)
			}
		})
	}
	var po *ErrProprietaryOnly
	_, err := ChooseDriver(ParseDriverList("nvidia-driver-580, (kernel modules provided by linux-modules-nvidia-580-generic)"), true, "Blackwell")
	if !errors.As(err, &po) {
		t.Fatalf("want *ErrProprietaryOnly, got %T", err)
	}
}

func TestDriverCandidatePackages(t *testing.T) {
	c := ParseDriverList(listNoble)
	got, _ := ChooseDriver(c, true, "Blackwell")
	if got.Flavour() != "595-server-open" || got.UtilsPackage() != "nvidia-utils-595-server" || got.HeadlessPackage() != "nvidia-headless-no-dkms-595-server-open" || got.Modules != "linux-modules-nvidia-595-server-open-generic" || got.DKMS() {
		t.Fatalf("%+v %s %s %s", got, got.Flavour(), got.UtilsPackage(), got.HeadlessPackage())
	}
	for _, x := range c {
		if x.Package == "nvidia-driver-open" {
			t.Fatal("branch-less third-party package must be skipped")
		}
	}
}

func TestArch(t *testing.T) {
	for id, want := range map[string]string{"10de:2d04": "Blackwell", "10DE:2D05": "Blackwell", "10de:2b85": "Blackwell", "10de:2bff": "Blackwell", "10de:2684": "Ada", "10de:1eb8": "", "8086:1234": ""} {
		if got := Arch(id); got != want {
			t.Errorf("Arch(%s) = %q, want %q", id, got, want)
		}
	}
	if MinCUDA("Blackwell") != "12.8" || MinCUDA("Ada") != "12.6" {
		t.Fatal("min CUDA")
	}
}

func TestParseSMICSV(t *testing.T) {
	gs, err := ParseSMICSV("NVIDIA GeForce RTX 5060 Ti, 16311, 580.173.02, 00000000:01:00.0, 0x2D0410DE\n")
	if err != nil {
		t.Fatal(err)
	}
	g := gs[0]
	if g.Name != "NVIDIA GeForce RTX 5060 Ti" || g.MemoryMiB != 16311 || g.Driver != "580.173.02" || g.BusID != "0000:01:00.0" || g.DeviceID != "10de:2d04" {
		t.Fatalf("%+v", g)
	}
	gs, err = ParseSMICSV("name, memory.total [MiB], driver_version, pci.bus_id\nNVIDIA GeForce RTX 5060 Ti, 16311 MiB, 580.173.02, 00000000:01:00.0\n")
	if err != nil || gs[0].MemoryMiB != 16311 {
		t.Fatalf("with units: %+v %v", gs, err)
	}
	if _, err := ParseSMICSV("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n"); err == nil {
		t.Fatal("failure text parsed as a GPU")
	}
	if _, err := ParseSMICSV("No devices were found\n"); err == nil {
		t.Fatal("no devices parsed as a GPU")
	}
}

func TestNormalizeBusID(t *testing.T) {
	for _, in := range []string{"01:00.0", "0000:01:00.0", "00000000:01:00.0", "PCI:0000:01:00"} {
		if got := NormalizeBusID(in); got != "0000:01:00.0" {
			t.Errorf("%s -> %s", in, got)
		}
	}
}

func TestParseSMIHeader(t *testing.T) {
	old := "| NVIDIA-SMI 580.173.02             Driver Version: 580.173.02     CUDA Version: 13.0     |"
	neu := "| NVIDIA-SMI 610.43.02              KMD Version: 610.43.02     CUDA UMD Version: 13.3     |"
	if d, c := ParseSMIHeader(old); d != "580.173.02" || c != "13.0" {
		t.Fatalf("old header: %s %s", d, c)
	}
	if d, c := ParseSMIHeader(neu); d != "610.43.02" || c != "13.3" {
		t.Fatalf("610 header: %s %s", d, c)
	}
}

func TestVersionCompare(t *testing.T) {
	v := func(s string) Version { x, _ := ParseVersion(s); return x }
	if v("12.8").Compare(v("12.6")) != 1 || v("12.6").Compare(v("12.6.0")) != 0 || v("580.65.06").Compare(v("580.173.02")) != -1 || v("13.0").Compare(v("12.9")) != 1 {
		t.Fatal("compare")
	}
	if !v("13.2").AtLeast("12.8") || v("12.0").AtLeast("12.6") {
		t.Fatal("AtLeast")
	}
	nvcc := "nvcc: NVIDIA (R) Cuda compiler driver\nCopyright (c) 2005-2025 NVIDIA Corporation\nBuilt on Fri_Feb_21_20:23:50_PST_2025\nCuda compilation tools, release 12.8, V12.8.93\nBuild cuda_12.8.r12.8/compiler.35583870_0\n"
	got, ok := ParseNvcc(nvcc)
	if !ok || got.String() != "12.8" {
		t.Fatalf("nvcc %v", got)
	}
	if got, _ := ParseNvcc("Cuda compilation tools, release 12.0, V12.0.140"); got.AtLeast("12.6") {
		t.Fatal("Ubuntu's 12.0 must not pass")
	}
}

func TestParseModuleVersion(t *testing.T) {
	open := "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.173.02  Release Build  (dvs-builder@U22-I3-AF03-09-1)  Wed Jul 29 00:52:31 UTC 2026\nGCC version:  gcc version 13.3.0\n"
	m, ok := ParseModuleVersion(open)
	if !ok || !m.Open || m.Version != "580.173.02" {
		t.Fatalf("%+v", m)
	}
	m, ok = ParseModuleVersion("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.173.02  Wed Jul 29 00:52:31 UTC 2026\n")
	if !ok || m.Open || m.Version != "580.173.02" {
		t.Fatalf("proprietary %+v", m)
	}
	if _, ok := ParseModuleVersion("cat: /proc/driver/nvidia/version: No such file or directory"); ok {
		t.Fatal("missing file parsed")
	}
}

func TestDmesgErrors(t *testing.T) {
	clean := `[    4.901311] nvidia: loading out-of-tree module taints kernel.
[    4.935402] nvidia-nvlink: Nvlink Core is being initialized, major device number 236
[    4.985530] NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  580.173.02  Release Build  (dvs-builder@U22-I3-AF03-09-1)  Wed Jul 29 00:52:31 UTC 2026
[    4.990000] nvidia: module verification failed: signature and/or required key missing - tainting kernel
[    5.000000] NVRM: GPU 0000:01:00.0: GPU serial number is 0.
[    6.114990] nvidia-uvm: Loaded the UVM driver, major device number 234.
`
	if e := DmesgErrors(clean); len(e) != 0 {
		t.Fatalf("taint/info lines reported as errors: %v", e)
	}
	bad := clean + `[    5.1] NVRM: The NVIDIA GPU 0000:01:00.0 (PCI ID: 10de:2d04)
               NVRM: installed in this system requires use of the NVIDIA open kernel modules.
[    5.2] NVRM: GPU 0000:01:00.0: RmInitAdapter failed! (0x22:0x56:884)
[    9.0] NVRM: Xid (PCI:0000:01:00): 79, pid=123, name=python3, GPU has fallen off the bus.
[    9.1] NVRM: Xid (PCI:0000:01:00): 13, pid=123, name=python3, Graphics Exception
`
	e := DmesgErrors(bad)
	if len(e) != 4 {
		t.Fatalf("want 4 error lines (Xid 13 is app-level), got %d: %v", len(e), e)
	}
}

func TestCloudInitStatus(t *testing.T) {
	for in, want := range map[string]string{
		".......status: done":                            "done",
		"...........\nstatus: done\n":                    "done",
		"status: running\n":                              "running",
		"status: done\nextended_status: degraded done\n": "done",
		"status: error\n":                                "error",
		"status: not started\n":                          "not started",
	} {
		if got := CloudInitStatus(in); got != want {
			t.Errorf("%q -> %q want %q", in, got, want)
		}
	}
}

func TestParseLspci(t *testing.T) {
	out := `01:00.0 VGA compatible controller [0300]: NVIDIA Corporation Device [10de:2d04] (rev a1)
01:00.1 Audio device [0403]: NVIDIA Corporation Device [10de:22eb] (rev a1)
`
	ds := ParseLspci(out)
	if len(ds) != 2 || ds[0].ID != "10de:2d04" || ds[0].Slot != "01:00.0" || ds[1].ID != "10de:22eb" {
		t.Fatalf("%+v", ds)
	}
	named := "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation GB206 [GeForce RTX 5060 Ti] [10de:2d04] (rev a1)\n"
	if ds := ParseLspci(named); len(ds) != 1 || ds[0].ID != "10de:2d04" {
		t.Fatalf("named %+v", ds)
	}
}

func TestOllamaParsers(t *testing.T) {
	gpu := `time=2026-11-23T09:00:00Z level=INFO source=types.go:42 msg="inference compute" id=GPU-1d6d4cde filter_id="" library=CUDA compute=12.0 name=CUDA0 description="NVIDIA GeForce RTX 5060 Ti" libdirs=ollama,cuda_v13 driver=13.0 pci_id=0000:01:00.0 type=discrete total="15.9 GiB" available="15.4 GiB"`
	cpu := `time=… level=INFO source=types.go:… msg="inference compute" id=cpu library=cpu compute="" name=cpu description=cpu libdirs=ollama driver="" pci_id="" type="" total="31.3 GiB" available="30.4 GiB"`
	old := `level=INFO source=types.go:1 msg="inference compute" library=cuda variant=v12 compute=12.0 driver=12.8 name="NVIDIA GeForce RTX 5060 Ti"`
	if c := ParseOllamaCompute(gpu); !c.OnGPU() {
		t.Fatalf("gpu %+v", c)
	}
	if c := ParseOllamaCompute(cpu); c.OnGPU() || !c.Found {
		t.Fatalf("cpu %+v", c)
	}
	if c := ParseOllamaCompute(cpu + "\n" + old); !c.OnGPU() {
		t.Fatal("the last line counts")
	}
	if c := ParseOllamaCompute(gpu + "\n" + cpu); c.OnGPU() {
		t.Fatal("a restart onto the CPU must count")
	}
	if OllamaVersion("ollama version is 0.33.2") != "0.33.2" || OllamaVersion("Warning: could not connect to a running Ollama instance\nWarning: client version is 0.33.2") != "0.33.2" {
		t.Fatal("ollama version")
	}
}

func TestParseFacts(t *testing.T) {
	out := "::aimachine-fact a\nline1\nline2\n::aimachine-end a rc=0\n::aimachine-fact b\n::aimachine-end b rc=127\n"
	f := ParseFacts(out)
	if f["a"].Out != "line1\nline2\n" || f["a"].RC != 0 || f["b"].Out != "" || f["b"].RC != 127 {
		t.Fatalf("%+v", f)
	}
}

func TestVLLMProbeParsing(t *testing.T) {
	body := `{"object":"list","data":[{"id":"Qwen/Qwen2.5-7B-Instruct","object":"model","created":1788735762,"owned_by":"vllm"}]}`
	out := "health 192.168.0.140:8000 200\nhealth 127.0.0.1:8000 200\n::models\n" + body + "\n::show\nActiveState=active\nNRestarts=0\n"
	s := parseVLLMProbe(out, "Qwen/Qwen2.5-7B-Instruct")
	if !s.Ready() {
		t.Fatalf("%+v", s)
	}
	if parseVLLMProbe(strings.Replace(out, "127.0.0.1:8000 200", "127.0.0.1:8000 000", 1), "Qwen/Qwen2.5-7B-Instruct").Ready() {
		t.Fatal("refused loopback counted as ready")
	}
	if parseVLLMProbe(out, "Qwen/Qwen2.5-3B-Instruct").Ready() {
		t.Fatal("another model counted")
	}
	if parseVLLMProbe(strings.Replace(out, body, `{"error":"Unauthorized"}`, 1), "Qwen/Qwen2.5-7B-Instruct").Ready() {
		t.Fatal("401 counted")
	}
}

func TestVLLMHints(t *testing.T) {
	j := "ValueError: Free memory on device cuda:0 (3.25/15.48 GiB) on startup is less than desired GPU memory utilization (0.9, 13.93 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.\nRuntimeError: Engine core initialization failed. See root cause above."
	if h := vllmHint(j); !strings.Contains(h, "gpu_memory_utilization") {
		t.Fatal(h)
	}
	if h := vllmHint("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"); !strings.Contains(h, "does not fit") {
		t.Fatal(h)
	}
}

func TestParseSMIProcesses(t *testing.T) {
	table := `|=========================================================================================|
|    0   N/A  N/A            2113      C   …/venv/bin/python3                   14512MiB |
+-----------------------------------------------------------------------------------------+`
	ps := ParseSMIProcesses(table)
	if len(ps) != 1 || ps[0].PID != "2113" || ps[0].Type != "C" || ps[0].MemoryMiB != 14512 || !strings.HasSuffix(ps[0].Name, "python3") {
		t.Fatalf("%+v", ps)
	}
	if ps := ParseSMIProcesses("|  No running processes found                                                             |"); len(ps) != 0 {
		t.Fatalf("%+v", ps)
	}
}
