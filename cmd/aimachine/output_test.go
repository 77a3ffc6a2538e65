package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/provision"
)

// A heartbeat prints the time so far, the limit and what the task waits for; finished tasks
// print ✓ lines; nothing is coloured when the output is not a terminal.
func TestRendererLines(t *testing.T) {
	var b bytes.Buffer
	r := &renderer{w: &b, style: styleFor(&b)}
	r.Report(provision.Event{Phase: provision.PhaseInfra, Task: "wait for cloud-init in VM 140", Limit: 20 * time.Minute})
	r.Report(provision.Event{Phase: provision.PhaseGuest, Task: "install the NVIDIA open driver", Heartbeat: true, Elapsed: 40 * time.Second, Limit: 10 * time.Minute, Message: "now running `apt-get install …`"})
	r.Report(provision.Event{Phase: provision.PhaseGuest, Task: "install the NVIDIA open driver", Status: provision.StatusChanged, Elapsed: 95 * time.Second})
	r.Report(provision.Event{Phase: provision.PhaseGuest, Task: "install vLLM", Status: provision.StatusSkipped, Message: "disabled"})
	r.Report(provision.Event{Phase: provision.PhaseGuest, Task: "wait for vLLM", Heartbeat: true, Elapsed: 12 * time.Second, Limit: 20 * time.Minute, Message: "waiting for vLLM /health 200 (unit active/running, restarts 0, 6s so far)"})
	want := "  … wait for cloud-init in VM 140 (at most 20m0s)\n" +
		"  … install the NVIDIA open driver: still running: 40s of at most 10m0s; now running `apt-get install …`\n" +
		"✓ install the NVIDIA open driver [changed] (1m35s)\n" +
		"↷ install vLLM: disabled\n" +
		"  … wait for vLLM: still running: 12s of at most 20m0s; waiting for vLLM /health 200 (unit active/running, restarts 0)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if strings.Contains(b.String(), "\x1b[") {
		t.Error("colour codes on a non-terminal")
	}
	if st := (style{color: true}); st.ok() == "✓" || (style{}).ok() != "✓" {
		t.Error("colour style does not paint, or the plain one does")
	}
}

func TestRecapHasTheTotalTime(t *testing.T) {
	got := recap(provision.Summary{OK: 8, Changed: 10}, time.Now().Add(-4*time.Minute))
	if !strings.HasPrefix(got, "10 changed, 8 unchanged in 4m0") {
		t.Errorf("recap %q", got)
	}
}

func TestColourOnlyOnATerminalWithoutNO_COLOR(t *testing.T) {
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	for _, tc := range []struct {
		terminal bool
		vars     map[string]string
		want     bool
	}{
		{true, map[string]string{"TERM": "xterm-256color"}, true},
		{true, map[string]string{"TERM": "xterm", "NO_COLOR": ""}, true}, // empty does not count (no-color.org)
		{true, map[string]string{"TERM": "xterm", "NO_COLOR": "1"}, false},
		{true, map[string]string{"TERM": "dumb"}, false},
		{false, map[string]string{"TERM": "xterm"}, false},
	} {
		if got := colorAllowed(tc.terminal, env(tc.vars)); got != tc.want {
			t.Errorf("terminal=%v %v: colour %v, want %v", tc.terminal, tc.vars, got, tc.want)
		}
	}
}
