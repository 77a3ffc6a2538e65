package steps

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckReport(t *testing.T) {
	const passed = `[{"uri":"features/x.feature","elements":[{"name":"a","line":3,"steps":[{"keyword":"Given ","name":"x","result":{"status":"passed"}}]}]}]`
	const skipped = `[{"uri":"features/x.feature","elements":[{"name":"a","line":3,"steps":[{"keyword":"Given ","name":"x","result":{"status":"failed"}},{"keyword":"Then ","name":"y","result":{"status":"skipped"}}]}]}]`
	for _, tc := range []struct {
		name, json, want string
	}{
		{"all passed", passed, ""},
		{"skipped after a failure", skipped, `"a": Then y is skipped`},
		{"undefined", strings.ReplaceAll(passed, "passed", "undefined"), "is undefined"},
		{"pending", strings.ReplaceAll(passed, "passed", "pending"), "is pending"},
		{"nothing selected", `[]`, "holds no scenario"},
		{"scenario without steps", `[{"uri":"f","elements":[{"name":"a","line":1,"steps":[]}]}]`, "has no steps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "cucumber.json")
			if err := os.WriteFile(p, []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			err := CheckReport(p)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckReport: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckReport = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
