package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errBusy = errors.New("busy")
var errFatal = errors.New("fatal")

func busy(err error) (string, bool) { return "busy", errors.Is(err, errBusy) }

func fast() Backoff { return Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond} }

func TestRetriesOnlyRetryableErrors(t *testing.T) {
	tests := []struct {
		name      string
		errs      []error
		wantErr   error
		wantCalls int
	}{
		{"succeeds after two busy answers", []error{errBusy, errBusy, nil}, nil, 3},
		{"fatal error stops at once", []error{errFatal, nil}, errFatal, 1},
		{"busy then fatal", []error{errBusy, errFatal}, errFatal, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := Wait{Description: "x", Backoff: fast(), Retryable: busy}.Do(context.Background(), func(context.Context) error {
				e := tt.errs[calls]
				calls++
				return e
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if calls != tt.wantCalls {
				t.Fatalf("calls = %d, want %d", calls, tt.wantCalls)
			}
		})
	}
}

func TestGivesUpAtDeadlineWithDescriptionAndLastError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := Wait{Description: "wait for the agent", Backoff: fast(), Retryable: busy}.Do(ctx, func(context.Context) error { return errBusy })
	var g *GaveUpError
	if !errors.As(err, &g) {
		t.Fatalf("err = %v, want *GaveUpError", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errBusy) {
		t.Fatalf("err %v should match the deadline and the last error", err)
	}
	if g.Attempts < 2 {
		t.Fatalf("attempts = %d, want several", g.Attempts)
	}
}

func TestMaxAttempts(t *testing.T) {
	calls := 0
	err := Wait{Description: "x", Backoff: fast(), Retryable: busy, MaxAttempts: 3}.Do(context.Background(), func(context.Context) error {
		calls++
		return errBusy
	})
	if calls != 3 || !errors.Is(err, errBusy) {
		t.Fatalf("calls = %d err = %v", calls, err)
	}
}

func TestCancelStopsTheBackoffWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Wait{Description: "x", Backoff: Backoff{Initial: time.Hour}, Retryable: busy}.Do(ctx, func(context.Context) error { return errBusy })
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the wait ignored the cancelled context")
	}
}

func TestBackoffDoublesAndCaps(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 1 * time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %s, want %s", i+1, got, w*time.Millisecond)
		}
	}
	j := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2}
	for i := 0; i < 50; i++ {
		if d := j.Delay(1); d < 80*time.Millisecond || d > 120*time.Millisecond {
			t.Fatalf("jittered delay %s outside ±20%%", d)
		}
	}
}
