package apischema

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

//go:embed schema.json.gz
var vendored []byte

// Schema is one PVE JSONSchema node (pve-common PVE/JSONSchema.pm): a parameter, a property-string
// sub-key or an array's items.
type Schema struct {
	Type      string `json:"type"`
	Optional  Bool   `json:"optional"`
	Minimum   *Num   `json:"minimum"`
	Maximum   *Num   `json:"maximum"`
	MinLength *int   `json:"minLength"`
	MaxLength *int   `json:"maxLength"`
	Pattern   string `json:"pattern"`
	Enum      []string
	Default   any `json:"default"`
	// Format is a named format ("pve-vmid", "pve-configid-list") ...
	Format string
	// ... or a property string's sub-keys (drives, netN, agent ...).
	FormatSchema map[string]*Schema
	DefaultKey   Bool   `json:"default_key"`
	Alias        string `json:"alias"`
	KeyAlias     string `json:"keyAlias"`
	Requires     string `json:"-"`
	// TypeProperty marks SectionConfig-style variants (instance-types, oneOf): not checked by jsonschema.
	TypeProperty string  `json:"type-property"`
	Items        *Schema `json:"items"`
	// Properties and AdditionalProperties describe an object (the parameters of a method).
	Properties           map[string]*Schema `json:"properties"`
	AdditionalProperties *Bool              `json:"-"`
}

// Bool reads Perl's 0/1 and JSON booleans.
type Bool bool

func (b *Bool) UnmarshalJSON(d []byte) error {
	s := strings.Trim(string(d), `"`)
	*b = Bool(s == "1" || s == "true")
	return nil
}

// Num reads numbers that the viewer data sometimes quotes ("minimum": "0").
type Num float64

func (n *Num) UnmarshalJSON(d []byte) error {
	var f float64
	_, err := fmt.Sscan(strings.Trim(string(d), `"`), &f)
	*n = Num(f)
	return err
}

func (s *Schema) UnmarshalJSON(d []byte) error {
	type plain Schema
	var aux struct {
		plain
		Enum                 []any           `json:"enum"`
		Format               json.RawMessage `json:"format"`
		Requires             json.RawMessage `json:"requires"`
		AdditionalProperties json.RawMessage `json:"additionalProperties"`
	}
	if err := json.Unmarshal(d, &aux); err != nil {
		return err
	}
	*s = Schema(aux.plain)
	for _, e := range aux.Enum {
		s.Enum = append(s.Enum, fmt.Sprint(e))
	}
	if len(aux.Format) > 0 {
		if aux.Format[0] == '{' {
			if err := json.Unmarshal(aux.Format, &s.FormatSchema); err != nil {
				return err
			}
		} else if err := json.Unmarshal(aux.Format, &s.Format); err != nil {
			return err
		}
	}
	if len(aux.Requires) > 0 && aux.Requires[0] == '"' {
		_ = json.Unmarshal(aux.Requires, &s.Requires)
	}
	if len(aux.AdditionalProperties) > 0 && aux.AdditionalProperties[0] != '{' {
		var b Bool
		_ = b.UnmarshalJSON(aux.AdditionalProperties)
		s.AdditionalProperties = &b
	}
	return nil
}

// Operation is one API method: "POST /nodes/{node}/qemu".
type Operation struct {
	Path       string  `json:"path"`
	Method     string  `json:"method"`
	Name       string  `json:"name"`
	AllowToken Bool    `json:"allowtoken"`
	Protected  Bool    `json:"protected"`
	ProxyTo    string  `json:"proxyto"`
	Parameters *Schema `json:"parameters"`
	segs       []string
}

// API is the whole schema.
type API struct {
	Source     string       `json:"source"`
	Operations []*Operation `json:"operations"`
}

var (
	once   sync.Once
	loaded *API
	errLd  error
)

// Load returns the vendored schema (parsed once).
func Load() (*API, error) {
	once.Do(func() { loaded, errLd = Parse(vendored) })
	return loaded, errLd
}

// MustLoad is Load for package initialisation.
func MustLoad() *API {
	a, err := Load()
	if err != nil {
		panic(err)
	}
	return a
}

// Parse reads a vendored (gzipped) schema.
func Parse(gz []byte) (*API, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("vendored API schema: %w", err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("vendored API schema: %w", err)
	}
	var a API
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("vendored API schema: %w", err)
	}
	for _, op := range a.Operations {
		op.segs = Split(op.Path)
	}
	sort.SliceStable(a.Operations, func(i, j int) bool { return a.Operations[i].Path < a.Operations[j].Path })
	return &a, nil
}

// Split splits a path into its non-empty segments, as RESTHandler::find_handler does (split '\/+').
func Split(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Segments is the operation's path split into segments ("{node}" for a variable).
func (op *Operation) Segments() []string { return op.segs }

// Match matches request path segments against the operation's path; vars are keyed by the schema's
// names. A variable matches one non-empty segment (pve-common RESTHandler::map_path_to_methods).
func (op *Operation) Match(segs []string) (map[string]string, bool) {
	if len(segs) != len(op.segs) {
		return nil, false
	}
	vars := map[string]string{}
	for i, ps := range op.segs {
		if strings.HasPrefix(ps, "{") {
			vars[ps[1:len(ps)-1]] = segs[i]
			continue
		}
		if ps != segs[i] {
			return nil, false
		}
	}
	return vars, true
}

// Find returns the operation for method and path, or nil; pathKnown tells whether any method exists
// for that path.
func (a *API) Find(method string, segs []string) (op *Operation, vars map[string]string, pathKnown bool) {
	segs = joinFragments(segs)
	for _, o := range a.Operations {
		v, ok := o.Match(segs)
		if !ok {
			continue
		}
		pathKnown = true
		if o.Method == method {
			// a literal segment beats a variable (RESTHandler tries fixed subdirectories first)
			if op == nil || literalCount(o) > literalCount(op) {
				op, vars = o, v
			}
		}
	}
	return op, vars, pathKnown
}

func literalCount(o *Operation) int {
	n := 0
	for _, s := range o.segs {
		if !strings.HasPrefix(s, "{") {
			n++
		}
	}
	return n
}

// joinFragments applies the one fragmentDelimiter ” subclass of the API: pve-storage
// src/PVE/API2/Storage/Status.pm mounts PVE::API2::Storage::Content at
// /nodes/{node}/storage/{storage}/content with "no subdirs", so everything after "content" is one
// segment, the volume id ("local:iso/x.iso"; RESTHandler::map_path_to_methods joins the rest with '/').
func joinFragments(segs []string) []string {
	if len(segs) > 6 && segs[0] == "nodes" && segs[2] == "storage" && segs[4] == "content" {
		out := append([]string(nil), segs[:5]...)
		return append(out, strings.Join(segs[5:], "/"))
	}
	return segs
}
