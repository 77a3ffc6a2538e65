package main

import (
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/aimachine/aimachine/provision"
)

// The --json output of plan, deploy and verify. Every key is snake_case; docs/json.md
// documents the shapes and docs/schema/*.schema.json pins them (json_test.go checks the
// commands' output against them).

// jsonStream writes one JSON object per line (deploy --json: the events, then the result).
type jsonStream struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newJSONStream(w io.Writer) *jsonStream { return &jsonStream{enc: json.NewEncoder(w)} }

func (s *jsonStream) write(v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.enc.Encode(v)
}

// jsonEvent is one progress event.
type jsonEvent struct {
	Type           string  `json:"type"` // "event"
	Time           string  `json:"time"`
	Phase          string  `json:"phase"`
	Task           string  `json:"task"`
	Status         string  `json:"status"` // "" while running; ok | changed | failed | skipped
	Message        string  `json:"message,omitempty"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	LimitSeconds   float64 `json:"limit_seconds,omitempty"`
	Heartbeat      bool    `json:"heartbeat,omitempty"`
}

func (s *jsonStream) event(e provision.Event) {
	s.write(jsonEvent{Type: "event", Time: time.Now().UTC().Format(time.RFC3339Nano), Phase: e.Phase, Task: e.Task,
		Status: string(e.Status), Message: e.Message, ElapsedSeconds: e.Elapsed.Seconds(), LimitSeconds: e.Limit.Seconds(), Heartbeat: e.Heartbeat})
}

// jsonSummary is the recap of a run.
type jsonSummary struct {
	OK      int     `json:"ok"`
	Changed int     `json:"changed"`
	Failed  int     `json:"failed"`
	Seconds float64 `json:"seconds"`
}

func summaryJSON(s provision.Summary, start time.Time) jsonSummary {
	return jsonSummary{OK: s.OK, Changed: s.Changed, Failed: s.Failed, Seconds: time.Since(start).Seconds()}
}

// jsonError is a failure: what, where, and what to try next.
type jsonError struct {
	Message string `json:"message"`
	Phase   string `json:"phase,omitempty"`
	Task    string `json:"task,omitempty"`
	Hint    string `json:"hint,omitempty"`
	Log     string `json:"log,omitempty"`
	Bundle  string `json:"bundle,omitempty"`
}

func errorJSON(err error) *jsonError {
	if err == nil {
		return nil
	}
	out := &jsonError{Message: err.Error()}
	var te *provision.TaskError
	if errors.As(err, &te) {
		out.Phase, out.Task, out.Hint, out.Log, out.Bundle = te.Phase, te.Task, te.Hint, te.Log, te.Bundle
	}
	return out
}

// jsonDeployResult is the last line of deploy --json.
type jsonDeployResult struct {
	Type       string      `json:"type"` // "result"
	OK         bool        `json:"ok"`
	VM         string      `json:"vm"`
	VMID       int         `json:"vmid,omitempty"`
	Node       string      `json:"node,omitempty"`
	IP         string      `json:"ip,omitempty"`
	RunID      string      `json:"run_id,omitempty"`
	Created    bool        `json:"created"`
	RolledBack bool        `json:"rolled_back"`
	GuestPhase bool        `json:"guest_phase"`
	Summary    jsonSummary `json:"summary"`
	ReportsDir string      `json:"reports_dir"`
	Evidence   string      `json:"evidence,omitempty"`
	Error      *jsonError  `json:"error,omitempty"`
}

// jsonVerify is verify --json.
type jsonVerify struct {
	VM       string      `json:"vm"`
	OK       bool        `json:"ok"`
	Checks   []jsonCheck `json:"checks"`
	Sessions int         `json:"sessions"`
	Error    *jsonError  `json:"error,omitempty"`
}

type jsonCheck struct {
	Name     string `json:"name"`
	Pass     bool   `json:"pass"`
	Evidence string `json:"evidence"`
}

func verifyJSON(vm string, rep provision.VerifyReport, err error) jsonVerify {
	out := jsonVerify{VM: vm, OK: err == nil && rep.OK(), Checks: []jsonCheck{}, Sessions: rep.Sessions, Error: errorJSON(err)}
	for _, c := range rep.Checks {
		out.Checks = append(out.Checks, jsonCheck{Name: c.Name, Pass: c.Pass, Evidence: c.Evidence})
	}
	return out
}
