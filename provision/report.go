// Package provision is aimachine's public facade: Plan, Deploy, Verify and Destroy a
// catalog VM on Proxmox VE and turn it into a GPU LLM server.
package provision

import "time"

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
