package heartbeat

import (
	"sync"
	"time"
)

// Beat is one open task that has been running for a while.
type Beat struct {
	Key     string
	Elapsed time.Duration // since the task started
	Limit   time.Duration // its bound, 0 when unknown
	Waiting string        // the task's last progress note ("" when none)
}

// Ticker watches open tasks. Its callback runs on the Ticker's own goroutine.
type Ticker struct {
	every time.Duration
	emit  func(Beat)
	now   func() time.Time

	mu   sync.Mutex
	open map[string]*open
	stop chan struct{}
	done chan struct{}
}

type open struct {
	start, last time.Time
	limit       time.Duration
	waiting     string
}

// Start watches tasks and calls emit for each one running longer than every (then again
// every interval); every <= 0 starts nothing and Stop is a no-op.
func Start(every time.Duration, emit func(Beat)) *Ticker {
	t := &Ticker{every: every, emit: emit, now: time.Now, open: map[string]*open{}, stop: make(chan struct{}), done: make(chan struct{})}
	if every <= 0 {
		close(t.done)
		return t
	}
	poll := max(every/5, time.Millisecond)
	go func() {
		defer close(t.done)
		tk := time.NewTicker(poll)
		defer tk.Stop()
		for {
			select {
			case <-t.stop:
				return
			case <-tk.C:
				for _, b := range t.due() {
					t.emit(b)
				}
			}
		}
	}()
	return t
}

// due returns the beats owed now and marks them sent.
func (t *Ticker) due() []Beat {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var out []Beat
	for k, o := range t.open {
		if now.Sub(o.last) >= t.every {
			o.last = now
			out = append(out, Beat{Key: k, Elapsed: now.Sub(o.start), Limit: o.limit, Waiting: o.waiting})
		}
	}
	return out
}

// Started opens a task (a second call for an open task only updates its limit).
func (t *Ticker) Started(key string, limit time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if o, ok := t.open[key]; ok {
		if limit > 0 {
			o.limit = limit
		}
		return
	}
	now := t.now()
	t.open[key] = &open{start: now, last: now, limit: limit}
}

// SetLimit sets the bound of an open task (0: none).
func (t *Ticker) SetLimit(key string, limit time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if o, ok := t.open[key]; ok {
		o.limit = limit
	}
}

// IsOpen reports whether key is a running task.
func (t *Ticker) IsOpen(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.open[key]
	return ok
}

// Note records what an open task is waiting for.
func (t *Ticker) Note(key, waiting string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if o, ok := t.open[key]; ok {
		o.waiting = waiting
	}
}

// Finished closes a task.
func (t *Ticker) Finished(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.open, key)
}

// Stop ends the watch; no callback runs after it returns.
func (t *Ticker) Stop() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
}
