package fleet

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// DefaultParallel is how many VMs a command works on at once unless told otherwise.
const DefaultParallel = 4

// Result is what a command did to one VM.
type Result struct {
	VM   string
	Node string
	// Result is the word of the recap: ok, failed, skipped, deleted, absent, kept ...
	Result  string
	Err     error
	Changed int
	Took    time.Duration
}

// Failed reports whether the VM's command failed.
func (r Result) Failed() bool { return r.Err != nil }

// Options tune Run.
type Options struct {
	// Parallel bounds the VMs worked on at once (0 = DefaultParallel).
	Parallel int
	// FailFast starts no further VM once one failed (those already running finish, and a VM
	// they created is rolled back or kept by the usual rules); the rest are "skipped".
	FailFast bool
}

// Run calls fn for every VM, at most o.Parallel at a time, and returns the results in the
// order of vms. A failure does not stop the others unless o.FailFast.
func Run(ctx context.Context, vms []string, o Options, fn func(ctx context.Context, vm string) Result) []Result {
	n := o.Parallel
	if n <= 0 {
		n = DefaultParallel
	}
	out := make([]Result, len(vms))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := ""
	for i, vm := range vms {
		sem <- struct{}{}
		mu.Lock()
		stop := o.FailFast && failed != ""
		mu.Unlock()
		if stop || ctx.Err() != nil {
			<-sem
			why := "not started: " + failed + " failed (--fail-fast)"
			if !stop {
				why = "not started: " + context.Cause(ctx).Error()
			}
			out[i] = Result{VM: vm, Result: "skipped", Err: fmt.Errorf("%s", why)}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			r := fn(ctx, vm)
			r.VM = vm
			if r.Took == 0 {
				r.Took = time.Since(start)
			}
			if r.Result == "" {
				r.Result = "ok"
				if r.Err != nil {
					r.Result = "failed"
				}
			}
			out[i] = r
			if r.Err != nil {
				mu.Lock()
				if failed == "" {
					failed = vm
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// Failures counts the failed results.
func Failures(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Failed() {
			n++
		}
	}
	return n
}

// Table writes the recap: VM, node, result, changed, time, and the error of a failed VM.
func Table(w io.Writer, rs []Result, total time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tNODE\tRESULT\tCHANGED\tTIME")
	for _, r := range rs {
		node := r.Node
		if node == "" {
			node = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.VM, node, r.Result, r.Changed, r.Took.Round(100*time.Millisecond))
	}
	_ = tw.Flush()
	ok, failed := 0, 0
	for _, r := range rs {
		if r.Failed() {
			failed++
		} else {
			ok++
		}
	}
	fmt.Fprintf(w, "%d %s: %d ok, %d failed, in %s\n", len(rs), plural(len(rs), "VM", "VMs"), ok, failed, total.Round(100*time.Millisecond))
	for _, r := range rs {
		if r.Failed() {
			msg, _, _ := strings.Cut(r.Err.Error(), "\n")
			fmt.Fprintf(w, "  %s: %s\n", r.VM, msg)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Lines hands out writers that prefix every line with its VM's name and write whole lines
// only, so the progress of VMs running at once never interleaves within a line.
type Lines struct {
	mu    sync.Mutex
	w     io.Writer
	width int
}

// NewLines writes to w; names are padded to the longest of vms.
func NewLines(w io.Writer, vms []string) *Lines {
	l := &Lines{w: w}
	for _, v := range vms {
		l.width = max(l.width, len(v))
	}
	return l
}

// For returns the writer of one VM.
func (l *Lines) For(vm string) io.Writer {
	return &lineWriter{l: l, prefix: fmt.Sprintf("%-*s │ ", l.width, vm)}
}

type lineWriter struct {
	l      *Lines
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := w.buf[:i+1]
		w.l.mu.Lock()
		_, err := io.WriteString(w.l.w, w.prefix+string(line))
		w.l.mu.Unlock()
		w.buf = w.buf[i+1:]
		if err != nil {
			return len(p), err
		}
	}
}
