package steps

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportFence: steps drive the tool only through its public API (provision, its guest and
// pve packages, catalog) and the simulator only through what a user has: its endpoint (sim,
// container) and its control API (simclient) — never the fake API or guest directly.
func TestImportFence(t *testing.T) {
	const mod = "github.com/aimachine/aimachine/"
	allowed := map[string]bool{
		mod + "provision": true, mod + "provision/guest": true, mod + "provision/pve": true, mod + "catalog": true,
		mod + "fakes/sim": true, mod + "fakes/container": true, mod + "fakes/simclient": true, mod + "steps": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if strings.HasPrefix(p, mod) && !allowed[p] {
				t.Errorf("%s imports %s: steps use only the public provision API and the simulator's endpoint and control API", f, p)
			}
		}
	}
}
