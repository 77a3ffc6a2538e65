package steps

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ReportsDir is where the run's reports go (AIMACHINE_REPORTS, default "reports").
func ReportsDir() string { return reportsDir() }

// CucumberReport is the path of the cucumber JSON report of a run.
func CucumberReport() string { return filepath.Join(reportsDir(), "cucumber.json") }

// cucumber is the part of godog's cucumber JSON a check needs.
type cucumber []struct {
	URI      string `json:"uri"`
	Elements []struct {
		Name  string `json:"name"`
		Line  int    `json:"line"`
		Steps []struct {
			Keyword string `json:"keyword"`
			Name    string `json:"name"`
			Result  struct {
				Status string `json:"status"`
			} `json:"result"`
		} `json:"steps"`
	} `json:"elements"`
}

// CheckReport reads a cucumber JSON report and fails when it holds no scenario, or when any
// step is anything but passed: failed, skipped, pending, undefined or ambiguous. (godog's
// strict mode already fails undefined and pending steps; a skipped step means a scenario did
// not run to its end.)
func CheckReport(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read the cucumber report: %w", err)
	}
	var rep cucumber
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	counts := map[string]int{}
	scenarios := 0
	var bad []string
	for _, f := range rep {
		for _, sc := range f.Elements {
			scenarios++
			if len(sc.Steps) == 0 {
				bad = append(bad, fmt.Sprintf("%s:%d %q has no steps", f.URI, sc.Line, sc.Name))
			}
			for _, st := range sc.Steps {
				counts[st.Result.Status]++
				if st.Result.Status != "passed" {
					bad = append(bad, fmt.Sprintf("%s:%d %q: %s%s is %s", f.URI, sc.Line, sc.Name, st.Keyword, st.Name, st.Result.Status))
				}
			}
		}
	}
	if scenarios == 0 {
		return fmt.Errorf("%s holds no scenario: the tag selection matched nothing", path)
	}
	if len(bad) > 0 {
		var cs []string
		for k, v := range counts {
			cs = append(cs, fmt.Sprintf("%d %s", v, k))
		}
		sort.Strings(cs)
		return fmt.Errorf("%s: %d scenarios, steps: %s; not passed:\n  %s", path, scenarios, strings.Join(cs, ", "), strings.Join(bad, "\n  "))
	}
	return nil
}
