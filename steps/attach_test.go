package steps

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/guest"
)

// A failed step's attachments, as godog writes them into the cucumber report through the
// after-step hook, never hold the API token secret or the password — in any form they are
// printed in (raw, URL-encoded, JSON-escaped) — while still carrying the evidence.
func TestFailedStepAttachmentsRedactSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tg, err := startTarget(ctx, func(k string) string { return map[string]string{"AIMACHINE_TARGET": TargetInProcess}[k] }, DefaultTags)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	e := tg.endpoint()
	token, secret, password := e.APIToken(), e.TokenSecret, e.Password
	if len(secret) < 8 || len(password) < 8 {
		t.Fatalf("the simulator's secrets are too short to test redaction: %q %q", secret, password)
	}
	// An extra password with characters that change under URL and JSON encoding.
	const odd = `p@ss w0rd&"x"=1/`
	forms := []string{secret, token, password, odd, url.QueryEscape(odd), strings.Trim(mustJSON(odd), `"`)}

	bundle := t.TempDir()
	for f, body := range map[string]string{
		"failure.txt":    "task failed\nAuthorization: PVEAPIToken=" + token + "\n",
		"transcript.log": "$ curl -d password=" + url.QueryEscape(odd) + " -d password=" + password + "\n",
	} {
		if err := os.WriteFile(filepath.Join(bundle, f), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	report := filepath.Join(t.TempDir(), "cucumber.json")
	const feature = `Feature: redaction
  @catalog
  Scenario: a step that fails with secrets in its evidence
    Given a step logs the credentials and fails
`
	st := godog.TestSuite{
		Name: "redaction",
		ScenarioInitializer: func(sc *godog.ScenarioContext) {
			w := register(sc)
			sc.Step(`^a step logs the credentials and fails$`, func(ctx context.Context) error {
				w.t = tg // the simulator's request log is attached too
				o := provision.ConnOptions{APIToken: token, Password: password}
				w.secrets = append(secretsOf(o), secretsOf(provision.ConnOptions{Password: odd})...)
				// A password login puts the password in the simulator's request log.
				c, err := provision.Connect(ctx, provision.ConnOptions{Endpoint: e.BaseURL, CAFile: e.CAFile,
					Username: e.Username, Password: password, Simulator: true})
				if err != nil {
					return fmt.Errorf("connect: %w", err)
				}
				if _, err := c.API().Resources(ctx, "vm"); err != nil {
					return err
				}
				w.logf("connect with token %s, password %s, form password=%s, json %s", token, password, url.QueryEscape(odd), mustJSON(odd))
				w.transcribe(guest.Entry{Cmd: "echo " + secret, Stdout: password + "\n"})
				return &provision.TaskError{Phase: "infrastructure", Task: "connect", Err: errors.New("401 for " + token),
					Hint: "check the password " + password, Log: "password=" + url.QueryEscape(odd), Bundle: bundle}
			})
		},
		Options: &godog.Options{Format: "cucumber:" + report, Output: io.Discard, Strict: true, NoColors: true,
			FeatureContents: []godog.Feature{{Name: "redaction.feature", Contents: []byte(feature)}}},
	}
	if code := st.Run(); code == 0 {
		t.Fatal("the failing scenario passed")
	}
	suite.mu.Lock()
	suite.failed = ""
	suite.mu.Unlock()

	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep []struct {
		Elements []struct {
			Steps []struct {
				Result struct {
					Status string `json:"status"`
				} `json:"result"`
				Embeddings []struct {
					Name string `json:"name"`
					Data string `json:"data"`
				} `json:"embeddings"`
			} `json:"steps"`
		} `json:"elements"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep) != 1 || len(rep[0].Elements) != 1 || len(rep[0].Elements[0].Steps) != 1 {
		t.Fatalf("unexpected report:\n%s", data)
	}
	step := rep[0].Elements[0].Steps[0]
	if step.Result.Status != "failed" {
		t.Fatalf("step status %q, want failed", step.Result.Status)
	}
	got := map[string]string{}
	for _, em := range step.Embeddings {
		b, err := base64.StdEncoding.DecodeString(em.Data)
		if err != nil {
			t.Fatal(err)
		}
		got[em.Name] = string(b)
	}
	for _, name := range []string{"scenario.log", "error.txt", "failure.txt", "transcript.log", "api-requests.json"} {
		body, ok := got[name]
		if !ok {
			t.Errorf("no %s attached (have %d attachments)", name, len(got))
			continue
		}
		for _, f := range forms {
			if strings.Contains(body, f) {
				t.Errorf("%s holds the secret %q:\n%s", name, f, body)
			}
		}
	}
	// The evidence is still there, with the secrets replaced.
	for name, want := range map[string]string{
		"scenario.log":      "connect with token",
		"error.txt":         "401 for",
		"failure.txt":       "PVEAPIToken=",
		"api-requests.json": "/access/ticket",
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("%s lacks %q:\n%s", name, want, got[name])
		}
	}
	for _, name := range []string{"scenario.log", "error.txt", "failure.txt", "transcript.log"} {
		if !strings.Contains(got[name], guest.Redacted) {
			t.Errorf("%s shows no %s marker:\n%s", name, guest.Redacted, got[name])
		}
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
