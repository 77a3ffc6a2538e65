package guest

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Python: python3 (venv, -m pip, -c for a few probes) and pip inside a venv (PEP 668 outside).

const latestVLLM = "0.28.0"

func init() {
	programs["python3"] = progPython
	programs["python3.12"] = progPython
	programs["pip"] = progPip
}

// venvOf returns the venv root of an interpreter/pip path, "" for the system Python.
func (g *Guest) venvOf(exe string) string {
	dir := path.Dir(path.Dir(exe))
	if g.fs.exists(dir + "/pyvenv.cfg") {
		return dir
	}
	return ""
}

func sitePackages(venv string) string { return venv + "/lib/python3.12/site-packages" }

// installedPy lists name -> version of distributions in a venv.
func (g *Guest) installedPy(venv string) map[string]string {
	out := map[string]string{}
	for _, d := range g.fs.glob(sitePackages(venv), "*.dist-info") {
		base := strings.TrimSuffix(path.Base(d), ".dist-info")
		i := strings.LastIndex(base, "-")
		if i > 0 {
			out[strings.ToLower(base[:i])] = base[i+1:]
		}
	}
	return out
}

func progPython(p *proc) int {
	args := p.args[1:]
	exe := p.path
	if exe == "" {
		exe = "/usr/bin/python3"
	}
	if len(args) == 0 {
		return 0
	}
	switch {
	case args[0] == "--version" || args[0] == "-V":
		p.printf("Python 3.12.3\n")
		return 0
	case args[0] == "-m" && len(args) > 1 && args[1] == "venv":
		return pyVenv(p, args[2:])
	case args[0] == "-m" && len(args) > 1 && args[1] == "pip":
		q := *p
		q.args = append([]string{"pip"}, args[2:]...)
		q.path = path.Dir(exe) + "/pip"
		return progPip(&q)
	case args[0] == "-m" && len(args) > 1 && (args[1] == "vllm.entrypoints.openai.api_server" || args[1] == "vllm"):
		venv := p.g.venvOf(exe)
		if venv == "" || p.g.installedPy(venv)["vllm"] == "" {
			p.errorf("%s: No module named %s\n", exe, args[1])
			return 1
		}
		q := *p
		q.args = append([]string{"vllm", "serve"}, args[2:]...)
		q.path = venv + "/bin/vllm"
		return progVLLM(&q)
	case args[0] == "-c" && len(args) > 1:
		return pyCode(p, exe, args[1])
	}
	p.errorf("python3: the simulated guest cannot run '%s'\n", strings.Join(args, " "))
	return 2
}

// pyCode answers the few one-liners a deployment uses to probe its venv.
func pyCode(p *proc, exe, code string) int {
	venv := p.g.venvOf(exe)
	pkgs := map[string]string{}
	if venv != "" {
		pkgs = p.g.installedPy(venv)
	}
	imports := regexp.MustCompile(`import (\w+)`).FindAllStringSubmatch(code, -1)
	for _, m := range imports {
		mod := m[1]
		if mod == "sys" || mod == "os" || mod == "json" || mod == "platform" {
			continue
		}
		if pkgs[mod] == "" {
			p.errorf("Traceback (most recent call last):\n  File \"<string>\", line 1, in <module>\nModuleNotFoundError: No module named '%s'\n", mod)
			return 1
		}
	}
	var out []string
	for _, m := range regexp.MustCompile(`print\(([^()]*(?:\([^()]*\))?[^()]*)\)`).FindAllStringSubmatch(code, -1) {
		expr := strings.TrimSpace(m[1])
		switch {
		case strings.HasSuffix(expr, ".__version__"):
			mod := strings.TrimSuffix(expr, ".__version__")
			v := pkgs[mod]
			if mod == "torch" {
				v += "+" + torchCUDA(pkgs["vllm"])
			}
			out = append(out, v)
		case expr == "torch.cuda.is_available()":
			ok, _ := p.g.sys.cudaInit()
			out = append(out, map[bool]string{true: "True", false: "False"}[ok])
		case expr == "torch.cuda.get_device_name(0)":
			ok, reason := p.g.sys.cudaInit()
			if !ok {
				p.errorf("RuntimeError: %s\n", reason)
				return 1
			}
			out = append(out, p.g.sys.nvidiaGPU().model)
		case expr == "torch.cuda.get_device_capability(0)":
			ok, reason := p.g.sys.cudaInit()
			if !ok {
				p.errorf("RuntimeError: %s\n", reason)
				return 1
			}
			major, minor, _ := strings.Cut(p.g.sys.nvidiaGPU().computeCap(), ".")
			out = append(out, "("+major+", "+minor+")")
		case expr == "torch.version.cuda":
			out = append(out, strings.Replace(strings.TrimPrefix(torchCUDA(pkgs["vllm"]), "cu"), "12", "12.", 1))
		case expr == "sys.version":
			out = append(out, "3.12.3 (main, Aug 14 2025, 17:47:21) [GCC 13.3.0]")
		case strings.HasPrefix(expr, "'") || strings.HasPrefix(expr, "\""):
			out = append(out, strings.Trim(expr, `'"`))
		default:
			p.errorf("python3: the simulated guest cannot evaluate %s\n", expr)
			return 1
		}
	}
	for _, l := range out {
		p.printf("%s\n", l)
	}
	return 0
}

func pyVenv(p *proc, args []string) int {
	var dir string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			dir = a
		}
	}
	if dir == "" {
		p.errorf("usage: venv [-h] [--system-site-packages] [--symlinks | --copies] [--clear] [--upgrade] [--without-pip] ENV_DIR [ENV_DIR ...]\nvenv: error: the following arguments are required: ENV_DIR\n")
		return 2
	}
	if err := p.mkdir(dir, 0o755, true); err != nil {
		p.errorf("Error: [Errno 13] Permission denied: '%s'\n", dir)
		return 1
	}
	root := p.abs(dir)
	o := owner{p.user.UID, p.user.GID}
	p.g.fs.writeFile(root+"/pyvenv.cfg", []byte("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.12.3\nexecutable = /usr/bin/python3.12\ncommand = /usr/bin/python3 -m venv "+root+"\n"), 0o644, o)
	p.g.fs.mkdirAll(root+"/bin", 0o755, o)
	p.g.fs.mkdirAll(sitePackages(root), 0o755, o)
	p.g.fs.symlink("/usr/bin/python3", root+"/bin/python3")
	p.g.fs.symlink("python3", root+"/bin/python")
	p.g.fs.symlink("python3", root+"/bin/python3.12")
	p.g.fs.writeFile(root+"/bin/activate", []byte("# This file must be used with \"source bin/activate\"\nVIRTUAL_ENV="+root+"\nexport VIRTUAL_ENV\nPATH=\"$VIRTUAL_ENV/bin:$PATH\"\nexport PATH\n"), 0o644, o)
	if !contains(args, "--without-pip") {
		if !p.g.fs.exists("/usr/lib/python3.12/ensurepip/__init__.py") {
			p.printf("The virtual environment was not created successfully because ensurepip is not\navailable.  On Debian/Ubuntu systems, you need to install the python3-venv\npackage using the following command.\n\n    apt install python3.12-venv\n\nYou may need to use sudo with that command.  After installing the python3-venv\npackage, recreate your virtual environment.\n\nFailing command: %s/bin/python3\n\n", root)
			return 1
		}
		p.g.fs.writeFile(root+"/bin/pip", simBinary("pip"), 0o755, o)
		p.g.fs.writeFile(root+"/bin/pip3", simBinary("pip"), 0o755, o)
		p.g.fs.writeFile(sitePackages(root)+"/pip-24.0.dist-info/METADATA", []byte("Name: pip\nVersion: 24.0\n"), 0o644, o)
	}
	return 0
}

// torchFor returns the torch version and CUDA flavour a vLLM wheel pulls (guest.md §7.1).
func torchFor(vllm string) (string, string) {
	switch {
	case versionLess(vllm, "0.9.0"):
		return "2.6.0", "cu124"
	case versionLess(vllm, "0.10.0"):
		return "2.7.0", "cu128"
	case versionLess(vllm, "0.11.0"):
		return "2.7.1", "cu128"
	case versionLess(vllm, "0.12.0"):
		return "2.8.0", "cu128"
	case versionLess(vllm, "0.20.0"):
		return "2.9.0", "cu129"
	}
	return "2.11.0", "cu130"
}

func torchCUDA(vllm string) string {
	if vllm == "" {
		return "cu128"
	}
	_, c := torchFor(vllm)
	return c
}

func progPip(p *proc) int {
	exe := p.path
	venv := p.g.venvOf(exe)
	args := p.args[1:]
	if len(args) == 0 {
		p.printf("\nUsage:   \n  pip <command> [options]\n")
		return 0
	}
	switch args[0] {
	case "--version", "-V":
		where := "/usr/lib/python3/dist-packages/pip"
		if venv != "" {
			where = sitePackages(venv) + "/pip"
		}
		p.printf("pip 24.0 from %s (python 3.12)\n", where)
		return 0
	case "list", "freeze":
		pk := map[string]string{}
		if venv != "" {
			pk = p.g.installedPy(venv)
		}
		var names []string
		for n := range pk {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if args[0] == "freeze" {
				p.printf("%s==%s\n", n, pk[n])
			} else {
				p.printf("%-20s %s\n", n, pk[n])
			}
		}
		return 0
	case "show":
		if venv == "" || len(args) < 2 {
			p.errorf("WARNING: Package(s) not found: %s\n", strings.Join(args[1:], ", "))
			return 1
		}
		v := p.g.installedPy(venv)[strings.ToLower(args[1])]
		if v == "" {
			p.errorf("WARNING: Package(s) not found: %s\n", args[1])
			return 1
		}
		p.printf("Name: %s\nVersion: %s\nLocation: %s\n", args[1], v, sitePackages(venv))
		return 0
	case "install":
	default:
		return 0
	}
	if venv == "" && !contains(args, "--break-system-packages") {
		p.errorf("error: externally-managed-environment\n\n× This environment is externally managed\n╰─> To install Python packages system-wide, try apt install\n    python3-xyz, where xyz is the package you are trying to\n    install.\n    \n    If you wish to install a non-Debian-packaged Python package,\n    create a virtual environment using python3 -m venv path/to/venv.\n    Then use path/to/venv/bin/python and path/to/venv/bin/pip. Make\n    sure you have python3-full installed.\n\nnote: If you believe this is a mistake, please contact your Python installation or OS distribution provider. You can override this, at the risk of breaking your Python installation or OS, by passing --break-system-packages.\nhint: See PEP 668 for the detailed specification.\n")
		return 1
	}
	if venv != "" {
		root := venv
		if fi, err := p.g.fs.stat(root+"/bin", true); err == nil && !p.g.fs.access(p.user, root+"/bin", fi, 2) {
			p.errorf("ERROR: Could not install packages due to an OSError: [Errno 13] Permission denied: '%s/lib/python3.12/site-packages/INSTALLER'\nCheck the permissions.\n\n", root)
			return 1
		}
	}
	var specs []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "-r" || a == "--index-url" || a == "--extra-index-url" || a == "-i" || a == "--torch-backend" {
			i++
			continue
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		specs = append(specs, a)
	}
	o := owner{p.user.UID, p.user.GID}
	installed := []string{}
	write := func(name, ver string) {
		p.g.fs.writeFile(sitePackages(venv)+"/"+name+"-"+ver+".dist-info/METADATA", []byte("Metadata-Version: 2.1\nName: "+name+"\nVersion: "+ver+"\n"), 0o644, o)
		installed = append(installed, name+"-"+ver)
	}
	for _, spec := range specs {
		name, ver, _ := strings.Cut(spec, "==")
		name = strings.ToLower(strings.Trim(name, `"'`))
		ver = strings.Trim(ver, `"'`)
		if i := strings.IndexAny(name, "<>=[~"); i >= 0 {
			name = name[:i]
		}
		switch name {
		case "vllm":
			if ver == "" {
				ver = latestVLLM
			}
			if !regexp.MustCompile(`^0\.\d+\.\d+(\.post\d+)?$`).MatchString(ver) {
				p.errorf("ERROR: Could not find a version that satisfies the requirement vllm==%s (from versions: 0.8.5, 0.9.0, 0.9.2, 0.10.0, 0.10.2, 0.11.0, 0.12.0, 0.20.1, 0.21.0, 0.28.0)\nERROR: No matching distribution found for vllm==%s\n", ver, ver)
				return 1
			}
			torch, cu := torchFor(ver)
			p.printf("Collecting vllm==%s\n  Downloading vllm-%s-cp38-abi3-manylinux_2_31_x86_64.whl (438.2 MB)\nCollecting torch==%s (from vllm==%s)\n  Downloading torch-%s-cp312-cp312-manylinux_2_28_x86_64.whl (888.1 MB)\n", ver, ver, torch, ver, torch)
			if err := p.g.sleep(p.ctx, 150*time.Second); err != nil {
				return 1
			}
			write("vllm", ver)
			write("torch", torch)
			write("transformers", "4.57.1")
			write("huggingface_hub", "0.36.0")
			write("nvidia_cuda_runtime_"+strings.TrimPrefix(cu[:4], "cu"), "12.8.90")
			p.g.fs.writeFile(venv+"/bin/vllm", simBinary("vllm"), 0o755, o)
		default:
			if name == "" {
				continue
			}
			if ver == "" {
				ver = "1.0.0"
			}
			p.printf("Collecting %s\n", name)
			write(name, ver)
		}
	}
	p.printf("Installing collected packages: %s\nSuccessfully installed %s\n", strings.Join(installed, ", "), strings.Join(installed, " "))
	return 0
}

var _ = fmt.Sprint
