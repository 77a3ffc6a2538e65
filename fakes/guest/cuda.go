package guest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// CUDA toolkit: nvcc --version (real formats, §6), nvcc compiling a .cu into a simulated binary
// that runs only when the GPU and driver work; gcc for the toolchain checks.

var nvccBuilds = map[string][3]string{
	"12.0": {"Fri_Jan__6_16:45:21_PST_2023", "V12.0.140", "cuda_12.0.r12.0/compiler.32267302_0"},
	"12.8": {"Fri_Feb_21_20:23:50_PST_2025", "V12.8.93", "cuda_12.8.r12.8/compiler.35583870_0"},
	"12.9": {"Tue_May_27_02:21:03_PDT_2025", "V12.9.86", "cuda_12.9.r12.9/compiler.36037853_0"},
	"13.0": {"Wed_Aug_20_01:58:59_PM_PDT_2025", "V13.0.88", "cuda_13.0.r13.0/compiler.36424714_0"},
}

func init() {
	programs["nvcc"] = progNvcc
	programs["gcc"] = progGcc
	programs["cuda-app"] = progCudaApp
}

// nvccVersion derives the toolkit version from where nvcc lives (/usr/local/cuda-12.8/bin/nvcc).
func (g *Guest) nvccVersion(exe string) string {
	real, _ := g.fs.resolve(exe, true)
	if m := regexp.MustCompile(`/usr/local/cuda-(\d+\.\d+)/`).FindStringSubmatch(real); m != nil {
		return m[1]
	}
	return "12.0"
}

func progNvcc(p *proc) int {
	ver := p.g.nvccVersion(p.path)
	b := nvccBuilds[ver]
	args := p.args[1:]
	if len(args) == 0 {
		p.errorf("nvcc fatal   : No input files specified; use option --help for more information\n")
		return 1
	}
	if args[0] == "--version" || args[0] == "-V" {
		year := "2025"
		if ver == "12.0" {
			year = "2022"
		}
		p.printf("nvcc: NVIDIA (R) Cuda compiler driver\nCopyright (c) 2005-%s NVIDIA Corporation\nBuilt on %s\nCuda compilation tools, release %s, %s\nBuild %s\n", year, b[0], ver, b[1], b[2])
		return 0
	}
	out := "a.out"
	var src, arch string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" && i+1 < len(args):
			out = args[i+1]
			i++
		case strings.HasPrefix(a, "-arch="):
			arch = strings.TrimPrefix(a, "-arch=")
		case a == "-arch" && i+1 < len(args):
			arch = args[i+1]
			i++
		case strings.HasPrefix(a, "--gpu-architecture="):
			arch = strings.TrimPrefix(a, "--gpu-architecture=")
		case strings.HasSuffix(a, ".cu"):
			src = a
		}
	}
	if src == "" {
		p.errorf("nvcc fatal   : No input files specified; use option --help for more information\n")
		return 1
	}
	code, err := p.readFile(src)
	if err != nil {
		p.errorf("cc1plus: fatal error: %s: No such file or directory\ncompilation terminated.\n", src)
		return 1
	}
	if !p.g.fs.exists("/usr/bin/gcc") && !p.g.fs.exists("/usr/bin/cc") {
		p.errorf("sh: 1: cc: not found\nnvcc fatal   : Failed to preprocess host compiler properties.\n")
		return 1
	}
	if cc := p.g.nvccTarget(arch); cc != "" && !nvccSupports(ver, cc) {
		p.errorf("nvcc fatal   : Unsupported gpu architecture 'compute_%s'\n", cc)
		return 1
	}
	var prints []string
	for _, m := range regexp.MustCompile(`printf\s*\(\s*"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(string(code), -1) {
		prints = append(prints, m[1])
	}
	content := string(simBinary("cuda-app")) + "arch=" + arch + "\n"
	if m := regexp.MustCompile(`int\s+n\s*=\s*([^;]+);`).FindStringSubmatch(string(code)); m != nil {
		content += "n=" + evalIntExpr(m[1]) + "\n"
	}
	for _, pr := range prints {
		content += "printf=" + pr + "\n"
	}
	if err := p.writeFile(out, []byte(content), 0o755); err != nil {
		p.errorf("nvcc fatal   : Could not open output file '%s'\n", out)
		return 1
	}
	chmodGuest(p.g.fs, p.abs(out), 0o755)
	return 0
}

// nvccTarget is the compute capability (without the dot, "120") an -arch value asks for; "native"
// is the passed-through GPU's (nvgpu table). "" when there is nothing to check.
func (g *Guest) nvccTarget(arch string) string {
	if arch == "native" {
		if gpu := g.sys.nvidiaGPU(); gpu != nil {
			return strings.ReplaceAll(gpu.computeCap(), ".", "")
		}
		return ""
	}
	for _, p := range []string{"sm_", "compute_"} {
		if strings.HasPrefix(arch, p) {
			return strings.TrimRight(strings.TrimPrefix(arch, p), "af")
		}
	}
	return ""
}

// nvccSupports: CUDA 12.8 is the first toolkit for Blackwell (sm_100/sm_120; guest.md §1, §6);
// CUDA 13.0 removed offline compilation for Maxwell, Pascal and Volta (below sm_75; CUDA 13.0
// release notes).
func nvccSupports(ver, cc string) bool {
	n, err := strconv.Atoi(cc)
	if err != nil {
		return true
	}
	switch {
	case n >= 100 && versionLess(ver, "12.8"):
		return false
	case n < 75 && !versionLess(ver, "13.0"):
		return false
	}
	return true
}

// torchSupports: whether a torch wheel built for CUDA flavour cu ("cu124", "cu130") has kernels for
// compute capability cc ("8.9").
func torchSupports(cu, cc string) bool {
	v := strings.TrimPrefix(cu, "cu")
	if len(v) < 3 || cc == "" {
		return true
	}
	return nvccSupports(v[:2]+"."+v[2:], strings.ReplaceAll(cc, ".", ""))
}

// progCudaApp runs a binary built by nvcc: with a working GPU it prints the program's success
// printf lines (those not starting with FAIL/Error), otherwise its first failure line, exit 1.
func progCudaApp(p *proc) int {
	b, _ := p.g.fs.readFile(p.path)
	ok, reason := p.g.sys.cudaInit()
	gpu := p.g.sys.nvidiaGPU()
	name := "GPU"
	if gpu != nil {
		name = gpu.model
	}
	n := "1024"
	var prints []string
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "printf="):
			prints = append(prints, strings.TrimPrefix(l, "printf="))
		case strings.HasPrefix(l, "n="):
			n = strings.TrimPrefix(l, "n=")
		}
	}
	isFail := func(f string) bool {
		lf := strings.ToLower(f)
		return strings.HasPrefix(lf, "fail") || strings.HasPrefix(lf, "error") || strings.Contains(lf, "cuda error")
	}
	render := func(f, errText string) string {
		return strings.NewReplacer(`\n`, "\n", `\t`, "\t", "%s", orDefault(errText, name), "%d", n, "%f", "0.000000").Replace(f)
	}
	if !ok {
		for _, f := range prints {
			if isFail(f) {
				p.printf("%s", render(f, reason))
				return 1
			}
		}
		p.errorf("CUDA error: %s\n", reason)
		return 1
	}
	for _, f := range prints {
		if !isFail(f) {
			p.printf("%s", render(f, ""))
		}
	}
	return 0
}

// evalIntExpr evaluates "1 << 16", "65536", "1024 * 1024".
func evalIntExpr(e string) string {
	e = strings.TrimSpace(e)
	for _, op := range []string{"<<", "*"} {
		if l, r, ok := strings.Cut(e, op); ok {
			a, err1 := strconv.Atoi(strings.TrimSpace(l))
			b, err2 := strconv.Atoi(strings.TrimSpace(r))
			if err1 == nil && err2 == nil {
				if op == "<<" {
					return strconv.Itoa(a << b)
				}
				return strconv.Itoa(a * b)
			}
		}
	}
	if _, err := strconv.Atoi(e); err == nil {
		return e
	}
	return "1024"
}

func progGcc(p *proc) int {
	if len(p.args) > 1 && (p.args[1] == "--version" || p.args[1] == "-v") {
		p.printf("gcc (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0\nCopyright (C) 2023 Free Software Foundation, Inc.\nThis is free software; see the source for copying conditions.  There is NO\nwarranty; not even for MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.\n\n")
		return 0
	}
	out := "a.out"
	for i, a := range p.args {
		if a == "-o" && i+1 < len(p.args) {
			out = p.args[i+1]
		}
	}
	if err := p.writeFile(out, simBinary("true"), 0o755); err != nil {
		p.errorf("/usr/bin/ld: cannot open output file %s: %s\ncollect2: error: ld returned 1 exit status\n", out, errText(err))
		return 1
	}
	chmodGuest(p.g.fs, p.abs(out), 0o755)
	_ = fmt.Sprint
	return 0
}
