package apischema

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"sort"
)

// Source names where the vendored schema comes from.
const Source = "PVE 9.1.3 api-viewer apidata.js, proxmox/pve-docs 'bump version to 9.1.3'"

// dropKeys are schema keys only the API viewer needs (texts for humans, return shapes).
var dropKeys = map[string]bool{
	"description": true, "verbose_description": true, "typetext": true, "format_description": true,
	"renderer": true,
}

type viewerNode struct {
	Path     string                     `json:"path"`
	Info     map[string]json.RawMessage `json:"info"`
	Children []viewerNode               `json:"children"`
}

// Compact turns the API viewer's tree (pve-api-schema.json) into the vendored form: gzipped JSON, one
// entry per operation sorted by path and method, with parameters only and human texts dropped.
func Compact(viewer []byte) ([]byte, error) {
	var roots []viewerNode
	if err := json.Unmarshal(viewer, &roots); err != nil {
		return nil, fmt.Errorf("parse API viewer data: %w", err)
	}
	var ops []map[string]any
	var walk func(n viewerNode) error
	walk = func(n viewerNode) error {
		for method, raw := range n.Info {
			var info map[string]any
			if err := json.Unmarshal(raw, &info); err != nil {
				return fmt.Errorf("%s %s: %w", method, n.Path, err)
			}
			op := map[string]any{"path": n.Path, "method": method}
			for _, k := range []string{"name", "allowtoken", "protected", "proxyto"} {
				if v, ok := info[k]; ok {
					op[k] = v
				}
			}
			if p, ok := info["parameters"]; ok {
				op["parameters"] = strip(p)
			}
			ops = append(ops, op)
		}
		for _, c := range n.Children {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range roots {
		if err := walk(r); err != nil {
			return nil, err
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i]["path"] != ops[j]["path"] {
			return ops[i]["path"].(string) < ops[j]["path"].(string)
		}
		return ops[i]["method"].(string) < ops[j]["method"].(string)
	})
	body, err := json.Marshal(map[string]any{"source": Source, "operations": ops})
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression) // zero header: same input, same bytes
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// strip drops human texts from a schema; "properties" and property-string "format" maps are
// parameter names (a parameter may be called "description"), their values are schemas again.
func strip(v any) any {
	x, ok := v.(map[string]any)
	if !ok {
		return v
	}
	m := map[string]any{}
	for k, e := range x {
		if dropKeys[k] {
			continue
		}
		switch k {
		case "properties", "format":
			if props, ok := e.(map[string]any); ok {
				n := map[string]any{}
				for pk, pv := range props {
					n[pk] = strip(pv)
				}
				e = n
			}
		case "items", "additionalProperties":
			e = strip(e)
		}
		m[k] = e
	}
	return m
}
