package schema

import (
	"encoding/json"
	"testing"
)

// Every schema compiles, and each rejects a camelCase key and a missing required key.
func TestSchemasCompileAndAreStrict(t *testing.T) {
	for name, valid := range map[string]string{
		"error.schema.json":         `{"message":"boom"}`,
		"deploy-event.schema.json":  `{"type":"event","time":"2026-12-05T21:00:00Z","phase":"guest","task":"install the driver","status":"","elapsed_seconds":12.5,"limit_seconds":600,"heartbeat":true}`,
		"deploy-result.schema.json": `{"type":"result","ok":true,"vm":"vm","created":true,"rolled_back":false,"guest_phase":true,"summary":{"ok":1,"changed":2,"failed":0,"seconds":3},"reports_dir":"reports"}`,
		"verify.schema.json":        `{"vm":"vm","ok":true,"checks":[{"name":"n","pass":true,"evidence":"e"}],"sessions":2}`,
		"fleet-result.schema.json":  `{"type":"fleet","command":"deploy","ok":true,"results":[{"vm":"a","node":"pve1","result":"ok","changed":3,"seconds":1.5}]}`,
		"plan.schema.json":          `{"vm":"vm","exists":false,"owned":false,"running":false,"infrastructure":[{"action":"create","symbol":"+","summary":"s"}],"changes":{"infrastructure":1,"guest":1,"total":2}}`,
	} {
		if err := Validate(name, []byte(valid)); err != nil {
			t.Errorf("%s rejects a valid document: %v", name, err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(valid), &m); err != nil {
			t.Fatal(err)
		}
		m["runId"] = "x"
		bad, _ := json.Marshal(m)
		if Validate(name, bad) == nil {
			t.Errorf("%s accepts a camelCase key", name)
		}
	}
	if Validate("deploy-result.schema.json", []byte(`{"type":"result","ok":false,"vm":"vm","created":false,"rolled_back":false,"guest_phase":false,"summary":{"ok":0,"changed":0,"failed":0,"seconds":0},"reports_dir":"r"}`)) == nil {
		t.Error("a failed result without its error passes")
	}
}

func TestNonSnakeKeys(t *testing.T) {
	var v any
	_ = json.Unmarshal([]byte(`{"ok":1,"a":[{"RunID":1}],"b":{"x-y":2}}`), &v)
	if got := NonSnakeKeys(v); len(got) != 2 {
		t.Errorf("got %q", got)
	}
}
