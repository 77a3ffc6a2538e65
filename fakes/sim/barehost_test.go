package sim

import "testing"

// TestBareHostTopology pins what makes the bare host bare (issue 11): no cloud image, no
// snippets content, no mapping, a privilege-separated token.
func TestBareHostTopology(t *testing.T) {
	topo, err := LoadTopology("testdata/bare-host.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range topo.Storages {
		if len(s.Volumes) > 0 {
			t.Errorf("storage %s has volumes %v", s.Name, s.Volumes)
		}
		for _, c := range s.Content {
			if c == "snippets" {
				t.Errorf("storage %s has snippets content", s.Name)
			}
		}
	}
	if len(topo.Mappings) != 0 {
		t.Errorf("mappings %v", topo.Mappings)
	}
	if len(topo.Tokens) != 1 || !topo.Tokens[0].Privsep || len(topo.ACLs) != 2 || len(topo.DownloadSources) != 1 {
		t.Errorf("tokens %+v acls %+v sources %+v", topo.Tokens, topo.ACLs, topo.DownloadSources)
	}
}
