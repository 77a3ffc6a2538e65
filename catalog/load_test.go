package catalog

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestLoadRecordsThePositionOfEveryField(t *testing.T) {
	c, err := Load("../infrastructure-catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Positions as an editor shows them in the sample (line:column, 1-based).
	for path, want := range map[string]Position{
		"version":                       {14, 10},
		"network":                       {16, 1},
		"network.subnet":                {18, 11},
		"nodes[0]":                      {24, 5},
		"nodes[0].storages[1]":          {27, 23},
		"vms[0]":                        {30, 5},
		"vms[0].id":                     {30, 9},
		"vms[0].gpu":                    {47, 5},
		"vms[0].gpu.pci_address":        {49, 20},
		"vms[0].gpu.expect.pci_id":      {54, 17},
		"vms[0].cloud_init.ssh_keys[0]": {59, 11},
		"vms[2].onboot":                 {112, 13},
	} {
		got, ok := c.Position(path)
		if !ok || got != want {
			t.Errorf("Position(%q) = %v, %v; want %v", path, got, ok, want)
		}
	}
	if _, ok := c.Position("vms[1].gpu"); ok {
		t.Error("vms[1] has no gpu in the file, yet it has a position")
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty file", "", "<input>: the catalog is empty"},
		{"only comments", "# nothing\n", "<input>: the catalog is empty"},
		{"a list", "- a\n- b\n", `<input>:1:1: got a list, want a mapping with version, network, nodes and vms`},
		{"a second document", "version: 1\n---\nversion: 1\n", "<input>:2:1: a second YAML document: the catalog is a single document (remove the '---' separator)"},
		{"a tab", "version: 1\nnodes:\n\t- name: pve\n", "<input>:3: YAML syntax error: found character that cannot start any token"},
		{"unknown top-level field", "version: 1\nvm: []\n", `<input>:2:1: vm: unknown field "vm" (did you mean "vms"?); known fields here: jump_host, network, nodes, version, vms`},
		{"unknown field, nothing close", "version: 1\nnetwork:\n  colour: blue\n", `<input>:3:3: network.colour: unknown field "colour"; known fields here: bridge, gateway, nameservers, strategy, subnet`},
		{"a list where a mapping belongs", "version: 1\nnetwork: [1, 2]\n", "<input>:2:1: network: got a list, want a mapping"},
		{"a mapping where a list belongs", "version: 1\nvms:\n  id: 1\n", "<input>:2:1: vms: got a mapping, want a list"},
		{"a bool as an int", "version: true\n", `<input>:1:10: version: got the boolean "true", want an integer`},
		{"a fraction for an integer", "version: 1\nvms:\n  - cores: 2.5\n", `<input>:3:12: vms[0].cores: got the number "2.5", want a whole number`},
		{"an exponent for an integer", "version: 1e30\n", `<input>:1:10: version: got the number "1e30", want a whole number`},
		{"an integer beyond int64 reads as a float", "version: 99999999999999999999\n", `<input>:1:10: version: got the number "99999999999999999999", want a whole number`},
		{"an integer beyond int64 that fits uint64", "version: 18446744073709551615\n", `<input>:1:10: version: got the integer "18446744073709551615", too large for this field (want at most 9223372036854775807)`},
		{"a null list entry", "version: 1\nnodes:\n  - name: pve\n    storages: [local, ~]\n", "<input>:4:23: nodes[0].storages[1]: an empty (null) list entry"},
		{"an empty list item", "version: 1\nvms:\n  -\n", "<input>:3:4: vms[0]: an empty (null) list entry"},
		{"nested too deep", "version: 1\nvms: " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n", "<input>:1:1: the catalog nests mappings and lists more than 32 deep"},
		{"every problem at once", "version: x\nfoo: 1\nvms:\n  - idd: 4\n", "<input>:1:10: version: got the string \"x\", want an integer\n" +
			"<input>:2:1: foo: unknown field \"foo\"; known fields here: jump_host, network, nodes, version, vms\n" +
			"<input>:4:5: vms[0].idd: unknown field \"idd\" (did you mean \"id\"?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), "")
			if err == nil {
				t.Fatalf("parsed: %+v", c)
			}
			var verrs ValidationErrors
			if !errors.As(err, &verrs) {
				t.Fatalf("error %T is not ValidationErrors: %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got:\n%v\nwant it to start with:\n%s", err, tc.want)
			}
		})
	}
}

func TestParseFollowsAnchorsAndMergeKeys(t *testing.T) {
	c, err := Load("testdata/valid-anchors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	one, two := c.VMs[0], c.VMs[1]
	if two.ID != 112 || two.Name != "vm-two" || two.Cores != 4 || two.MemoryMB != 2048 || two.Disk.SizeGB != 16 {
		t.Errorf("merged VM = %+v", two)
	}
	if one.Cores != 2 {
		t.Errorf("the anchor's own VM changed: cores %d", one.Cores)
	}
	// The merged VM's own keys keep their places; merged ones point into the anchor.
	if p, _ := c.Position("vms[1].cores"); p.Line != 27 {
		t.Errorf("vms[1].cores at %v, want line 27 (its own key)", p)
	}
	if p, _ := c.Position("vms[1].memory_mb"); p.Line != 17 {
		t.Errorf("vms[1].memory_mb at %v, want line 17 (the anchor)", p)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such-catalog.yml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
	if _, err := LoadValid("testdata/invalid-bios.yaml"); err == nil || !strings.Contains(err.Error(), "vms[0].bios") {
		t.Errorf("LoadValid on an invalid catalog: %v", err)
	}
	if c, err := LoadValid("../infrastructure-catalog.yml"); err != nil || len(c.VMs) != 3 {
		t.Errorf("LoadValid on the sample: %v", err)
	}
}
