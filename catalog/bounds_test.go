package catalog

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// countNodes counts the nodes of a YAML tree as written, without following aliases.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

// TestMergeBombIsMeasuredNotExpanded: a 4 KB catalog of nested merge keys would expand to
// 12^45 mappings. Parse must refuse it after work proportional to the file, not to the
// expansion: the measure visits each written node once.
func TestMergeBombIsMeasuredNotExpanded(t *testing.T) {
	data, err := os.ReadFile("testdata/invalid-merge-bomb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 4096 {
		t.Fatalf("the bomb is %d bytes, want at most 4 KB", len(data))
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	doc := root.Content[0]
	x := &expansion{size: map[*yaml.Node]int{}, depth: map[*yaml.Node]int{}, busy: map[*yaml.Node]bool{}}
	e := x.check("bomb.yaml", doc)
	if e == nil || !strings.Contains(e.Msg, "expands to more than") {
		t.Fatalf("got %v, want the expansion refused", e)
	}
	if written := countNodes(doc); x.visits > written {
		t.Errorf("the measure visited %d nodes, more than the %d the file holds", x.visits, written)
	}

	_, err = Parse(data, "bomb.yaml")
	var verrs ValidationErrors
	if !errors.As(err, &verrs) || len(verrs) != 1 || !strings.HasPrefix(verrs[0].Error(), "bomb.yaml:3:1: the catalog expands to more than 100000 YAML values") {
		t.Errorf("Parse: %v", err)
	}
}

// TestExpansionWithinTheLimitIsAccepted: anchors and merge keys as people use them pass,
// and the measure counts what they expand to.
func TestExpansionWithinTheLimitIsAccepted(t *testing.T) {
	data, err := os.ReadFile("testdata/valid-anchors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	doc := root.Content[0]
	x := &expansion{size: map[*yaml.Node]int{}, depth: map[*yaml.Node]int{}, busy: map[*yaml.Node]bool{}}
	if e := x.check("a.yaml", doc); e != nil {
		t.Fatal(e)
	}
	if got, written := x.size[doc], countNodes(doc); got <= written {
		t.Errorf("expanded size %d, want more than the %d written nodes (vm-two merges vm-one)", got, written)
	}
	if d := x.depth[doc]; d < 4 || d > 8 {
		t.Errorf("depth %d, want the catalog's 4–8", d)
	}
}

func TestParseRefusesAnOversizedFile(t *testing.T) {
	data := append([]byte("version: 1\n"), bytes.Repeat([]byte("# padding\n"), MaxCatalogBytes/10+1)...)
	_, err := Parse(data, "big.yml")
	if err == nil || !strings.Contains(err.Error(), "big.yml: the catalog is larger than 1048576 bytes") {
		t.Errorf("got %v", err)
	}
	// Load reads no more than the limit plus one byte.
	path := t.TempDir() + "/big.yml"
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load: %v", err)
	}
}
