package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/aimachine/aimachine/provision"
)

// style is how status lines look: colour only on a terminal, and never with NO_COLOR set
// or TERM=dumb.
type style struct{ color bool }

func styleFor(w io.Writer) style {
	f, ok := w.(*os.File)
	return style{color: ok && colorAllowed(term.IsTerminal(int(f.Fd())), os.LookupEnv)}
}

// colorAllowed: a terminal, no NO_COLOR (present and not empty, whatever its value:
// https://no-color.org), and a TERM other than dumb.
func colorAllowed(terminal bool, lookup func(string) (string, bool)) bool {
	if !terminal {
		return false
	}
	if v, _ := lookup("NO_COLOR"); v != "" {
		return false
	}
	t, _ := lookup("TERM")
	return t != "dumb"
}

func (s style) paint(code, text string) string {
	if !s.color {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s style) ok() string      { return s.paint("32", "✓") }
func (s style) failed() string  { return s.paint("31", "✗") }
func (s style) skipped() string { return s.paint("33", "↷") }
func (s style) dim(t string) string {
	return s.paint("2", t)
}

// renderer prints progress as ✓ / ✗ / ↷ lines on stderr. A failed task's ✗ line is held
// back: the command's error names that task with its details and hint, and is printed once
// by fail. With json set, events go to it as JSON lines instead (--json).
type renderer struct {
	mu      sync.Mutex
	w       io.Writer
	verbose bool
	style   style
	json    *jsonStream
	failed  []provision.Event // held-back ✗ events, in order
}

func (r *renderer) Report(e provision.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json != nil {
		r.json.event(e)
		if e.Status == provision.StatusFailed {
			r.failed = append(r.failed, e)
		}
		return
	}
	msg := ""
	if e.Message != "" {
		msg = ": " + e.Message
	}
	took := ""
	if e.Elapsed >= time.Second {
		took = fmt.Sprintf(" (%s)", e.Elapsed.Round(100*time.Millisecond))
	}
	st := r.style
	switch {
	case e.Heartbeat:
		fmt.Fprintf(r.w, "  … %s: %s\n", e.Task, heartbeatText(e))
	case e.Status == provision.StatusOK:
		fmt.Fprintf(r.w, "%s %s%s%s\n", st.ok(), e.Task, msg, st.dim(took))
	case e.Status == provision.StatusChanged:
		fmt.Fprintf(r.w, "%s %s %s%s%s\n", st.ok(), e.Task, st.paint("33", "[changed]"), msg, st.dim(took))
	case e.Status == provision.StatusFailed:
		r.failed = append(r.failed, e)
	case e.Status == provision.StatusSkipped:
		fmt.Fprintf(r.w, "%s %s%s\n", st.skipped(), e.Task, msg)
	default:
		if e.Message != "" {
			fmt.Fprintf(r.w, "  … %s%s\n", e.Task, msg)
		} else if e.Limit > 0 { // a bounded wait starts: say its bound
			fmt.Fprintf(r.w, "  … %s (at most %s)\n", e.Task, e.Limit)
		} else if r.verbose {
			fmt.Fprintf(r.w, "  … %s\n", e.Task)
		}
	}
}

var soFar = regexp.MustCompile(`, [0-9hms.]+ so far`)

// heartbeatText is "still running: 40s of at most 10m0s; waiting for …".
func heartbeatText(e provision.Event) string {
	s := "still running: " + e.Elapsed.Round(time.Second).String()
	if e.Limit > 0 {
		s += " of at most " + e.Limit.String()
	}
	if e.Message != "" {
		// The note's own "(…, 6s so far)" is older than the heartbeat's elapsed time.
		s += "; " + soFar.ReplaceAllString(e.Message, "")
	} else {
		s += "; no progress reported yet"
	}
	return s
}

// fail prints err once with fail, then the ✗ line of any failed task that err does not
// tell (none in the usual case: the error is the failed task's, a rollback failure is joined).
func (r *renderer) fail(ctx context.Context, err error) int {
	code := fail(ctx, r.w, err)
	r.mu.Lock()
	defer r.mu.Unlock()
	var te *provision.TaskError
	errors.As(err, &te)
	for _, e := range r.failed {
		if (te != nil && strings.HasPrefix(te.Task, e.Task)) || strings.Contains(err.Error(), e.Message) {
			continue // err tells it already
		}
		fmt.Fprintf(r.w, "%s %s: %s\n", r.style.failed(), e.Task, e.Message)
	}
	r.failed = nil
	return code
}

// printErr prints a failure with its log tail and the path of its log bundle.
func printErr(w io.Writer, err error) {
	fmt.Fprintf(w, "%s %v\n", styleFor(w).failed(), err)
	var te *provision.TaskError
	if !errors.As(err, &te) {
		return
	}
	if te.Log != "" {
		fmt.Fprintln(w, "  log tail:")
		for _, l := range strings.Split(te.Log, "\n") {
			fmt.Fprintln(w, "    "+l)
		}
	}
	if te.Bundle != "" {
		fmt.Fprintln(w, "  logs: "+te.Bundle)
	}
}

// fail prints err and returns the exit code 1. When ctx was cancelled (Ctrl-C or SIGTERM) it
// first says so: the error below then tells what was rolled back or kept.
func fail(ctx context.Context, stderr io.Writer, err error) int {
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "%s interrupted (Ctrl-C or SIGTERM): stopped at the task below; re-run the same command to converge\n", styleFor(stderr).failed())
	}
	printErr(stderr, err)
	return 1
}

// summaryLine is the recap: "3 changed, 9 unchanged in 4m12s".
func summaryLine(s provision.Summary) string {
	line := fmt.Sprintf("%d changed, %d unchanged", s.Changed, s.OK)
	if s.Failed > 0 {
		line += fmt.Sprintf(", %d failed", s.Failed)
	}
	return line
}

// recap is summaryLine with the run's total time.
func recap(s provision.Summary, start time.Time) string {
	return fmt.Sprintf("%s in %s", summaryLine(s), time.Since(start).Round(100*time.Millisecond))
}
