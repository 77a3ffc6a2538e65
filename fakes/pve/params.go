package pve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// ptype is a JSON schema type as PVE's JSONSchema::check_type knows it.
type ptype int

const (
	tString ptype = iota
	tInt
	tBool
	tNumber
	tArray // array of strings (agent exec "command", mapping "map")
)

// pspec describes one API parameter.
type pspec struct {
	t        ptype
	required bool
	format   string // urlencoded, pve-qm-hostpci, disk-size, pve-vmid ...
	min      int
	hasMin   bool
	enum     []string
}

type patSpec struct {
	re   *regexp.Regexp
	spec pspec
}

// schema is the parameter set of one API method.
type schema struct {
	fixed    map[string]pspec
	patterns []patSpec
}

func (sc schema) lookup(name string) (pspec, bool) {
	if p, ok := sc.fixed[name]; ok {
		return p, true
	}
	for _, ps := range sc.patterns {
		if ps.re.MatchString(name) {
			return ps.spec, true
		}
	}
	return pspec{}, false
}

func (sc schema) with(extra map[string]pspec) schema {
	n := schema{fixed: map[string]pspec{}, patterns: sc.patterns}
	for k, v := range sc.fixed {
		n.fixed[k] = v
	}
	for k, v := range extra {
		n.fixed[k] = v
	}
	return n
}

// params are validated request parameters (scalars as strings, arrays as lists).
type params struct {
	vals  map[string]string
	lists map[string][]string
}

func (p params) has(k string) bool   { _, ok := p.vals[k]; return ok }
func (p params) get(k string) string { return p.vals[k] }

// readRawParams merges the body (JSON or form) and the query string (query wins), as pveproxy does.
func readRawParams(r *http.Request) (map[string]any, *apiError) {
	raw := map[string]any{}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if len(bytes.TrimSpace(body)) > 0 {
		if r.Method == http.MethodDelete || r.Method == http.MethodGet {
			return nil, &apiError{Code: 501, Msg: fmt.Sprintf("Unexpected content for method '%s'\n", r.Method)}
		}
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct == "application/json" {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				return nil, &apiError{Code: 400, Msg: "malformed JSON string\n"}
			}
			for k, v := range m {
				raw[k] = v
			}
		} else {
			q, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, &apiError{Code: 400, Msg: "malformed form data\n"}
			}
			mergeValues(raw, q)
		}
	}
	mergeValues(raw, r.URL.Query())
	return raw, nil
}

func mergeValues(raw map[string]any, q url.Values) {
	for k, vs := range q {
		if len(vs) == 1 {
			raw[k] = vs[0]
			continue
		}
		l := make([]any, len(vs))
		for i, v := range vs {
			l[i] = v
		}
		raw[k] = l
	}
}

var (
	reInteger = regexp.MustCompile(`^[+-]?\d+$`)
	reNumber  = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)
)

// refName is how Perl names a reference value in "type check" errors.
func refName(v any) string {
	switch v.(type) {
	case bool:
		return "JSON::PP::Boolean"
	case []any:
		return "ARRAY"
	case map[string]any:
		return "HASH"
	}
	return ""
}

func typeName(t ptype) string {
	switch t {
	case tInt:
		return "integer"
	case tBool:
		return "boolean"
	case tNumber:
		return "number"
	case tArray:
		return "array"
	}
	return "string"
}

// checkScalar applies JSONSchema::check_type to one scalar and returns its string form.
func checkScalar(v any, t ptype) (string, string) {
	if ref := refName(v); ref != "" {
		if t == tBool {
			if b, ok := v.(bool); ok {
				if b {
					return "1", ""
				}
				return "0", ""
			}
		}
		return "", fmt.Sprintf("type check ('%s') failed - got %s", typeName(t), ref)
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	case nil:
		return "", ""
	default:
		s = fmt.Sprint(x)
	}
	switch t {
	case tInt:
		if !reInteger.MatchString(s) {
			return "", fmt.Sprintf("type check ('integer') failed - got '%s'", s)
		}
		s = strings.TrimPrefix(s, "+")
	case tNumber:
		if !reNumber.MatchString(s) {
			return "", fmt.Sprintf("type check ('number') failed - got '%s'", s)
		}
	case tBool:
		switch s {
		case "1":
		case "0", "":
			s = "0"
		default:
			return "", fmt.Sprintf("type check ('boolean') failed - got '%s'", s)
		}
	}
	return s, ""
}

// validate checks raw against sc the way PVE's rest handler does before calling the method:
// unknown parameters, types, minimums, formats and missing required parameters, all collected.
func validate(raw map[string]any, sc schema) (params, *apiError) {
	p := params{vals: map[string]string{}, lists: map[string][]string{}}
	errs := map[string]string{}
	for k, v := range raw {
		spec, ok := sc.lookup(k)
		if !ok {
			errs[k] = "property is not defined in schema and the schema does not allow additional properties"
			continue
		}
		if spec.t == tArray {
			var items []any
			switch x := v.(type) {
			case []any:
				items = x
			default:
				items = []any{x}
			}
			var out []string
			for _, it := range items {
				s, e := checkScalar(it, tString)
				if e != "" {
					errs[k] = e
					break
				}
				out = append(out, s)
			}
			p.lists[k] = out
			p.vals[k] = strings.Join(out, "\x00")
			continue
		}
		s, e := checkScalar(v, spec.t)
		if e != "" {
			errs[k] = e
			continue
		}
		if spec.hasMin && spec.t == tInt {
			var n int
			fmt.Sscan(s, &n)
			if n < spec.min {
				errs[k] = fmt.Sprintf("value must have a minimum value of %d", spec.min)
				continue
			}
		}
		if len(spec.enum) > 0 && !contains(spec.enum, s) {
			errs[k] = fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", s, strings.Join(spec.enum, ", "))
			continue
		}
		if spec.format != "" {
			if e := checkFormat(k, spec.format, s); e != "" {
				errs[k] = e
				continue
			}
		}
		p.vals[k] = s
	}
	for _, k := range sortedKeys(sc.fixed) {
		if sc.fixed[k].required {
			if _, ok := raw[k]; !ok {
				if _, bad := errs[k]; !bad {
					errs[k] = "property is missing and it is not optional"
				}
			}
		}
	}
	if len(errs) > 0 {
		return p, errParams(errs)
	}
	return p, nil
}

var (
	reURLEncoded = regexp.MustCompile(`^[-%a-zA-Z0-9_.!~*'()]*$`)
	reDiskSize   = regexp.MustCompile(`^\+?\d+(\.\d+)?[KMGT]?$`)
	reDNSName    = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?)*$`)
)

func checkFormat(name, format, v string) string {
	switch format {
	case "urlencoded":
		if !reURLEncoded.MatchString(v) {
			return "invalid format - invalid urlencoded string: " + v + "\n"
		}
	case "pve-qm-hostpci":
		if e := hostpciFormatError(name, v); e != "" {
			return "invalid format - format error\n" + e + "\n"
		}
	case "disk-size":
		if !reDiskSize.MatchString(v) {
			return "value does not match the regex pattern"
		}
	case "dns-name":
		if !reDNSName.MatchString(v) {
			return "invalid format - value does not look like a valid DNS name\n"
		}
	}
	return ""
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// parsePropString splits a PVE property string "a,k=v,k2=v2" (defaultKey takes a bare first item).
func parsePropString(v, defaultKey string) (map[string]string, []string) {
	m := map[string]string{}
	var order []string
	for _, part := range strings.Split(v, ",") {
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			k, val = defaultKey, part
		}
		if _, dup := m[k]; !dup {
			order = append(order, k)
		}
		m[k] = val
	}
	return m, order
}
