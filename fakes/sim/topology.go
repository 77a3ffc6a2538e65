package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/aimachine/aimachine/fakes/pve"
)

// LoadTopology reads a topology file, YAML or JSON. Keys are pve.Topology's field names,
// matched without regard to case (JSON rules): e.g.
//
//	nodes:
//	  - name: pve
//	    cores: 32
//	    memoryGiB: 128
//	    iommu: true
//	    pci:
//	      - {id: "0000:01:00.0", class: "0x030000", vendor: "0x10de", device: "0x2d04", iommuGroup: 12}
//	storages:
//	  - {name: local-lvm, type: lvmthin, content: [images, rootdir], totalBytes: 1099511627776}
//
// The file is the whole topology (nothing is merged with the default). Unknown keys are errors.
func LoadTopology(path string) (pve.Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return pve.Topology{}, fmt.Errorf("topology: %w", err)
	}
	t, err := ParseTopology(data)
	if err != nil {
		return pve.Topology{}, fmt.Errorf("topology %s: %w", path, err)
	}
	return t, nil
}

// ParseTopology parses a YAML or JSON topology (see LoadTopology).
func ParseTopology(data []byte) (pve.Topology, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return pve.Topology{}, err
	}
	if doc == nil {
		return pve.Topology{}, fmt.Errorf("empty topology")
	}
	js, err := json.Marshal(jsonable(doc))
	if err != nil {
		return pve.Topology{}, err
	}
	var t pve.Topology
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return pve.Topology{}, err
	}
	if len(t.Nodes) == 0 {
		return pve.Topology{}, fmt.Errorf("no nodes (hint: a topology needs at least one node, e.g. nodes: [{name: pve, iommu: true}])")
	}
	return t, nil
}

// jsonable converts yaml.v3's map[string]any / []any trees (and any non-string keys) for json.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	}
	return v
}
