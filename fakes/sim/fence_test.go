package sim_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The simulator's packages never import the tool (provision, steps), and simclient imports no fake.
func TestImportFence(t *testing.T) {
	const mod = "github.com/aimachine/aimachine/"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, pkg := range []string{"fakes/sim", "fakes/cmd/pvesim", "fakes/container", "fakes/simclient"} {
		for _, d := range deps(pkg) {
			if strings.HasPrefix(d, mod+"provision") || strings.HasPrefix(d, mod+"steps") || strings.HasPrefix(d, mod+"catalog") {
				t.Errorf("%s imports %s: fakes must not depend on the tool", pkg, d)
			}
			if pkg == "fakes/simclient" && strings.HasPrefix(d, mod+"fakes/") && d != mod+"fakes/simclient" {
				t.Errorf("simclient imports %s: it must speak HTTP only", d)
			}
		}
	}
}
