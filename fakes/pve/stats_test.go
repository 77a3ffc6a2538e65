package pve

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// expectedClass is the documented rule: GET reads; POST /access/ticket is auth; POST agent/ping reads;
// every other POST/PUT/DELETE (agent/exec included) mutates.
func expectedClass(key string) string {
	method, path, _ := strings.Cut(key, " ")
	switch {
	case path == "/access/ticket":
		return ClassAuth
	case method == "GET":
		return ClassRead
	case method == "POST" && strings.HasSuffix(path, "/agent/ping"):
		return ClassRead
	}
	return ClassMutating
}

func TestStatsMatchTable(t *testing.T) {
	sourceCalls := 0
	e := newEnv(t, WithGuestFactory(NewStaticGuestFactory()), WithStatsSource("ssh", func() any {
		sourceCalls++
		return map[string]int{"sessions": 3}
	}))
	sent := runTable(t, e, endpointTable(testKey(t, "alice@laptop")))

	res, err := e.hc.Get(e.ts.URL + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	total := 0
	for k, n := range sent {
		want[expectedClass(k)] += n
		total += n
	}
	if st.Total != total || st.Read != want[ClassRead] || st.Mutating != want[ClassMutating] || st.Auth != want[ClassAuth] {
		t.Errorf("stats total/read/mutating/auth = %d/%d/%d/%d, want %d/%d/%d/%d",
			st.Total, st.Read, st.Mutating, st.Auth, total, want[ClassRead], want[ClassMutating], want[ClassAuth])
	}
	for k, n := range sent {
		if st.ByPath[k] != n {
			t.Errorf("by_path[%q] = %d, want %d", k, st.ByPath[k], n)
		}
	}
	for k, n := range st.ByPath {
		if sent[k] != n {
			t.Errorf("by_path has %q = %d, the table sent %d", k, n, sent[k])
		}
	}
	if st.ByRoute["GET /nodes/{node}/qemu/{vmid}/config"] == 0 || st.ByStatus[501] != 3 {
		t.Errorf("by_route/by_status: %v %v", st.ByRoute, st.ByStatus)
	}
	for _, r := range buildRoutes() {
		if st.ByRoute[r.method+" "+r.pattern] == 0 {
			t.Errorf("the endpoint table never calls %s %s", r.method, r.pattern)
		}
	}
	if sourceCalls != 1 || st.Sources["ssh"] == nil {
		t.Errorf("stats source: calls %d, sources %v", sourceCalls, st.Sources)
	}

	// the request log holds no secrets
	res2, err := e.hc.Get(e.ts.URL + "/_sim/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	var log []RequestRecord
	if err := json.NewDecoder(res2.Body).Decode(&log); err != nil {
		t.Fatal(err)
	}
	if len(log) != total {
		t.Fatalf("request log has %d entries, want %d", len(log), total)
	}
	raw, _ := json.Marshal(log)
	for _, secret := range []string{DefaultTokenSecret, DefaultRootPassword, "PVE:root@pam:"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("request log leaks %q", secret)
		}
	}

	// reset: back to the initial topology, counters cleared
	resp, err := e.hc.Post(e.ts.URL+"/_sim/reset", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("reset: %v %v", resp, err)
	}
	resp.Body.Close()
	if s := e.s.Stats(); s.Total != 0 {
		t.Errorf("stats after reset: %d", s.Total)
	}
	if snap := e.s.Snapshot(); len(snap.VMs) != 0 || len(snap.Mappings) != 0 {
		t.Errorf("state after reset: %+v", snap)
	}
}

// statsAtAnswer is a ResponseWriter that notes the request count the moment the answer starts.
type statsAtAnswer struct {
	*httptest.ResponseRecorder
	s     *Server
	total int
}

func (w *statsAtAnswer) note() {
	if w.total < 0 {
		w.total = w.s.Stats().Total
	}
}
func (w *statsAtAnswer) WriteHeader(code int) { w.note(); w.ResponseRecorder.WriteHeader(code) }
func (w *statsAtAnswer) Write(b []byte) (int, error) {
	w.note()
	return w.ResponseRecorder.Write(b)
}

// A request is in Stats before its answer is written, so a client reading Stats right after a
// call always sees it (answers, API errors and injected faults alike).
func TestRequestIsRecordedBeforeItsAnswer(t *testing.T) {
	s := New(WithAuthDelay(0), WithTimeScale(0))
	tests := []struct {
		name   string
		auth   bool
		fault  bool
		status int
	}{
		{name: "answer", auth: true, status: 200},
		{name: "API error", auth: false, status: 401},
		{name: "fault", auth: true, fault: true, status: 500},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault {
				s.FailNext(FaultRule{Method: "GET", Path: "/version", Status: 500, Reason: "got timeout"})
			}
			r := httptest.NewRequest("GET", "/api2/json/version", nil)
			if tt.auth {
				r.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
			}
			w := &statsAtAnswer{ResponseRecorder: httptest.NewRecorder(), s: s, total: -1}
			s.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if w.total != i+1 {
				t.Fatalf("Stats().Total was %d when the answer was written, want %d", w.total, i+1)
			}
		})
	}
}
