// Package schema holds the JSON Schemas of aimachine's machine-readable output (plan, deploy
// and verify --json, evidence.json; docs/json.md describes them) and compiles them for tests.
package schema

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed *.schema.json
var files embed.FS

// Base is the $id prefix of every schema.
const Base = "https://aimachine.dev/schema/"

// Compile compiles the schema in name (e.g. "plan.schema.json") with the others it refers to.
func Compile(name string) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	names, err := fs.Glob(files, "*.schema.json")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		data, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if err := c.AddResource(Base+n, doc); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
	}
	return c.Compile(Base + name)
}

// Validate checks one JSON document against the schema in name.
func Validate(name string, data []byte) error {
	s, err := Compile(name)
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(doc)
}

// NonSnakeKeys lists the object keys in a decoded JSON document that are not snake_case.
func NonSnakeKeys(v any) []string {
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, child := range t {
				if k != strings.ToLower(k) || strings.ContainsAny(k, "- ") {
					out = append(out, path+"."+k)
				}
				walk(path+"."+k, child)
			}
		case []any:
			for i, child := range t {
				walk(fmt.Sprintf("%s[%d]", path, i), child)
			}
		}
	}
	walk("", v)
	return out
}
