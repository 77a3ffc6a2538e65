package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff: Initial, doubled each attempt, capped at Max, ±Jitter.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	// Jitter is the fraction (0..1) of each delay that is randomised.
	Jitter float64
}

// Default is the backoff for API and readiness waits: 250ms, 500ms, 1s … capped at 10s.
var Default = Backoff{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2}

// Delay returns the wait before attempt n+1 (n counts from 1).
func (b Backoff) Delay(n int) time.Duration {
	if b.Initial <= 0 {
		return 0
	}
	d := b.Initial
	for i := 1; i < n && (b.Max <= 0 || d < b.Max); i++ {
		d *= 2
	}
	if b.Max > 0 && d > b.Max {
		d = b.Max
	}
	if b.Jitter > 0 {
		j := float64(d) * b.Jitter
		d = time.Duration(float64(d) - j + rand.Float64()*2*j)
	}
	return d
}

// Classifier decides whether err is worth another attempt; reason says why (for the progress line).
type Classifier func(err error) (reason string, retry bool)

// Wait describes one bounded wait.
type Wait struct {
	// Description says what is waited for, e.g. "wait for the guest agent of VM 140".
	Description string
	Backoff     Backoff
	// Retryable classifies errors; nil means every error is fatal.
	Retryable Classifier
	// MaxAttempts bounds the attempts besides ctx (0 = until ctx is done).
	MaxAttempts int
	// OnRetry is told about every retried failure (progress output); may be nil.
	OnRetry func(attempt int, reason string, err error, next time.Duration)
}

// GaveUpError is a wait that ran out of time or attempts while the error stayed retryable.
type GaveUpError struct {
	Description string
	Attempts    int
	Elapsed     time.Duration
	Last        error // the last retryable error
	Cause       error // ctx.Err() or nil when MaxAttempts ran out
}

func (e *GaveUpError) Error() string {
	why := fmt.Sprintf("gave up after %d attempts", e.Attempts)
	if e.Cause != nil {
		why = fmt.Sprintf("%s (%v after %s)", why, e.Cause, e.Elapsed.Round(time.Millisecond))
	}
	if e.Last != nil {
		return fmt.Sprintf("%s: %s: last error: %v", e.Description, why, e.Last)
	}
	return e.Description + ": " + why
}

// Unwrap returns the context error and the last error, so errors.Is works on both.
func (e *GaveUpError) Unwrap() []error {
	var errs []error
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	if e.Last != nil {
		errs = append(errs, e.Last)
	}
	return errs
}

// Do runs fn until it returns nil, a fatal error, or the wait is over. A context error
// returned by fn is never retried.
func (w Wait) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	start := time.Now()
	var last error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return &GaveUpError{Description: w.Description, Attempts: attempt - 1, Elapsed: time.Since(start), Last: last, Cause: err}
		}
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			if ctx.Err() != nil {
				return &GaveUpError{Description: w.Description, Attempts: attempt, Elapsed: time.Since(start), Last: err, Cause: ctx.Err()}
			}
			return err
		}
		reason, ok := "", false
		if w.Retryable != nil {
			reason, ok = w.Retryable(err)
		}
		if !ok {
			return err
		}
		last = err
		if w.MaxAttempts > 0 && attempt >= w.MaxAttempts {
			return &GaveUpError{Description: w.Description, Attempts: attempt, Elapsed: time.Since(start), Last: err}
		}
		next := w.Backoff.Delay(attempt)
		if w.OnRetry != nil {
			w.OnRetry(attempt, reason, err, next)
		}
		if err := sleep(ctx, next); err != nil {
			return &GaveUpError{Description: w.Description, Attempts: attempt, Elapsed: time.Since(start), Last: last, Cause: err}
		}
	}
}

// Until is Do with the Default backoff: wait (bounded by ctx) until fn succeeds, retrying
// the errors retryable accepts.
func Until(ctx context.Context, description string, retryable Classifier, fn func(ctx context.Context) error) error {
	return Wait{Description: description, Backoff: Default, Retryable: retryable}.Do(ctx, fn)
}

// ErrNotYet is what a readiness probe returns while the thing is not ready; Pending retries it.
var ErrNotYet = errors.New("not ready yet")

// Pending retries ErrNotYet (and errors wrapping it) and nothing else.
func Pending(err error) (string, bool) {
	if errors.Is(err, ErrNotYet) {
		return err.Error(), true
	}
	return "", false
}

// Any combines classifiers: the first that retries wins.
func Any(cs ...Classifier) Classifier {
	return func(err error) (string, bool) {
		for _, c := range cs {
			if c == nil {
				continue
			}
			if r, ok := c(err); ok {
				return r, true
			}
		}
		return "", false
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
