package pve

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"

	proxmox "github.com/luthermonson/go-proxmox"
)

// vendoredFixtures holds copies of the payloads graded `captured` (plus one real-world task status)
// from shared/fixtures/pve, so the comparison runs in every checkout; see testdata/fixtures/README.md.
const vendoredFixtures = "testdata/fixtures"

// sharedFixturesDir finds shared/fixtures/pve by walking up from the package directory ("" if absent).
func sharedFixturesDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		cand := filepath.Join(dir, "shared", "fixtures", "pve")
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// TestVendoredFixturesMatchShared keeps the vendored copies byte-identical to shared/fixtures/pve
// when that checkout is present.
func TestVendoredFixturesMatchShared(t *testing.T) {
	shared := sharedFixturesDir()
	if shared == "" {
		t.Skip("shared/fixtures/pve not found above the package: copies not re-checked (the comparison itself uses the vendored copies)")
	}
	n := 0
	err := filepath.WalkDir(vendoredFixtures, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".json" {
			return err
		}
		rel, _ := filepath.Rel(vendoredFixtures, path)
		mine, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		theirs, err := os.ReadFile(filepath.Join(shared, rel))
		if err != nil {
			return err
		}
		if string(mine) != string(theirs) {
			t.Errorf("%s differs from shared/fixtures/pve/%s: copy it again", path, rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no vendored fixtures found")
	}
}

func loadFixture(t *testing.T, dir, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return m["data"]
}

func (e *testEnv) getData(t *testing.T, path string) any {
	t.Helper()
	req, _ := http.NewRequest("GET", e.ts.URL+"/api2/json"+path, nil)
	req.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
	res, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", path, res.Status, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m["data"]
}

// compareShape checks that the fake object has the fixture's keys (except optional ones) with the same JSON types.
func compareShape(t *testing.T, what string, fixture, fake map[string]any, optional map[string]bool) {
	t.Helper()
	keys := make([]string, 0, len(fixture))
	for k := range fixture {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fv, ok := fake[k]
		if !ok {
			if !optional[k] {
				t.Errorf("%s: key %q of the captured payload is missing", what, k)
			}
			continue
		}
		if a, b := jsonType(fixture[k]), jsonType(fv); a != b && fixture[k] != nil {
			t.Errorf("%s: key %q is %s in the captured payload, %s in the fake", what, k, a, b)
		}
	}
}

// byType merges the keys of list entries per "type" (keys not in every entry are optional).
func byType(l []any) (map[string]map[string]any, map[string]map[string]bool) {
	merged := map[string]map[string]any{}
	counts := map[string]map[string]int{}
	n := map[string]int{}
	for _, x := range l {
		e := x.(map[string]any)
		typ, _ := e["type"].(string)
		if merged[typ] == nil {
			merged[typ], counts[typ] = map[string]any{}, map[string]int{}
		}
		n[typ]++
		for k, v := range e {
			merged[typ][k] = v
			counts[typ][k]++
		}
	}
	optional := map[string]map[string]bool{}
	for typ, c := range counts {
		optional[typ] = map[string]bool{}
		for k, cnt := range c {
			if cnt < n[typ] {
				optional[typ][k] = true
			}
		}
	}
	return merged, optional
}

// TestFixtureShapes compares the fake's payloads with the fixtures graded `captured` in shared/fixtures/pve/README.md.
func TestFixtureShapes(t *testing.T) {
	dir := vendoredFixtures
	tp := DefaultTopology()
	tp.ClusterName = "clustername"
	e := newEnv(t, WithTopology(tp), WithGuestFactory(NewStaticGuestFactory()))
	ctx := ctxT(t)
	vm := mustCreate(t, e.root, 101, minimalVM("shape", proxmox.VirtualMachineOption{Name: "agent", Value: "1"},
		proxmox.VirtualMachineOption{Name: "tags", Value: "go-proxmox+cloud-init"}))
	if ex := startExit(t, vm); ex != "OK" {
		t.Fatal(ex)
	}
	mustCreate(t, e.root, 102, minimalVM("stopped"))
	_ = ctx

	for _, v := range []string{"pve7x", "pve8x", "pve9x"} {
		fake := e.getData(t, "/nodes").([]any)[0].(map[string]any)
		for i, fx := range loadFixture(t, dir, v+"/nodes.json").([]any) {
			compareShape(t, v+"/nodes.json entry "+itoa(i), fx.(map[string]any), fake, nil)
		}

		fxStatus := loadFixture(t, dir, v+"/cluster-status.json").([]any)
		fakeStatus := e.getData(t, "/cluster/status").([]any)
		fm, fo := byType(fxStatus)
		km, _ := byType(fakeStatus)
		for typ, keys := range fm {
			compareShape(t, v+"/cluster-status.json type "+typ, keys, km[typ], fo[typ])
		}

		fxRes := loadFixture(t, dir, v+"/cluster-resources.json").([]any)
		rm, ro := byType(fxRes)
		kr, _ := byType(e.getData(t, "/cluster/resources").([]any))
		for typ, keys := range rm {
			if kr[typ] == nil {
				if typ == "lxc" || typ == "pool" {
					continue // containers and pools are not modelled
				}
				t.Errorf("%s/cluster-resources.json: no %s entries in the fake", v, typ)
				continue
			}
			compareShape(t, v+"/cluster-resources.json type "+typ, keys, kr[typ], ro[typ])
		}

		// a running VM (the captured payload is a PVE 8.0 VM with SPICE display and blockstats)
		fxCur := loadFixture(t, dir, v+"/qemu-status-current.json").(map[string]any)
		compareShape(t, v+"/qemu-status-current.json", fxCur, e.getData(t, "/nodes/pve/qemu/101/status/current").(map[string]any),
			map[string]bool{"spice": true, "shares": true, "balloon_min": true})
	}

	fxNode := loadFixture(t, dir, "pve7x/node-status.json").(map[string]any)
	fakeNode := e.getData(t, "/nodes/pve/status").(map[string]any)
	compareShape(t, "pve7x/node-status.json", fxNode, fakeNode, nil)
	for _, sub := range []string{"cpuinfo", "memory", "swap", "rootfs", "ksm"} {
		compareShape(t, "pve7x/node-status.json "+sub, fxNode[sub].(map[string]any), fakeNode[sub].(map[string]any), nil)
	}

	fxTask := loadFixture(t, dir, "real-world/task-status-qmstart-warnings.json").(map[string]any)
	st, err := vm.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitTask(t, ctx, st)
	compareShape(t, "real-world/task-status-qmstart-warnings.json", fxTask, e.getData(t, "/nodes/pve/tasks/"+string(st.UPID)+"/status").(map[string]any), nil)
}
