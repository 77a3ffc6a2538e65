package engine

import (
	"context"
	"errors"
	"testing"
)

type fakeTask struct {
	name     string
	state    *map[string]bool
	applyErr error
	applies  int
	wait     bool
	noTake   bool
}

func (f *fakeTask) Name() string { return f.name }
func (f *fakeTask) Check(context.Context) (bool, error) {
	return (*f.state)[f.name], nil
}
func (f *fakeTask) Apply(context.Context) error {
	f.applies++
	if f.applyErr != nil {
		return f.applyErr
	}
	if !f.noTake {
		(*f.state)[f.name] = true
	}
	return nil
}
func (f *fakeTask) WaitOnly() bool { return f.wait }

func TestRunReportsChangedThenOK(t *testing.T) {
	state := map[string]bool{"b": true}
	a := &fakeTask{name: "a", state: &state}
	b := &fakeTask{name: "b", state: &state}
	w := &fakeTask{name: "w", state: &state, wait: true}
	var events []Event
	inv := 0
	rc, err := Run(context.Background(), []Task{a, b, w}, Options{Report: func(e Event) { events = append(events, e) }, Invalidate: func() { inv++ }})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Changed != 1 || rc.OK != 2 || rc.Failed != 0 {
		t.Fatalf("recap %+v", rc)
	}
	if b.applies != 0 {
		t.Fatal("a done task was applied")
	}
	if len(events) != 6 || inv != 2 {
		t.Fatalf("events %d invalidations %d", len(events), inv)
	}
	rc, _ = Run(context.Background(), []Task{a, b, w}, Options{})
	if rc.Changed != 0 || rc.OK != 3 {
		t.Fatalf("second run %+v", rc)
	}
}

func TestRunStopsAtFirstFailure(t *testing.T) {
	state := map[string]bool{}
	a := &fakeTask{name: "a", state: &state, applyErr: Fail(errors.New("boom"), "try x", "log tail")}
	b := &fakeTask{name: "b", state: &state}
	rc, err := Run(context.Background(), []Task{a, b}, Options{})
	var f *Failure
	if !errors.As(err, &f) || f.Task != "a" || f.Hint != "try x" || f.Log != "log tail" {
		t.Fatalf("failure %#v", err)
	}
	if b.applies != 0 || rc.Failed != 1 {
		t.Fatalf("run continued: %+v", rc)
	}
	c := &fakeTask{name: "c", state: &state, noTake: true}
	_, err = Run(context.Background(), []Task{c}, Options{})
	if !errors.As(err, &f) || f.Task != "c" {
		t.Fatalf("an apply that did not take must fail: %v", err)
	}
}

var errLost = errors.New("lost")

type flaky struct {
	fakeTask
	fails int
}

func (f *flaky) Apply(ctx context.Context) error {
	if f.fails > 0 {
		f.fails--
		return errLost
	}
	return f.fakeTask.Apply(ctx)
}

func TestRunRecoversOnceFromALostConnection(t *testing.T) {
	state := map[string]bool{}
	ft := &flaky{fakeTask: fakeTask{name: "x", state: &state}, fails: 1}
	recovered := 0
	o := Options{Retryable: func(err error) bool { return errors.Is(err, errLost) }, Recover: func(context.Context) error { recovered++; return nil }}
	rc, err := Run(context.Background(), []Task{ft}, o)
	if err != nil || recovered != 1 || rc.Changed != 1 {
		t.Fatalf("rc %+v err %v recovered %d", rc, err, recovered)
	}
	state = map[string]bool{}
	ft = &flaky{fakeTask: fakeTask{name: "x", state: &state}, fails: 2}
	if _, err := Run(context.Background(), []Task{ft}, o); !errors.Is(err, errLost) {
		t.Fatalf("second loss must fail: %v", err)
	}
}

// Check never applies: it reports each task's verdict and goes on after a failed check.
func TestCheckOnlyObserves(t *testing.T) {
	applied := 0
	mk := func(name string, done bool, err error) Task {
		return &fakeCheckTask{name: name, done: done, err: err, applied: &applied}
	}
	got, err := Check(context.Background(), []Task{mk("a", true, nil), mk("b", false, nil), mk("c", false, errors.New("boom")), mk("d", true, nil)})
	if err != nil || applied != 0 || len(got) != 4 {
		t.Fatalf("got %+v, err %v, %d applies", got, err, applied)
	}
	if !got[0].Done || got[1].Done || got[2].Err == nil || !got[3].Done {
		t.Fatalf("verdicts %+v", got)
	}
}

type fakeCheckTask struct {
	name    string
	done    bool
	err     error
	applied *int
}

func (f *fakeCheckTask) Name() string                        { return f.name }
func (f *fakeCheckTask) Check(context.Context) (bool, error) { return f.done, f.err }
func (f *fakeCheckTask) Apply(context.Context) error         { *f.applied++; return nil }
