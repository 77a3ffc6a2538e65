package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Task is one idempotent step.
type Task interface {
	Name() string
	// Check only observes: done reports whether the machine is already as wanted.
	Check(ctx context.Context) (done bool, err error)
	// Apply changes the machine towards the wanted state.
	Apply(ctx context.Context) error
}

// Waiter marks a task whose Apply only waits (cloud-init, a service becoming ready): a
// successful run reports ok, not changed.
type Waiter interface {
	WaitOnly() bool
}

// Messenger is a task that describes its outcome (e.g. which driver it chose); the message
// goes into the task's finished event.
type Messenger interface {
	Message() string
}

// Status of a finished task.
type Status string

const (
	OK      Status = "ok"
	Changed Status = "changed"
	Failed  Status = "failed"
)

// Event is a task starting (Status "") or finishing.
type Event struct {
	Task    string
	Status  Status
	Message string
	Elapsed time.Duration
}

// Failure is the error of a failed task. Tasks may return a *Failure themselves to add a
// hint and the relevant log; the engine fills in the task name.
type Failure struct {
	Task string
	Err  error
	Hint string
	Log  string
}

func (f *Failure) Error() string {
	msg := f.Task + ": " + f.Err.Error()
	if f.Hint != "" {
		msg += " (hint: " + f.Hint + ")"
	}
	return msg
}

func (f *Failure) Unwrap() error { return f.Err }

// Fail builds a *Failure (the task name is filled in by the engine).
func Fail(err error, hint, log string) *Failure {
	return &Failure{Err: err, Hint: hint, Log: log}
}

// Recap counts finished tasks.
type Recap struct {
	OK, Changed, Failed int
	Events              []Event
}

// Options tune Run.
type Options struct {
	// Report receives every event (may be nil).
	Report func(Event)
	// Invalidate is called after every Apply, so batched facts are gathered again.
	Invalidate func()
	// Recover is called when a task fails with an error matching Retryable (a dropped SSH
	// connection): it reconnects, and the task is checked and applied again once.
	Recover   func(ctx context.Context) error
	Retryable func(error) bool
}

// Run runs tasks in order and stops at the first failure, returning *Failure.
func Run(ctx context.Context, tasks []Task, o Options) (Recap, error) {
	var rc Recap
	report := o.Report
	if report == nil {
		report = func(Event) {}
	}
	for _, t := range tasks {
		start := time.Now()
		report(Event{Task: t.Name()})
		st, msg, err := runTask(ctx, t, o)
		if err != nil && o.Retryable != nil && o.Recover != nil && o.Retryable(err) && ctx.Err() == nil {
			report(Event{Task: t.Name(), Message: "connection lost, reconnecting: " + err.Error()})
			if rerr := o.Recover(ctx); rerr != nil {
				err = fmt.Errorf("%w; reconnecting failed: %v", err, rerr)
			} else {
				if o.Invalidate != nil {
					o.Invalidate()
				}
				st, msg, err = runTask(ctx, t, o)
			}
		}
		if m, ok := t.(Messenger); ok && err == nil {
			if tm := m.Message(); tm != "" {
				if msg != "" {
					msg += "; "
				}
				msg += tm
			}
		}
		ev := Event{Task: t.Name(), Status: st, Message: msg, Elapsed: time.Since(start)}
		if err != nil {
			var f *Failure
			if !errors.As(err, &f) {
				f = &Failure{Err: err}
			}
			if f.Task == "" {
				f.Task = t.Name()
			}
			ev.Status, ev.Message = Failed, f.Err.Error()
			rc.Failed++
			rc.Events = append(rc.Events, ev)
			report(ev)
			return rc, f
		}
		if st == OK {
			rc.OK++
		} else {
			rc.Changed++
		}
		rc.Events = append(rc.Events, ev)
		report(ev)
	}
	return rc, nil
}

func runTask(ctx context.Context, t Task, o Options) (Status, string, error) {
	done, err := t.Check(ctx)
	if err != nil {
		return Failed, "", err
	}
	if done {
		return OK, "", nil
	}
	if err := t.Apply(ctx); err != nil {
		if o.Invalidate != nil {
			o.Invalidate()
		}
		return Failed, "", err
	}
	if o.Invalidate != nil {
		o.Invalidate()
	}
	done, err = t.Check(ctx)
	if err != nil {
		return Failed, "", err
	}
	if !done {
		return Failed, "", errors.New("still not in the wanted state after applying (the change did not take)")
	}
	if w, ok := t.(Waiter); ok && w.WaitOnly() {
		return OK, "waited", nil
	}
	return Changed, "", nil
}

// Checked is the read-only verdict on one task: done, or what Apply would do and why.
type Checked struct {
	Task string
	Done bool
	// Wait is a not-done task whose Apply only waits (Waiter): not a change.
	Wait bool
	// Why is the task's own message (Messenger) after its check, when it gives one.
	Why string
	// Err is a check that failed: Run would stop at this task.
	Err error
}

// Check runs every task's Check and nothing else (no Apply): the plan of a run. A failed
// check is recorded and the next tasks are still checked (their verdicts may then assume the
// machine as it is, not as the failed task would leave it).
func Check(ctx context.Context, tasks []Task) ([]Checked, error) {
	var out []Checked
	for _, t := range tasks {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		done, err := t.Check(ctx)
		c := Checked{Task: t.Name(), Done: done && err == nil, Err: err}
		if w, ok := t.(Waiter); ok && !c.Done && err == nil {
			c.Wait = w.WaitOnly()
		}
		if m, ok := t.(Messenger); ok && err == nil {
			c.Why = m.Message()
		}
		out = append(out, c)
	}
	return out, nil
}
