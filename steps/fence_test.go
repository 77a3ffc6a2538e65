package steps

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportFence: steps drive the tool only through its public API (provision, its guest,
// pve and readiness packages, catalog) and the simulator only through what a user has: its endpoint (sim,
// container) and its control API (simclient) — never the fake API or guest directly.
func TestImportFence(t *testing.T) {
	const mod = "github.com/aimachine/aimachine/"
	allowed := map[string]bool{
		mod + "provision": true, mod + "provision/guest": true, mod + "provision/pve": true, mod + "provision/readiness": true, mod + "catalog": true,
		mod + "fakes/sim": true, mod + "fakes/container": true, mod + "fakes/simclient": true, mod + "steps": true,
		mod + "provision/fleet": true, // the public fan-out and placement behind `aimachine deploy --all`
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

// TestSimulatorFence: of the simulator packages, steps use only what starts a simulator and
// describes its endpoint; sim.Target (Info, Control, Close) is all they hold. The in-process
// *sim.Sim and the container's *container.Sim also expose the fake API and guests (API(),
// Guests(), Container()): naming those types, or asserting a Target back to them, would be a
// shortcut no real deployment has.
func TestSimulatorFence(t *testing.T) {
	const mod = "github.com/aimachine/aimachine/"
	allowed := map[string]map[string]bool{
		mod + "fakes/sim":       {"Target": true, "Endpoint": true, "Start": true, "Options": true},
		mod + "fakes/container": {"Start": true, "Options": true, "DockerAvailable": true},
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		fset := token.NewFileSet()
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]string{} // local name -> import path
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if allowed[p] == nil {
				continue
			}
			name := p[strings.LastIndex(p, "/")+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			names[name] = p
		}
		ast.Inspect(af, func(n ast.Node) bool {
			if ta, ok := n.(*ast.TypeAssertExpr); ok {
				if x, ok := ta.X.(*ast.SelectorExpr); ok && x.Sel.Name == "sim" {
					t.Errorf("%s: asserts the simulator target to another type: steps hold it only as sim.Target", fset.Position(ta.Pos()))
				}
			}
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Obj == nil {
				if p, ok := names[id.Name]; ok && !allowed[p][sel.Sel.Name] {
					t.Errorf("%s: uses %s.%s: steps hold a simulator only as sim.Target (endpoint and control API)", fset.Position(sel.Pos()), id.Name, sel.Sel.Name)
				}
			}
			return true
		})
	}
}
