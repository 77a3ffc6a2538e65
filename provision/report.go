// Package provision is aimachine's public facade: Plan, Deploy, Verify and Destroy a
// catalog VM on Proxmox VE and turn it into a GPU LLM server.
package provision

import (
	"strings"
	"sync"
	"time"

	"github.com/aimachine/aimachine/provision/internal/heartbeat"
)

// Status of a task in a run.
type Status string

const (
	StatusOK      Status = "ok"      // already as wanted
	StatusChanged Status = "changed" // this run changed it
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped"
)

// Event is one progress report: a task starting, waiting, or finishing.
type Event struct {
	Phase   string // infrastructure | guest | verify
	Task    string // human name, e.g. "create VM 140"
	Status  Status // "" while running
	Message string // detail: what is being waited for, the error, ...
	Elapsed time.Duration
	// Limit bounds a wait (the start event of a bounded task, and its heartbeats); 0 = none.
	Limit time.Duration
	// Heartbeat marks a "still running" event of a task open longer than the heartbeat
	// interval (DefaultHeartbeat): Elapsed is the time so far, Message the last progress note.
	Heartbeat bool
}

// DefaultHeartbeat is how long a task runs before its first heartbeat, and the interval of the
// next ones.
const DefaultHeartbeat = 10 * time.Second

// beatReporter passes events on and adds heartbeats for tasks that run long. Reports are
// serialised: the heartbeats come from another goroutine.
type beatReporter struct {
	mu   sync.Mutex
	next Reporter
	t    *heartbeat.Ticker
	open map[string]Event // the start event of each open task, by key
	// doing is the command running now, by phase ("" when none): what a heartbeat waits for
	// when the task gave no progress note of its own.
	doing map[string]string
}

// withHeartbeat wraps rep (every 0 = DefaultHeartbeat, < 0 = no heartbeats); stop ends the
// heartbeats. A reporter that has them already is returned as it is.
func withHeartbeat(rep Reporter, every time.Duration) (Reporter, func()) {
	if _, ok := rep.(*beatReporter); ok || every < 0 {
		return rep, func() {}
	}
	if every == 0 {
		every = DefaultHeartbeat
	}
	b := &beatReporter{next: rep, open: map[string]Event{}, doing: map[string]string{}}
	b.t = heartbeat.Start(every, func(hb heartbeat.Beat) {
		b.mu.Lock()
		defer b.mu.Unlock()
		start, ok := b.open[hb.Key]
		if !ok {
			return
		}
		msg := hb.Waiting
		if d := b.doing[start.Phase]; d != "" {
			if msg != "" {
				msg += "; "
			}
			msg += "now running " + d
		}
		if msg == "" {
			msg = "no progress note yet; waiting for " + waitsOn(start.Phase)
		}
		b.next.Report(Event{Phase: start.Phase, Task: start.Task, Message: msg, Elapsed: hb.Elapsed, Limit: hb.Limit, Heartbeat: true})
	})
	return b, b.t.Stop
}

func (b *beatReporter) Report(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := e.Phase + "\x00" + e.Task
	switch {
	case e.Heartbeat:
	case e.Status != "":
		b.t.Finished(key)
		delete(b.open, key)
	case !b.t.IsOpen(key):
		b.open[key] = e
		b.t.Started(key, e.Limit)
		if e.Message != "" {
			b.t.Note(key, e.Message)
		}
	default:
		b.t.Started(key, e.Limit)
		if e.Message != "" {
			b.t.Note(key, e.Message)
		}
	}
	b.next.Report(e)
}

// Reporter receives progress. The library never prints; the CLI renders ✓ / ✗ / ↷ lines.
type Reporter interface {
	Report(Event)
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(Event)

// Report calls f.
func (f ReporterFunc) Report(e Event) { f(e) }

// Discard is a Reporter that drops everything.
var Discard Reporter = ReporterFunc(func(Event) {})

// Summary is the recap of a run, like Ansible's.
type Summary struct {
	OK, Changed, Failed int
	Tasks               []Event
}

// Add records a finished task.
func (s *Summary) Add(e Event) {
	switch e.Status {
	case StatusOK:
		s.OK++
	case StatusChanged:
		s.Changed++
	case StatusFailed:
		s.Failed++
	}
	s.Tasks = append(s.Tasks, e)
}

// TaskError is a failed task: what was done, what came back, what to try next.
type TaskError struct {
	Phase string
	Task  string
	Err   error
	Hint  string
	// Log is the relevant log tail (task log, apt / DKMS log, journal lines).
	Log string
	// Bundle is the directory of the run's log bundle (reports/<vm>-<run>/: transcript.log,
	// failure.txt) when one was written.
	Bundle string
}

func (e *TaskError) Error() string {
	msg := e.Task + ": " + e.Err.Error()
	if e.Hint != "" {
		msg += " (hint: " + e.Hint + ")"
	}
	if e.Bundle != "" {
		msg += " (logs: " + e.Bundle + ")"
	}
	return msg
}

func (e *TaskError) Unwrap() error { return e.Err }

// running records the command a phase is running now ("" when it finished).
func (b *beatReporter) running(phase, cmd string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.doing[phase] = cmd
}

// commandLine is the first line of a command, shortened, for a heartbeat.
func commandLine(cmd string) string {
	line, _, more := strings.Cut(strings.TrimSpace(cmd), "\n")
	if r := []rune(line); len(r) > 80 {
		line, more = string(r[:80]), true
	}
	if more {
		line += " …"
	}
	return "`" + line + "`"
}

// waitsOn is what a task of phase waits on when it says nothing more precise.
func waitsOn(phase string) string {
	switch phase {
	case PhaseInfra:
		return "the Proxmox VE API and its task"
	case PhaseGuest:
		return "commands on the guest over SSH"
	}
	return "the task to finish"
}

// limit sets the bound of an open task's wait (a guest task that starts or ends polling).
func (b *beatReporter) limit(phase, task string, limit time.Duration) {
	b.t.SetLimit(phase+"\x00"+task, limit)
}
