package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aimachine/aimachine/fakes/sim"
)

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReadyLine builds pvesim, runs it at time scale 0 and waits for its ready line; then the
// env file it names works against the API, and SIGTERM stops it cleanly.
func TestReadyLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "pvesim")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	state := t.TempDir()
	cmd := exec.Command(bin, "--time-scale", "0", "--state-dir", state, "--listen", "127.0.0.1:0", "--ssh-listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer // written by os/exec's copier while the test reads it
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var ready string
	select {
	case ready = <-lines:
	case <-time.After(60 * time.Second): // generous: a loaded 2-core box; the target is < 2 s
		t.Fatalf("no ready line within 60s; stderr:\n%s", stderr.String())
	}
	if !strings.HasPrefix(ready, "pvesim: ready ") {
		t.Fatalf("first stdout line = %q, want it to start with %q; stderr:\n%s", ready, "pvesim: ready ", stderr.String())
	}
	e, err := sim.LoadEndpoint(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"api=" + e.APIURL, "fingerprint=" + e.Fingerprint, "jump=" + e.JumpHost(), "env=" + e.EnvFile} {
		if !strings.Contains(ready, want) {
			t.Errorf("ready line %q lacks %q", ready, want)
		}
	}
	if strings.Contains(ready, e.TokenSecret) || strings.Contains(ready, e.Password) ||
		strings.Contains(stderr.String(), e.TokenSecret) || strings.Contains(stderr.String(), e.Password) {
		t.Error("pvesim printed a secret")
	}

	req, _ := http.NewRequest(http.MethodGet, e.APIURL+"/version", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+e.APIToken())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: sim.ClientTLSConfig(e.CAPEM)}, Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET /version with the env file's token and CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Errorf("GET /version = %s %s, want HTTP/1.1 200", resp.Proto, resp.Status)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pvesim after SIGTERM: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("pvesim did not stop within 20s of SIGTERM")
	}
	if _, err := os.Stat(e.EnvFile); err != nil {
		t.Errorf("state dir given with --state-dir must be kept: %v", err)
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, "unexpected arguments"},
		{[]string{"--listen", "nonsense", "--state-dir", t.TempDir()}, 1, "nonsense"},
		{[]string{"--topology", "/nonexistent/topo.yaml", "--listen", "127.0.0.1:0", "--ssh-listen", "127.0.0.1:0", "--state-dir", t.TempDir()}, 1, "topology"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("run(%q) printed %q on stdout; want nothing before ready", tc.args, out.String())
		}
	}
}
