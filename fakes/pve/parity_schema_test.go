package pve

import (
	"strings"
	"testing"
)

// TestRoutesInSchema: every route the fake models is an operation of the published API, and every
// operation a client needs (clients.go) exists there.
func TestRoutesInSchema(t *testing.T) {
	for _, rt := range buildRoutes() {
		if schemaOpOf(rt) == nil {
			t.Errorf("route %s %s is not in the PVE API schema", rt.method, rt.pattern)
		}
	}
	known := map[string]bool{}
	for _, op := range apiSchema.Operations {
		known[opKey(op)] = true
	}
	for _, n := range clientNeeds {
		if !known[n.op] {
			t.Errorf("%s needs %q, which is not in the PVE API schema", n.client, n.op)
		}
		if _, ok := clientNames[n.client]; !ok || n.src == "" {
			t.Errorf("client need %+v: unknown client or no source", n)
		}
	}
}

// TestCoverageCounts: the three classes add up, and every modelled operation is validated too.
func TestCoverageCounts(t *testing.T) {
	cov, _ := coverage()
	n := map[string]int{}
	for _, c := range cov {
		n[c]++
	}
	if n[CoverModelled] != len(buildRoutes()) {
		t.Errorf("%d modelled operations, %d routes", n[CoverModelled], len(buildRoutes()))
	}
	if n[CoverModelled]+n[CoverValidated]+n[CoverNotModelled] != 649 {
		t.Errorf("counts %v do not add up to 649", n)
	}
	if !strings.Contains(ParityMarkdown(), "| modelled | ") {
		t.Error("PARITY.md lacks the coverage counts")
	}
}
