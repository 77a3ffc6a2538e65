package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ControlHandler serves the simulator's guest controls, to be mounted at /_sim/guest/
// (it strips everything up to and including "/_sim/guest"). JSON in and out:
//
//	GET    /_sim/guest/faults              -> {"faults":[Fault...], "kinds":{kind: description}}
//	POST   /_sim/guest/faults              <- Fault (kind required) -> 201 Fault (with id)
//	DELETE /_sim/guest/faults[?kind=K]     -> {"cleared": n}   (all, or every fault of kind K)
//	DELETE /_sim/guest/faults/{id}         -> 204, or 404
//	GET    /_sim/guest/stats               -> Stats
//	DELETE /_sim/guest/stats               -> 204 (counters reset)
//	GET    /_sim/guest/guests              -> [GuestInfo...]
//	POST   /_sim/guest/guests/{vmid}/exec  <- {"command": "...", "user": "root"} -> {"exit_code", "stdout", "stderr"}
//	GET    /_sim/guest/guests/{vmid}/cmdlines -> ["argv joined", ...] (every program the guest ran; what ps would have shown)
//
// Errors are {"error": "..."} with 400 / 404 / 405.
func (f *Factory) ControlHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if i := strings.Index(p, "/_sim/guest"); i >= 0 {
			p = p[i+len("/_sim/guest"):]
		}
		p = "/" + strings.Trim(p, "/")
		parts := strings.Split(strings.Trim(p, "/"), "/")
		switch {
		case p == "/faults":
			switch r.Method {
			case http.MethodGet:
				writeJSON(w, 200, map[string]any{"faults": f.Faults(), "kinds": FaultKinds()})
			case http.MethodPost:
				var ft Fault
				dec := json.NewDecoder(r.Body)
				dec.DisallowUnknownFields()
				if err := dec.Decode(&ft); err != nil {
					writeJSON(w, 400, map[string]string{"error": "decode fault: " + err.Error()})
					return
				}
				out, err := f.InjectFault(ft)
				if err != nil {
					writeJSON(w, 400, map[string]string{"error": err.Error()})
					return
				}
				writeJSON(w, 201, out)
			case http.MethodDelete:
				writeJSON(w, 200, map[string]int{"cleared": f.ClearFaults(r.URL.Query().Get("kind"))})
			default:
				writeJSON(w, 405, map[string]string{"error": "method not allowed"})
			}
		case len(parts) == 2 && parts[0] == "faults":
			id, err := strconv.Atoi(parts[1])
			if err != nil || r.Method != http.MethodDelete {
				writeJSON(w, 400, map[string]string{"error": "use DELETE /_sim/guest/faults/{id}"})
				return
			}
			if !f.ClearFault(id) {
				writeJSON(w, 404, map[string]string{"error": "no fault " + parts[1]})
				return
			}
			w.WriteHeader(204)
		case p == "/stats":
			if r.Method == http.MethodDelete {
				f.ResetStats()
				w.WriteHeader(204)
				return
			}
			writeJSON(w, 200, f.Stats())
		case p == "/guests":
			var out []GuestInfo
			for _, g := range f.Guests() {
				out = append(out, g.Info())
			}
			writeJSON(w, 200, out)
		case len(parts) == 3 && parts[0] == "guests" && parts[2] == "cmdlines" && r.Method == http.MethodGet:
			vmid, _ := strconv.Atoi(parts[1])
			g := f.GuestByVMID(vmid)
			if g == nil {
				writeJSON(w, 404, map[string]string{"error": "no guest for VM " + parts[1]})
				return
			}
			writeJSON(w, 200, g.CommandLines())
		case len(parts) == 3 && parts[0] == "guests" && parts[2] == "exec" && r.Method == http.MethodPost:
			vmid, _ := strconv.Atoi(parts[1])
			g := f.GuestByVMID(vmid)
			if g == nil {
				writeJSON(w, 404, map[string]string{"error": "no guest for VM " + parts[1]})
				return
			}
			var req struct {
				Command string `json:"command"`
				User    string `json:"user"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Command == "" {
				writeJSON(w, 400, map[string]string{"error": "body must be {\"command\": \"...\", \"user\": \"root\"}"})
				return
			}
			res, err := g.Exec(r.Context(), req.User, req.Command)
			if err != nil {
				writeJSON(w, 409, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, 200, res)
		default:
			writeJSON(w, 404, map[string]string{"error": "unknown path " + p})
		}
	})
}

// GuestInfo describes a guest for the control API.
type GuestInfo struct {
	VMID        int        `json:"vmid"`
	Incarnation string     `json:"incarnation"`
	State       PowerState `json:"state"`
	IP          string     `json:"ip"`
	Boots       int        `json:"boots"`
	HostKeys    []string   `json:"host_keys"`
	AgentReady  bool       `json:"agent_ready"`
	CloudInit   string     `json:"cloud_init"`
}

// Info returns the guest's description.
func (g *Guest) Info() GuestInfo {
	g.mu.Lock()
	info := GuestInfo{VMID: g.id.VMID, Incarnation: g.id.Incarnation, State: g.power, IP: g.ip, Boots: g.boots}
	g.mu.Unlock()
	for _, k := range g.HostKeys() {
		info.HostKeys = append(info.HostKeys, k.Type()+" "+ssh.FingerprintSHA256(k))
	}
	info.AgentReady = g.sys.agentRunning()
	g.sys.mu.Lock()
	info.CloudInit = g.sys.ci.status
	g.sys.mu.Unlock()
	return info
}

// ExecResult is the outcome of Guest.Exec.
type ExecResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// Exec runs a command line in the guest as a user ("" = root), bypassing SSH (for tests and the
// simulator's debugging endpoint). The guest must be running.
func (g *Guest) Exec(ctx context.Context, userName, command string) (ExecResult, error) {
	if g.State() != PowerRunning {
		return ExecResult{}, errNotRunning
	}
	if userName == "" {
		userName = "root"
	}
	u, err := g.fs.lookupUser(userName)
	if err != nil {
		return ExecResult{}, err
	}
	g.mu.Lock()
	bctx := g.bootCtx
	g.mu.Unlock()
	cctx, cancel := context.WithCancel(bctx)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			cancel()
		case <-cctx.Done():
		}
	}()
	var out, errb bytes.Buffer
	env := g.loginEnv(u)
	if u.UID == 0 {
		env = rootEnv()
	}
	code := g.runShell(cctx, shellSpec{user: u, env: env, dir: u.Home, script: command, stdin: strings.NewReader(""), stdout: &out, stderr: &errb})
	return ExecResult{ExitCode: code, Stdout: out.String(), Stderr: errb.String()}, nil
}

// WaitRunning waits until the guest accepts SSH or ctx ends.
func (g *Guest) WaitRunning(ctx context.Context) error {
	for {
		if g.State() == PowerRunning {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// WaitCloudInit waits until cloud-init finished (done or error) on the current boot.
func (g *Guest) WaitCloudInit(ctx context.Context) error {
	if err := g.WaitRunning(ctx); err != nil {
		return err
	}
	for {
		g.sys.mu.Lock()
		done := g.sys.ci.done
		g.sys.mu.Unlock()
		if done != nil {
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
