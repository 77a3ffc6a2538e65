package fleet

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/tasks"
)

// VMStatus is one catalog VM as the cluster and one SSH probe see it.
type VMStatus struct {
	VM      string `json:"vm"`
	VMID    int    `json:"vmid"`
	Node    string `json:"node,omitempty"` // where it exists (the catalog's node, "auto" included, when it does not)
	Exists  bool   `json:"exists"`
	Running bool   `json:"running"`
	Owned   bool   `json:"owned"` // carries the aimachine tag
	IP      string `json:"ip,omitempty"`
	GPU     string `json:"gpu,omitempty"`    // nvidia-smi's name, "" when not probed
	Driver  string `json:"driver,omitempty"` // NVIDIA driver version
	// VLLM and Ollama are "ok", "down" (no healthy answer), "off" (not in the catalog) or ""
	// (not probed: the VM does not run or SSH failed).
	VLLM   string `json:"vllm,omitempty"`
	Ollama string `json:"ollama,omitempty"`
	// LastRun and LastResult come from the newest <vm>-<run> folder of the reports dir: "ok"
	// when the run wrote its evidence, "failed" when it left only its log bundle.
	LastRun    string `json:"last_run,omitempty"`
	LastResult string `json:"last_result,omitempty"`
	// Probe is why the SSH probe failed ("" when it ran or was not tried).
	Probe string `json:"probe_error,omitempty"`
}

// Healthy: running, GPU seen, and every service the catalog enables answers.
func (s VMStatus) Healthy() bool {
	return s.Running && s.Probe == "" && s.GPU != "" && s.VLLM != "down" && s.Ollama != "down"
}

// StatusOptions tune Status.
type StatusOptions struct {
	SSH provision.SSHOptions
	// Parallel bounds the SSH probes at once (0 = DefaultParallel).
	Parallel int
	// ReportDir is where deploys write <vm>-<run>/ ("" = no last run).
	ReportDir string
	// ProbeTimeout bounds each probe (0 = 20s).
	ProbeTimeout time.Duration
}

// Status reads every VM of names: one /cluster/resources call for all, one config read per
// existing VM (ownership), and one SSH session per running VM (at most o.Parallel at once)
// that runs nvidia-smi and the two services' health requests. It changes nothing.
func Status(ctx context.Context, c *provision.Client, cat *catalog.Catalog, names []string, o StatusOptions) ([]VMStatus, error) {
	res, err := c.API().Resources(ctx, "vm")
	if err != nil {
		return nil, fmt.Errorf("status: list the cluster's VMs: %w", err)
	}
	out := make([]VMStatus, len(names))
	for i, n := range names {
		vm, err := cat.VM(n)
		if err != nil {
			return nil, err
		}
		st := VMStatus{VM: vm.Name, VMID: vm.ID, Node: vm.Node, IP: vm.IP()}
		for _, r := range res {
			if r.Type == "qemu" && r.VMID == vm.ID {
				st.Exists, st.Node, st.Running = true, r.Node, r.Status == "running"
				st.Owned = strings.Contains(";"+strings.ReplaceAll(r.Tags, ",", ";")+";", ";"+provision.OwnerTag+";")
			}
		}
		st.LastRun, st.LastResult = lastRun(o.ReportDir, vm.Name)
		out[i] = st
	}
	located := *cat
	located.VMs = append([]catalog.VM(nil), cat.VMs...)
	for i := range located.VMs {
		for _, st := range out {
			if st.Exists && st.VM == located.VMs[i].Name {
				located.VMs[i].Node = st.Node
			}
		}
	}
	timeout := o.ProbeTimeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	Run(ctx, names, Options{Parallel: o.Parallel}, func(ctx context.Context, name string) Result {
		i := indexOf(names, name)
		if !out[i].Running {
			return Result{}
		}
		vm, _ := located.VM(name)
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		ssh := o.SSH
		ssh.Timeout = timeout
		r, err := c.ConnectGuest(pctx, &located, name, ssh)
		if err != nil {
			out[i].Probe = firstLine(err.Error())
			return Result{Err: err}
		}
		defer r.Close()
		probe(pctx, r, vm, &out[i])
		return Result{}
	})
	return out, nil
}

func indexOf(names []string, n string) int {
	for i, x := range names {
		if x == n {
			return i
		}
	}
	return -1
}

// probe runs one command: nvidia-smi, then vLLM's /health and Ollama's /api/version with
// curl (the requests the guest phase's readiness checks make, provision/internal/tasks).
func probe(ctx context.Context, r guest.Runner, vm *catalog.VM, st *VMStatus) {
	var b strings.Builder
	fmt.Fprintf(&b, "nvidia-smi --query-gpu=%s --format=csv,noheader,nounits 2>/dev/null; echo '::vllm'", tasks.SMIQuery)
	if vm.VLLMEnabled() {
		addr := net.JoinHostPort(first(vm.Services.VLLM.Bind, vm.IP()), strconv.Itoa(vm.Services.VLLM.Port))
		fmt.Fprintf(&b, "; curl -s -o /dev/null -w '%%{http_code}' --max-time 5 %s; echo", guest.Quote("http://"+addr+"/health"))
	}
	b.WriteString("; echo '::ollama'")
	if vm.Services.Ollama != nil && vm.Services.Ollama.Enabled {
		addr := net.JoinHostPort(first(vm.Services.Ollama.Bind, vm.IP()), strconv.Itoa(vm.Services.Ollama.Port))
		fmt.Fprintf(&b, "; curl -s --max-time 5 %s; echo", guest.Quote("http://"+addr+"/api/version"))
	}
	res, err := r.Run(ctx, b.String())
	if err != nil {
		st.Probe = firstLine(err.Error())
		return
	}
	smi, rest, _ := strings.Cut(res.Stdout, "::vllm")
	vllm, ollama, _ := strings.Cut(rest, "::ollama")
	if gs, err := tasks.ParseSMICSV(smi); err == nil && len(gs) > 0 {
		st.GPU, st.Driver = gs[0].Name, gs[0].Driver
	}
	st.VLLM, st.Ollama = "off", "off"
	if vm.VLLMEnabled() {
		st.VLLM = "down"
		if strings.TrimSpace(vllm) == "200" {
			st.VLLM = "ok"
		}
	}
	if vm.Services.Ollama != nil && vm.Services.Ollama.Enabled {
		st.Ollama = "down"
		if strings.Contains(ollama, `"version"`) {
			st.Ollama = "ok"
		}
	}
}

func first(xs []string, def string) string {
	if len(xs) > 0 && xs[0] != "" {
		return xs[0]
	}
	return def
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// lastRun is the newest <vm>-<run> folder of dir: its run id, and "ok" when it holds
// evidence.json (a deploy that finished), else "failed".
func lastRun(dir, vm string) (string, string) {
	if dir == "" {
		return "", ""
	}
	ms, _ := filepath.Glob(filepath.Join(dir, vm+"-*"))
	var runs []string
	for _, m := range ms {
		id := strings.TrimPrefix(filepath.Base(m), vm+"-")
		if len(id) > 0 && id[0] >= '0' && id[0] <= '9' { // run ids start with the UTC date
			runs = append(runs, id)
		}
	}
	if len(runs) == 0 {
		return "", ""
	}
	sort.Strings(runs)
	id := runs[len(runs)-1]
	if _, err := os.Stat(filepath.Join(dir, vm+"-"+id, "evidence.json")); err == nil {
		return id, "ok"
	}
	return id, "failed"
}
