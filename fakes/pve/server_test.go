package pve

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

func rawGet(t *testing.T, e *testEnv, path string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.ts.URL+path, nil)
	req.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
	res, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func TestErrorBodyByVersion(t *testing.T) {
	for _, tc := range []struct {
		version string
		body    string
		q35Line string
	}{
		{"8.2.4", `{"data":null}`, "501"},
		{"8.4.1", `{"data":null,"message":"Configuration file 'nodes/pve/qemu-server/1000.conf' does not exist\n"}`, "501"},
		{"9.0.3", `{"data":null,"message":"Configuration file 'nodes/pve/qemu-server/1000.conf' does not exist\n"}`, "510"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			e := newEnv(t, WithPVEVersion(tc.version))
			res, b := rawGet(t, e, "/api2/json/nodes/pve/qemu/1000/config")
			if res.Status != "500 Configuration file 'nodes/pve/qemu-server/1000.conf' does not exist" || !jsonEqual(b, []byte(tc.body)) {
				t.Fatalf("%s %s", res.Status, b)
			}
			vm := mustCreate(t, e.root, 140, minimalVM("q", proxmox.VirtualMachineOption{Name: "hostpci0", Value: "0000:01:00,pcie=1"}))
			if ex := startExit(t, vm); ex != "q35 machine model is not enabled at /usr/share/perl5/PVE/QemuServer/PCI.pm line "+tc.q35Line+"." {
				t.Fatalf("exit %q", ex)
			}
		})
	}
}

func TestAuthDelay(t *testing.T) {
	s := New(WithAuthDelay(150 * time.Millisecond))
	ts := s.StartTLS()
	defer ts.Close()
	hc := ts.Client()
	start := time.Now()
	res, err := hc.Get(ts.URL + "/api2/json/version")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Status != "401 No ticket" || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("%s after %s", res.Status, time.Since(start))
	}
}

func TestTokenHeaderURLEncoded(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("GET", e.ts.URL+"/api2/json/version", nil)
	req.Header.Set("Authorization", "PVEAPIToken=root%40pam%21aimachine="+DefaultTokenSecret)
	res, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("url-encoded token: %s", res.Status)
	}
}

func TestHTTP1Only(t *testing.T) {
	e := newEnv(t)
	tr := &http.Transport{TLSClientConfig: e.hc.Transport.(*http.Transport).TLSClientConfig.Clone(), ForceAttemptHTTP2: true}
	res, err := (&http.Client{Transport: tr}).Get(e.ts.URL + "/api2/json/version")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 1 {
		t.Fatalf("negotiated %s, pveproxy speaks HTTP/1.1 only", res.Proto)
	}
}

func TestFingerprintMatchesServedCert(t *testing.T) {
	e := newEnv(t)
	res, _ := rawGet(t, e, "/api2/json/version")
	cert := res.TLS.PeerCertificates[0]
	nodes := e.getData(t, "/nodes").([]any)
	if fp := nodes[0].(map[string]any)["ssl_fingerprint"]; fp != e.s.Fingerprint() || len(e.s.Fingerprint()) != 95 {
		t.Fatalf("fingerprint %v vs %s", fp, e.s.Fingerprint())
	}
	if !bytes.Contains(e.s.CACertPEM(), []byte("BEGIN CERTIFICATE")) || cert.Subject.CommonName == "" {
		t.Fatal("CA PEM / cert")
	}
}

func TestControlAPI(t *testing.T) {
	guestHits := 0
	e := newEnv(t, WithControlHandler("guest", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		guestHits++
		io.WriteString(w, r.URL.Path)
	})))
	post := func(path, body string) int {
		t.Helper()
		res, err := e.hc.Post(e.ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if c := post("/_sim/faults", `{"method":"GET","path":"/version","status":596,"reason":"Connection timed out","count":2}`); c != 200 {
		t.Fatalf("faults: %d", c)
	}
	for i := 0; i < 2; i++ {
		res, _ := rawGet(t, e, "/api2/json/version")
		if res.Status != "596 Connection timed out" {
			t.Fatalf("fault %d: %s", i, res.Status)
		}
	}
	if res, _ := rawGet(t, e, "/api2/json/version"); res.StatusCode != 200 {
		t.Fatalf("fault count exceeded: %s", res.Status)
	}
	if c := post("/_sim/iommu", `{"node":"pve","enabled":false}`); c != 200 {
		t.Fatalf("iommu: %d", c)
	}
	devs := e.getData(t, "/nodes/pve/hardware/pci").([]any)
	if g := devs[0].(map[string]any)["iommugroup"]; g != -1.0 {
		t.Fatalf("iommugroup with IOMMU off: %v", g)
	}
	if c := post("/_sim/pci/busy", `{"node":"pve","id":"0000:01:00.0","vmid":141}`); c != 200 {
		t.Fatalf("busy: %d", c)
	}
	if c := post("/_sim/task-faults", `{"type":"qmcreate","exitstatus":"got timeout"}`); c != 200 {
		t.Fatalf("task-faults: %d", c)
	}
	if c := post("/_sim/latency", `{"latency":"1ms"}`); c != 200 {
		t.Fatalf("latency: %d", c)
	}
	if c := post("/_sim/faults", `{"status":500}`); c != 400 {
		t.Fatalf("fault without path accepted: %d", c)
	}
	res, err := e.hc.Get(e.ts.URL + "/_sim/state")
	if err != nil {
		t.Fatal(err)
	}
	var snap Snapshot
	json.NewDecoder(res.Body).Decode(&snap)
	res.Body.Close()
	if snap.Reservations["pve 0000:01:00.0"] != 141 || snap.IOMMU["pve"] {
		t.Fatalf("state %+v", snap)
	}
	ctx := ctxT(t)
	node, _ := e.root.Node(ctx, "pve")
	task, err := node.NewVirtualMachine(ctx, 140, minimalVM("x")...)
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitTask(t, ctx, task); ex != "got timeout" {
		t.Fatalf("injected create failure: %q", ex)
	}
	if res, _ := rawGet(t, e, "/_sim/guest/boot"); res.StatusCode != 200 || guestHits != 1 {
		t.Fatalf("control handler: %d %d", res.StatusCode, guestHits)
	}
	if c := post("/_sim/reset", ``); c != 200 {
		t.Fatalf("reset: %d", c)
	}
	snap = e.s.Snapshot()
	if len(snap.Reservations) != 0 || !snap.IOMMU["pve"] {
		t.Fatalf("after reset %+v", snap)
	}
}

func TestNewHTTPServer(t *testing.T) {
	s := New(WithAuthDelay(0))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.NewHTTPServer(ln.Addr().String())
	go hs.ServeTLS(ln, "", "")
	defer hs.Close()
	hc := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}}
	req, _ := http.NewRequest("GET", "https://"+ln.Addr().String()+"/api2/json/nodes/pve/foo", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Proto != "HTTP/1.1" || res.Status != "501 Method 'GET /nodes/pve/foo' not implemented" {
		t.Fatalf("%s %s", res.Proto, res.Status)
	}
}
