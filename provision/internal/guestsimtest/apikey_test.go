package guestsimtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/internal/encode/encodetest"
	"github.com/aimachine/aimachine/provision/internal/tasks"
)

// Every hostile corpus value that can be an API key is deployed as the vLLM key by the guest
// phase (environment file read by systemd, header file read by curl) and works against the
// simulated vLLM: 200 with it, 401 without; nothing runs. The others are refused by the key
// check before any command, for the reason the corpus value carries.
func TestHostileAPIKeysReachVLLM(t *testing.T) {
	w := start(t)
	r := w.dial(t)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(t *testing.T, cmd string) string {
		t.Helper()
		res, err := r.Run(ctx, cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return res.Stdout
	}
	for i, v := range encodetest.Corpus() {
		t.Run(v.Name, func(t *testing.T) {
			refuse := strings.IndexFunc(v.S, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 ||
				strings.HasSuffix(v.S, " ") || len(v.S) > tasks.MaxAPIKey
			if err := tasks.ValidateAPIKey(v.S); (err != nil) != refuse {
				t.Fatalf("ValidateAPIKey: %v, want refused=%v", err, refuse)
			}
			o := w.opts(fmt.Sprintf("key%d", i), nil)
			o.Getenv = func(string) string { return v.S }
			_, err := provision.RunGuestPhase(ctx, r, w.cat, w.vm, o)
			if refuse {
				if err == nil || !strings.Contains(err.Error(), "the vLLM API key") {
					t.Fatalf("want the key refused, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("guest phase with the key: %v", err)
			}
			// The client sends the header as the tool's probe does (curl --header @FILE).
			h := tasks.RenderVLLMAuthHeader(&tasks.VLLMParams{APIKey: v.S})
			if err := r.Put(ctx, "/tmp/client.header", 0o600, []byte(h)); err != nil {
				t.Fatal(err)
			}
			url := "http://192.168.0.140:8000/v1/models"
			if got := run(t, "sudo curl -s -o /dev/null -w '%{http_code}' --header @/tmp/client.header "+url+"; echo; curl -s -o /dev/null -w '%{http_code}' "+url); got != "200\n401" {
				t.Errorf("with the key, without: %q, want 200 and 401", got)
			}
			if run(t, "test -e "+encodetest.Canary+" && echo RAN || echo clean") != "clean\n" {
				t.Fatal("a command in the key ran in the guest")
			}
		})
	}
}
