package pve

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

// testEnv is a started fake with go-proxmox clients for root@pam (ticket) and the root token.
type testEnv struct {
	s     *Server
	ts    *httptest.Server
	root  *proxmox.Client // root@pam with password (ticket + CSRF)
	token *proxmox.Client // root@pam!aimachine
	hc    *http.Client
}

func newEnv(t *testing.T, opts ...Option) *testEnv {
	t.Helper()
	base := []Option{WithAuthDelay(0), WithTimeScale(0)}
	s := New(append(base, opts...)...)
	ts := s.StartTLS()
	t.Cleanup(ts.Close)
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}}
	url := ts.URL + "/api2/json"
	return &testEnv{
		s: s, ts: ts, hc: hc,
		root: proxmox.NewClient(url, proxmox.WithHTTPClient(hc),
			proxmox.WithCredentials(&proxmox.Credentials{Username: "root@pam", Password: DefaultRootPassword})),
		token: proxmox.NewClient(url, proxmox.WithHTTPClient(hc), proxmox.WithAPIToken(DefaultTokenID, DefaultTokenSecret)),
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitTask waits for a go-proxmox task and returns its exit status.
func waitTask(t *testing.T, ctx context.Context, task *proxmox.Task) string {
	t.Helper()
	if task == nil {
		t.Fatal("nil task")
	}
	if err := task.Wait(ctx, 20*time.Millisecond, 20*time.Second); err != nil {
		t.Fatalf("wait %s: %v", task.UPID, err)
	}
	if !task.IsCompleted {
		t.Fatalf("task %s not completed", task.UPID)
	}
	return task.ExitStatus
}
