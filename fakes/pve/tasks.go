package pve

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// task is one worker (fork_worker) with its UPID and log.
type task struct {
	upid      string
	node      string
	pid       int
	pstart    int64
	starttime int64
	typ       string
	id        string
	user      string // bare user
	tokenid   string
	lines     []string
	done      bool
	cancel    chan struct{}
	finished  chan struct{}
}

// taskCtx is what a worker body sees.
type taskCtx struct {
	s        *Server
	t        *task
	warnings int
}

func (tc *taskCtx) logf(format string, a ...any) {
	tc.s.mu.Lock()
	tc.t.lines = append(tc.t.lines, fmt.Sprintf(format, a...))
	tc.s.mu.Unlock()
}

func (tc *taskCtx) warnf(format string, a ...any) {
	tc.warnings++
	tc.logf("WARN: "+format, a...)
}

// sleep waits a realistic duration scaled by the time-scale; false when the task was stopped.
func (tc *taskCtx) sleep(d time.Duration) bool {
	d = tc.s.Scale(d)
	if d <= 0 {
		select {
		case <-tc.t.cancel:
			return false
		default:
			return true
		}
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-tc.t.cancel:
		return false
	}
}

var errInterrupted = fmt.Errorf("received interrupt")

// startTask forks a worker: the API call returns the UPID at once, body runs in the background.
// A body's error becomes "TASK ERROR: <text>" (one line, like PVE's worker).
func (s *Server) startTask(node, typ, id string, who *identity, body func(tc *taskCtx) error) string {
	return s.startTaskCleanup(node, typ, id, who, body, nil)
}

// startTaskCleanup is startTask with onError, which runs inside the worker (before the task
// ends, without s.mu) whenever it fails: from body's error or from an injected task fault, so
// that an injected failure leaves what the real worker's own error path leaves.
func (s *Server) startTaskCleanup(node, typ, id string, who *identity, body func(tc *taskCtx) error, onError func()) string {
	s.mu.Lock()
	s.pidNext += 1 + int(time.Now().UnixNano()%7)
	ns := s.st.node(node)
	var pstart int64
	if ns != nil {
		pstart = int64(time.Since(ns.bootTime)/time.Second) * 100
	}
	t := &task{
		node: node, pid: s.pidNext, pstart: pstart, starttime: time.Now().Unix(),
		typ: typ, id: id, cancel: make(chan struct{}), finished: make(chan struct{}),
	}
	if who != nil {
		t.user, t.tokenid = who.user, who.tokenID
	}
	t.upid = fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", node, t.pid, t.pstart, t.starttime, typ, id, who.authUser())
	s.tasks[t.upid] = t
	injected, hasInjected := s.takeTaskFault(typ)
	s.mu.Unlock()

	go func() {
		tc := &taskCtx{s: s, t: t}
		var err error
		if hasInjected {
			tc.sleep(time.Second)
			err = fmt.Errorf("%s", injected)
		} else {
			err = body(tc)
		}
		if err != nil && onError != nil {
			onError()
		}
		s.mu.Lock()
		switch {
		case err != nil:
			msg := strings.TrimRight(err.Error(), "\n")
			msg = strings.ReplaceAll(msg, "\n", " ")
			t.lines = append(t.lines, "TASK ERROR: "+msg)
		case tc.warnings > 0:
			t.lines = append(t.lines, fmt.Sprintf("TASK WARNINGS: %d", tc.warnings))
		default:
			t.lines = append(t.lines, "TASK OK")
		}
		t.done = true
		s.firePCITriggers(t.typ)
		close(t.finished)
		s.mu.Unlock()
		s.log().Debug("pve task finished", "upid", t.upid, "exit", exitStatus(t.lines))
	}()
	return t.upid
}

// WaitTask blocks until the task ends (for in-process tests) and returns its exitstatus.
func (s *Server) WaitTask(upid string, timeout time.Duration) (string, error) {
	s.mu.Lock()
	t, ok := s.tasks[upid]
	s.mu.Unlock()
	if !ok {
		return "", errf("no such task %s", upid)
	}
	select {
	case <-t.finished:
	case <-time.After(timeout):
		return "", errf("task %s still running after %s", upid, timeout)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return exitStatus(t.lines), nil
}

func exitStatus(lines []string) string {
	if len(lines) == 0 {
		return "unexpected status"
	}
	last := lines[len(lines)-1]
	switch {
	case last == "TASK OK":
		return "OK"
	case strings.HasPrefix(last, "TASK WARNINGS: "):
		return strings.TrimPrefix(last, "TASK ")
	case strings.HasPrefix(last, "TASK ERROR: "):
		return strings.TrimPrefix(last, "TASK ERROR: ")
	}
	return "unexpected status"
}

var reUPID = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$`)

func (s *Server) lookupTask(node, upid string) (*task, error) {
	if !reUPID.MatchString(upid) {
		return nil, errParam("upid", "unable to parse worker upid")
	}
	t, ok := s.tasks[upid]
	if !ok || t.node != node {
		return nil, errParam("upid", "no such task")
	}
	return t, nil
}

func handleTaskStatus(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupTask(c.vars["node"], c.vars["upid"])
	if err != nil {
		return nil, err
	}
	m := map[string]any{
		"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime,
		"type": t.typ, "id": t.id, "user": t.user, "status": "running",
	}
	if t.tokenid != "" {
		m["tokenid"] = t.tokenid
	}
	if t.done {
		m["status"] = "stopped"
		m["exitstatus"] = exitStatus(t.lines)
	}
	return m, nil
}

func handleTaskLog(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupTask(c.vars["node"], c.vars["upid"])
	if err != nil {
		return nil, err
	}
	start, limit := 0, 50
	if c.p.has("start") {
		start, _ = strconv.Atoi(c.p.get("start"))
	}
	if c.p.has("limit") {
		limit, _ = strconv.Atoi(c.p.get("limit"))
	}
	lines := t.lines
	if len(lines) == 0 {
		lines = []string{"no content"}
	}
	out := []map[string]any{}
	for i := start; i < len(lines) && len(out) < limit; i++ {
		out = append(out, map[string]any{"n": i + 1, "t": lines[i]})
	}
	return withTotal{data: out, total: len(lines)}, nil
}

func handleTaskStop(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupTask(c.vars["node"], c.vars["upid"])
	if err != nil {
		return nil, err
	}
	if !t.done {
		select {
		case <-t.cancel:
		default:
			close(t.cancel)
		}
	}
	return nil, nil
}
