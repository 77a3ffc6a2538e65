package catalog

import (
	"os"
	"strings"
	"testing"
)

// node: auto: "auto" cannot name a node, and some catalog node must have room for the VM.
func TestNodeAuto(t *testing.T) {
	data, err := os.ReadFile("testdata/valid-fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ from, to, want string }{
		"reserved node name": {"- {name: pve4,", "- {name: auto,", `nodes[3].name: "auto" is reserved`},
		"no node has room":   {"memory_mb: 32768", "memory_mb: 262144", `vms[0].node: auto: no catalog node declares room for 8 cores, 262144 MB and storage "local-lvm"`},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(strings.Replace(string(data), tc.from, tc.to, 1)), "fleet.yaml")
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
