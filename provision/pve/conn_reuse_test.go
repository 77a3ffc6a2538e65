package pve

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// reuseServer is a TLS API that counts the TCP connections it accepts and the requests that
// arrived on a resumed TLS session. closeFirst answers the first request with
// "Connection: close" (pveproxy closes idle keep-alive connections too), so the next request
// needs a new connection.
func reuseServer(t *testing.T, closeFirst bool) (*httptest.Server, func() (conns, resumed int), ConnConfig) {
	t.Helper()
	var mu sync.Mutex
	conns, resumed, reqs := 0, 0, 0
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs++
		first := reqs == 1
		if r.TLS != nil && r.TLS.DidResume {
			resumed++
		}
		mu.Unlock()
		if first && closeFirst {
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api2/json/version":
			fmt.Fprint(w, `{"data":{"version":"9.1.3","release":"9.1","repoid":"x"}}`)
		default:
			fmt.Fprint(w, `{"data":{"name":"vm","digest":"abc"}}`)
		}
	}))
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	sum := sha256.Sum256(ts.Certificate().Raw)
	cfg := ConnConfig{URL: ts.URL + "/api2/json", TokenID: "root@pam!t", TokenSecret: "s3cret", Fingerprint: formatFingerprint(sum[:])}
	return ts, func() (int, int) { mu.Lock(); defer mu.Unlock(); return conns, resumed }, cfg
}

// Every request of a run goes over one kept-alive TLS connection: a new connection costs a
// TCP and a TLS handshake, two round trips before the request, on every call.
func TestRequestsShareOneConnection(t *testing.T) {
	_, counts, cfg := reuseServer(t, false)
	api, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 5 {
		if _, err := api.VMConfig(ctx, "pve", 140); err != nil {
			t.Fatal(err)
		}
	}
	if conns, _ := counts(); conns != 1 {
		t.Fatalf("5 requests opened %d connections, want 1 (keep-alive)", conns)
	}
}

// The version does not change under a run: it is read once.
func TestVersionIsReadOnce(t *testing.T) {
	ts, _, cfg := reuseServer(t, false)
	_ = ts
	api, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := api.(*adapter)
	for range 3 {
		if v, err := a.Version(context.Background()); err != nil || v != "9.1.3" {
			t.Fatalf("version %q, %v", v, err)
		}
	}
	if a.version != "9.1.3" {
		t.Fatalf("version not kept: %q", a.version)
	}
}

// A connection the server closed is replaced by one that resumes the TLS session (a session
// ticket from the first handshake): no certificate exchange, and with TLS 1.2 one round trip
// less.
func TestANewConnectionResumesTheTLSSession(t *testing.T) {
	_, counts, cfg := reuseServer(t, true)
	api, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if _, err := api.VMConfig(ctx, "pve", 140); err != nil {
			t.Fatal(err)
		}
	}
	conns, resumed := counts()
	if conns != 2 || resumed != 1 {
		t.Fatalf("%d connections, %d resumed sessions; want 2 and 1 (the second resumes)", conns, resumed)
	}
}
