package pve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// ptype is a JSON schema type as PVE's JSONSchema::check_type knows it: vmKeyTypes types the
// config values the fake prints with it. (Requests are checked against the published schema:
// schema.go, jsonschema.)
type ptype int

const (
	tString ptype = iota
	tInt
	tBool
	tNumber
)

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
