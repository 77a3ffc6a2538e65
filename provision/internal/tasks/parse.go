package tasks

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Version is a dotted numeric version (580.173.02, 12.8, 0.9.2).
type Version []int

// ParseVersion reads the first dotted number in s.
func ParseVersion(s string) (Version, bool) {
	m := versionRE.FindString(s)
	if m == "" {
		return nil, false
	}
	var v Version
	for _, p := range strings.Split(m, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}

var versionRE = regexp.MustCompile(`\d+(?:\.\d+)+|\d+`)

// Compare returns -1, 0 or 1; missing components count as 0.
func (v Version) Compare(w Version) int {
	for i := 0; i < len(v) || i < len(w); i++ {
		a, b := 0, 0
		if i < len(v) {
			a = v[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	return 0
}

func (v Version) String() string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ".")
}

// AtLeast compares against a literal like "12.6".
func (v Version) AtLeast(s string) bool {
	w, _ := ParseVersion(s)
	return v.Compare(w) >= 0
}

// DriverCandidate is one line of `ubuntu-drivers list --gpgpu`.
type DriverCandidate struct {
	Package string // nvidia-driver-595-server-open
	Modules string // linux-modules-nvidia-595-server-open-generic, or nvidia-dkms-…
	Branch  int    // 595
	Server  bool
	Open    bool
}

// Flavour is what `ubuntu-drivers install --gpgpu nvidia:<flavour>` takes: 595-server-open.
func (c DriverCandidate) Flavour() string {
	f := strconv.Itoa(c.Branch)
	if c.Server {
		f += "-server"
	}
	if c.Open {
		f += "-open"
	}
	return f
}

// DKMS reports whether the kernel modules would be built by DKMS (not Canonical-signed).
func (c DriverCandidate) DKMS() bool { return strings.HasPrefix(c.Modules, "nvidia-dkms-") }

// UtilsPackage is nvidia-utils-<branch>[-server] (there is no -open variant).
func (c DriverCandidate) UtilsPackage() string {
	p := "nvidia-utils-" + strconv.Itoa(c.Branch)
	if c.Server {
		p += "-server"
	}
	return p
}

// HeadlessPackage is what `install --gpgpu` installs: nvidia-headless-no-dkms-<flavour>.
func (c DriverCandidate) HeadlessPackage() string {
	return "nvidia-headless-no-dkms-" + c.Flavour()
}

var driverPkgRE = regexp.MustCompile(`^nvidia-driver-(\d+)(-server)?(-open)?$`)

// ParseDriverList parses `ubuntu-drivers list --gpgpu` (and the plain `list`): one candidate
// per line, "PKG, (kernel modules provided by MODPKG)"; the --recommended form "PKG MODPKG"
// is accepted too. Lines that are not NVIDIA driver packages (noise on stderr merged in,
// branch-less third-party names like nvidia-driver-open) are skipped.
func ParseDriverList(out string) []DriverCandidate {
	var cs []DriverCandidate
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		pkg, mods := line, ""
		if i := strings.Index(line, ","); i >= 0 {
			pkg = strings.TrimSpace(line[:i])
			rest := line[i+1:]
			if j := strings.Index(rest, "provided by "); j >= 0 {
				mods = strings.TrimSpace(strings.TrimRight(rest[j+len("provided by "):], ") "))
			}
		} else if f := strings.Fields(line); len(f) == 2 {
			pkg, mods = f[0], f[1]
		}
		m := driverPkgRE.FindStringSubmatch(pkg)
		if m == nil {
			continue
		}
		b, _ := strconv.Atoi(m[1])
		cs = append(cs, DriverCandidate{Package: pkg, Modules: mods, Branch: b, Server: m[2] != "", Open: m[3] != ""})
	}
	return cs
}

// ErrProprietaryOnly is returned by ChooseDriver when the GPU needs the open module and no
// -open candidate exists.
type ErrProprietaryOnly struct {
	Arch       string
	Candidates []DriverCandidate
}

func (e *ErrProprietaryOnly) Error() string {
	var names []string
	for _, c := range e.Candidates {
		names = append(names, c.Package)
	}
	return fmt.Sprintf("ubuntu-drivers offers only proprietary drivers (%s), but a %s GPU works only with the NVIDIA open kernel module (-open)", strings.Join(names, ", "), e.Arch)
}

// ChooseDriver picks the newest -open candidate (ties: -server-open first, as --gpgpu
// prefers the server flavour; then Canonical-signed prebuilt modules before DKMS). Order of
// the input is not trusted. When no -open candidate exists, a GPU that needs the open module
// gets *ErrProprietaryOnly; others get the newest candidate.
func ChooseDriver(cs []DriverCandidate, needsOpen bool, arch string) (DriverCandidate, error) {
	if len(cs) == 0 {
		return DriverCandidate{}, fmt.Errorf("ubuntu-drivers list --gpgpu offers no NVIDIA driver for this machine")
	}
	sorted := append([]DriverCandidate(nil), cs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Open != b.Open {
			return a.Open
		}
		if a.Branch != b.Branch {
			return a.Branch > b.Branch
		}
		if a.DKMS() != b.DKMS() {
			return !a.DKMS()
		}
		return a.Server && !b.Server
	})
	best := sorted[0]
	if !best.Open && needsOpen {
		return DriverCandidate{}, &ErrProprietaryOnly{Arch: arch, Candidates: cs}
	}
	return best, nil
}

// GPUArch maps NVIDIA PCI device ids to architectures that matter to the driver choice.
// Blackwell (GB20x) needs the open kernel module.
var gpuArch = map[string]string{
	"10de:2d04": "Blackwell", // RTX 5060 Ti (GB206)
	"10de:2d05": "Blackwell", // RTX 5060 (GB206)
	"10de:2c02": "Blackwell", // RTX 5080 (GB203)
	"10de:2c05": "Blackwell", // RTX 5070 Ti (GB203)
	"10de:2b85": "Blackwell", // RTX 5090 (GB202)
	"10de:2c58": "Blackwell", // RTX 5090 Laptop
	"10de:2684": "Ada",       // RTX 4090
	"10de:2204": "Ampere",    // RTX 3090
}

// Arch returns the architecture of a vendor:device id ("" when unknown). Unknown devices from
// 10de:2b00 up (Blackwell's range) are treated as Blackwell.
func Arch(pciID string) string {
	pciID = strings.ToLower(pciID)
	if a, ok := gpuArch[pciID]; ok {
		return a
	}
	if v, d, ok := strings.Cut(pciID, ":"); ok && v == "10de" {
		if n, err := strconv.ParseUint(d, 16, 16); err == nil && n >= 0x2b00 && n < 0x3000 {
			return "Blackwell"
		}
	}
	return ""
}

// NeedsOpenModule reports whether the architecture works only with the open kernel module.
func NeedsOpenModule(arch string) bool { return arch == "Blackwell" }

// MinCUDA is the lowest toolkit that compiles for the architecture (12.8 brought sm_120).
func MinCUDA(arch string) string {
	if arch == "Blackwell" {
		return "12.8"
	}
	return "12.6"
}

// PCIDevice is one line of `lspci -nn`.
type PCIDevice struct {
	Slot  string // 01:00.0
	Class string // VGA compatible controller
	ID    string // 10de:2d04
	Line  string
}

var lspciRE = regexp.MustCompile(`^(\S+)\s+(.+?)\s+\[[0-9a-f]{4}\]:.*\[([0-9a-f]{4}:[0-9a-f]{4})\]`)

// ParseLspci parses `lspci -nn` lines.
func ParseLspci(out string) []PCIDevice {
	var ds []PCIDevice
	for _, line := range strings.Split(out, "\n") {
		m := lspciRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		ds = append(ds, PCIDevice{Slot: m[1], Class: m[2], ID: m[3], Line: strings.TrimSpace(line)})
	}
	return ds
}

// SMIGPU is one row of nvidia-smi --query-gpu=name,memory.total,driver_version,pci.bus_id,pci.device_id.
type SMIGPU struct {
	Name      string
	MemoryMiB int
	Driver    string
	BusID     string // normalised 0000:01:00.0
	DeviceID  string // 10de:2d04, when pci.device_id was queried
}

// SMIQuery is the query the tool sends.
const SMIQuery = "name,memory.total,driver_version,pci.bus_id,pci.device_id"

// ParseSMICSV parses --format=csv,noheader,nounits output (with or without units/header).
func ParseSMICSV(out string) ([]SMIGPU, error) {
	var gs []SMIGPU
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "name,") {
			continue
		}
		f := strings.Split(line, ", ")
		if len(f) < 3 {
			return nil, fmt.Errorf("unexpected nvidia-smi line %q", line)
		}
		mem, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(f[1]), " MiB"))
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi memory.total %q: not a number of MiB", f[1])
		}
		g := SMIGPU{Name: f[0], MemoryMiB: mem, Driver: strings.TrimSpace(f[2])}
		if len(f) > 3 {
			g.BusID = NormalizeBusID(f[3])
		}
		if len(f) > 4 {
			g.DeviceID = smiDeviceID(f[4])
		}
		gs = append(gs, g)
	}
	if len(gs) == 0 {
		return nil, fmt.Errorf("nvidia-smi listed no GPU")
	}
	return gs, nil
}

// smiDeviceID turns pci.device_id "0x2D0410DE" into "10de:2d04".
func smiDeviceID(s string) string {
	s = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if len(s) != 8 {
		return ""
	}
	return s[4:] + ":" + s[:4]
}

// NormalizeBusID turns 00000000:01:00.0, 0000:01:00.0, 01:00.0 and PCI:0000:01:00 into 0000:01:00.0.
func NormalizeBusID(s string) string {
	s = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "PCI:"))
	s = strings.TrimPrefix(s, "pci:")
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 2:
		parts = append([]string{"0000"}, parts...)
	case 3:
		d := parts[0]
		if len(d) > 4 {
			d = d[len(d)-4:]
		}
		parts[0] = d
	}
	s = strings.Join(parts, ":")
	if !strings.Contains(s[strings.LastIndex(s, ":")+1:], ".") {
		s += ".0"
	}
	return s
}

var smiCUDARE = regexp.MustCompile(`CUDA (?:UMD )?Version:\s*(\d+\.\d+)`)
var smiDriverRE = regexp.MustCompile(`(?:Driver|KMD) Version:\s*(\d+(?:\.\d+)+)`)

// ParseSMIHeader reads the driver and CUDA version from nvidia-smi's table header, accepting
// both spellings (Driver/CUDA Version before 610, KMD/CUDA UMD Version from 610).
func ParseSMIHeader(out string) (driver, cuda string) {
	if m := smiDriverRE.FindStringSubmatch(out); m != nil {
		driver = m[1]
	}
	if m := smiCUDARE.FindStringSubmatch(out); m != nil {
		cuda = m[1]
	}
	return driver, cuda
}

var nvccRE = regexp.MustCompile(`release (\d+)\.(\d+)`)

// ParseNvcc reads "release 12.8" from nvcc --version.
func ParseNvcc(out string) (Version, bool) {
	m := nvccRE.FindStringSubmatch(out)
	if m == nil {
		return nil, false
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return Version{a, b}, true
}

// ModuleVersion is /proc/driver/nvidia/version's first line.
type ModuleVersion struct {
	Open    bool
	Version string
	Line    string
}

var modVerRE = regexp.MustCompile(`\d+\.\d+(?:\.\d+)?`)

// ParseModuleVersion parses /proc/driver/nvidia/version.
func ParseModuleVersion(out string) (ModuleVersion, bool) {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(line, "NVRM version:") {
		return ModuleVersion{}, false
	}
	rest := line[strings.Index(line, "Module")+1:]
	return ModuleVersion{Open: strings.Contains(line, "Open Kernel Module"), Version: modVerRE.FindString(rest), Line: line}, true
}

// NVRM error patterns (shared/reference/guest.md §4.2). Taint warnings and loading lines are
// not errors.
var dmesgErrorRE = regexp.MustCompile(strings.Join([]string{
	`NVRM: .*requires use of the NVIDIA open kernel modules`,
	`NVRM: The NVIDIA GPU .* \(PCI ID: `,
	`RmInitAdapter failed`,
	`rm_init_adapter failed`,
	`NVRM: This PCI I/O region assigned to your NVIDIA device is invalid`,
	`NVRM: BAR\d+ is 0M`,
	`nvidia: probe of .* failed`,
	`NVRM: The NVIDIA probe routine (failed|was not called)`,
	`NVRM: None of the NVIDIA devices were initialized`,
	`NVRM: No NVIDIA devices probed`,
	`NVRM: Xid \((?:PCI:)?[0-9a-fA-F:]+\): (79|119|120|48|62|74|92|94|95),`,
	`GPU has fallen off the bus`,
	`NVRM: API mismatch`,
	`NVRM: GPU .*: (Failed|failed)`,
	`nouveau, rivafb, nvidiafb or rivatv`,
}, "|"))

// DmesgErrors returns the kernel log lines that are real NVIDIA errors.
func DmesgErrors(out string) []string {
	var errs []string
	for _, line := range strings.Split(out, "\n") {
		if dmesgErrorRE.MatchString(line) {
			errs = append(errs, strings.TrimSpace(line))
		}
	}
	return errs
}

// CloudInitStatus parses `cloud-init status [--wait]` (the dots may share the line).
func CloudInitStatus(out string) string {
	m := regexp.MustCompile(`status: ([a-z ]+?)\s*$`).FindStringSubmatch(firstMatchLine(out, "status:"))
	if m == nil {
		return ""
	}
	return m[1]
}

func firstMatchLine(out, sub string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, sub) && !strings.Contains(l, "extended_status") && !strings.Contains(l, "boot_status") {
			return l
		}
	}
	return ""
}

// Package is one dpkg-query row.
type Package struct {
	Name, Status, Version string
}

// Installed reports dpkg's "install ok installed".
func (p Package) Installed() bool { return p.Status == "install ok installed" }

// State is the third word of dpkg's Status ("installed", "half-configured", "unpacked", …).
func (p Package) State() string {
	f := strings.Fields(p.Status)
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// Unfinished reports a package dpkg left between states: unpacked but never configured, a
// failed maintainer script (half-configured, e.g. a DKMS build in the postinst), an
// interrupted unpack (half-installed, reinstreq) or triggers still pending. `dpkg
// --configure -a` (or a reinstall) finishes it.
func (p Package) Unfinished() bool {
	f := strings.Fields(p.Status)
	if len(f) < 3 {
		return false
	}
	if f[1] == "reinstreq" {
		return true
	}
	switch f[2] {
	case "unpacked", "half-configured", "half-installed", "triggers-awaited", "triggers-pending":
		return true
	}
	return false
}

// ParseDpkg parses dpkg-query -W --showformat='${Package}\t${Status}\t${Version}\n'.
func ParseDpkg(out string) map[string]Package {
	m := map[string]Package{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 2 || f[0] == "" || strings.HasPrefix(f[0], "dpkg-query:") {
			continue
		}
		p := Package{Name: f[0], Status: f[1]}
		if len(f) > 2 {
			p.Version = f[2]
		}
		m[p.Name] = p
	}
	return m
}

// ParseKeyValues parses systemctl show / os-release style KEY=VALUE lines.
func ParseKeyValues(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && k != "" && !strings.ContainsAny(k, " \t") {
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}

// PipShowVersion reads "Version: X" from pip show.
func PipShowVersion(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// OllamaCompute is the latest `msg="inference compute"` journal line.
type OllamaCompute struct {
	Library string // CUDA, cpu, …
	Line    string
	Found   bool
}

var libRE = regexp.MustCompile(`library=("?)([A-Za-z0-9_]+)`)

// ParseOllamaCompute finds the last inference-compute line of Ollama's log.
func ParseOllamaCompute(journal string) OllamaCompute {
	var c OllamaCompute
	for _, line := range strings.Split(journal, "\n") {
		if !strings.Contains(line, `msg="inference compute"`) {
			continue
		}
		c.Found, c.Line = true, strings.TrimSpace(line)
		c.Library = ""
		if m := libRE.FindStringSubmatch(line); m != nil {
			c.Library = m[2]
		}
	}
	return c
}

// OnGPU reports whether Ollama found a CUDA device.
func (c OllamaCompute) OnGPU() bool { return strings.EqualFold(c.Library, "cuda") }

// OllamaVersion reads "ollama version is X" or "client version is X".
func OllamaVersion(out string) string {
	m := regexp.MustCompile(`version is (\S+)`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

// Fact is one command's output in the batched facts report.
type Fact struct {
	Out string
	RC  int
}

const (
	factBegin = "::aimachine-fact "
	factEnd   = "::aimachine-end "
)

// ParseFacts splits the output of a facts script into named facts.
func ParseFacts(out string) map[string]Fact {
	facts := map[string]Fact{}
	var name string
	var buf strings.Builder
	in := false
	for _, line := range strings.SplitAfter(out, "\n") {
		trimmed := strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(trimmed, factBegin):
			name, in = strings.TrimSpace(strings.TrimPrefix(trimmed, factBegin)), true
			buf.Reset()
		case in && strings.HasPrefix(trimmed, factEnd):
			f := strings.Fields(strings.TrimPrefix(trimmed, factEnd))
			rc := -1
			if len(f) == 2 && f[0] == name {
				rc, _ = strconv.Atoi(strings.TrimPrefix(f[1], "rc="))
			}
			facts[name] = Fact{Out: buf.String(), RC: rc}
			in = false
		case in:
			buf.WriteString(line)
		}
	}
	return facts
}

// SMIProcess is one row of nvidia-smi's "Processes:" table.
type SMIProcess struct {
	PID, Type, Name string
	MemoryMiB       int
}

var smiProcRE = regexp.MustCompile(`^\|\s+\d+\s+\S+\s+\S+\s+(\d+)\s+(C|G|C\+G|M|M\+C)\s+(.+?)\s+(\d+)MiB\s*\|$`)

// ParseSMIProcesses reads the process rows of nvidia-smi's default table.
func ParseSMIProcesses(out string) []SMIProcess {
	var ps []SMIProcess
	for _, line := range strings.Split(out, "\n") {
		m := smiProcRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		mem, _ := strconv.Atoi(m[4])
		ps = append(ps, SMIProcess{PID: m[1], Type: m[2], Name: m[3], MemoryMiB: mem})
	}
	return ps
}
