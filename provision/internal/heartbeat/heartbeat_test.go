package heartbeat

import (
	"sync"
	"testing"
	"time"
)

// A task open longer than the interval gets beats with its elapsed time, limit and last note;
// a task that finished gets none after that, and nothing is emitted after Stop.
func TestBeatsOnlyForOpenTasks(t *testing.T) {
	var mu sync.Mutex
	var beats []Beat
	got := make(chan struct{}, 100)
	tk := Start(5*time.Millisecond, func(b Beat) {
		mu.Lock()
		beats = append(beats, b)
		mu.Unlock()
		got <- struct{}{}
	})
	tk.Started("slow", time.Minute)
	tk.Note("slow", "waiting for apt")
	tk.Started("done", 0)
	tk.Finished("done")
	for range 3 {
		<-got
	}
	tk.Stop()
	mu.Lock()
	n := len(beats)
	for _, b := range beats {
		if b.Key != "slow" || b.Limit != time.Minute || b.Waiting != "waiting for apt" || b.Elapsed < 5*time.Millisecond {
			t.Errorf("beat %+v", b)
		}
	}
	mu.Unlock()
	time.Sleep(20 * time.Millisecond) // nothing may arrive after Stop (a count, not a timing)
	mu.Lock()
	defer mu.Unlock()
	if len(beats) != n {
		t.Errorf("%d beats after Stop", len(beats)-n)
	}
}

func TestZeroIntervalStartsNothing(t *testing.T) {
	tk := Start(0, func(Beat) { t.Error("beat with interval 0") })
	tk.Started("x", 0)
	tk.Stop()
}
