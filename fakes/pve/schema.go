package pve

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/aimachine/aimachine/fakes/pve/apischema"
	"github.com/aimachine/aimachine/fakes/pve/jsonschema"
)

// apiSchema is the published API (PVE 9.1.3 API viewer, vendored in apischema): every request is
// looked up and its parameters verified there before a handler runs.
var apiSchema = apischema.MustLoad()

// opObjects holds each operation's parameters as a jsonschema.Object ("net[n]" → net0..net31).
var opObjects = func() map[*apischema.Operation]jsonschema.Object {
	m := map[*apischema.Operation]jsonschema.Object{}
	for _, op := range apiSchema.Operations {
		m[op] = objectOf(op)
	}
	return m
}()

func objectOf(op *apischema.Operation) jsonschema.Object {
	obj := jsonschema.Object{Props: map[string]*apischema.Schema{}}
	if op.Parameters == nil {
		return obj
	}
	indexed := map[string]*apischema.Schema{}
	for k, s := range op.Parameters.Properties {
		if strings.HasSuffix(k, "[n]") {
			indexed[k] = s
			continue
		}
		obj.Props[k] = s
	}
	obj.More = jsonschema.Indexed(indexed, strings.HasPrefix(op.Path, "/nodes/{node}/qemu"))
	if a := op.Parameters.AdditionalProperties; a != nil {
		b := bool(*a)
		obj.Additional = &b
	}
	return obj
}

// paramSchema is the schema of one parameter of op (nil when not defined).
func paramSchema(op *apischema.Operation, k string) *apischema.Schema {
	obj := opObjects[op]
	if s := obj.Props[k]; s != nil {
		return s
	}
	if obj.More != nil {
		return obj.More(k)
	}
	return nil
}

// normalizeLegacy is pve-common RESTHandler.pm $normalize_legacy_param_formats: an array for a
// "-list" format string is joined with ','; a scalar for an array parameter (form data) is wrapped.
func normalizeLegacy(op *apischema.Operation, raw map[string]any) {
	for k, v := range raw {
		s := paramSchema(op, k)
		if s == nil || v == nil {
			continue
		}
		if l, isList := v.([]any); isList && s.Type == "string" && strings.HasSuffix(s.Format, "-list") {
			parts := make([]string, len(l))
			for i, x := range l {
				parts[i] = jsonschema.Scalar(x)
			}
			raw[k] = strings.Join(parts, ",")
		} else if !isList && s.Type == "array" {
			if sv, ok := v.(string); !ok || sv != "" { // Perl: if (my $value = ...) skips "" and "0"
				if sv != "0" {
					raw[k] = []any{v}
				}
			}
		}
	}
}

// verifyParams is RESTHandler::handle's JSONSchema::validate: 400 "Parameter verification failed."
// with every error, or the parameters as handlers read them (booleans 0/1, integers without '+').
func verifyParams(op *apischema.Operation, raw map[string]any) (params, *apiError) {
	normalizeLegacy(op, raw)
	if errs := jsonschema.Validate(raw, opObjects[op]); errs != nil {
		return params{}, errParams(errs)
	}
	p := params{vals: map[string]string{}, lists: map[string][]string{}}
	for k, v := range raw {
		if l, ok := v.([]any); ok {
			out := make([]string, len(l))
			for i, x := range l {
				out[i] = jsonschema.Scalar(x)
			}
			p.lists[k] = out
			p.vals[k] = strings.Join(out, "\x00")
			continue
		}
		s := jsonschema.Scalar(v)
		if ps := paramSchema(op, k); ps != nil && ps.Type == "integer" {
			s = strings.TrimPrefix(s, "+")
		}
		p.vals[k] = s
	}
	return p, nil
}

// mergeURIParams is pve-manager PVE/HTTPServer.pm rest_handler: a body/query parameter that repeats
// a path variable with another value is a 400; otherwise the path variables join the parameters.
func mergeURIParams(raw map[string]any, vars map[string]string) *apiError {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if uv, ok := vars[k]; ok && jsonschema.Scalar(raw[k]) != uv {
			return errParam(k, "duplicate parameter (already defined in URI) with conflicting values!")
		}
	}
	for k, v := range vars {
		raw[k] = v
	}
	return nil
}

// NotModelledStatus is the HTTP status of an operation that the published API has and this fake does
// not model. Real PVE answers every schema operation itself, so the reason phrase starts with
// NotModelledPrefix, a text PVE never sends.
const (
	NotModelledStatus = 501
	NotModelledPrefix = "fakes/pve: not modelled:"
)

func errNotModelled(method, rel string, op *apischema.Operation) *apiError {
	return &apiError{Code: NotModelledStatus, Msg: fmt.Sprintf("%s '%s %s' is in the PVE 9.1.3 API schema (%s %s, %s) but this fake does not model it\n",
		NotModelledPrefix, method, rel, op.Method, op.Path, op.Name)}
}

// errTokenNotAllowed is rest_handler's raise_perm_exc for a method without allowtoken.
func errTokenNotAllowed(rel string) *apiError {
	return &apiError{Code: 403, Msg: fmt.Sprintf("Permission check failed (URI '%s' not available with API token, need proper ticket.\n)\n", rel)}
}

// dispatch answers one API request in pveproxy's order (pve-manager PVE/HTTPServer.pm rest_handler,
// pve-common RESTHandler.pm handle): authentication, method lookup (501 when the published API has no
// such method), path parameters merged (conflicts are a 400), API-token check, permissions, the node
// in the path, then parameter verification against the schema, then the handler. An operation that
// the schema has and the route table does not is verified, then answered with errNotModelled.
func (s *Server) dispatch(r *http.Request, rel string, rec *requestRecord) (any, map[string]any, error) {
	rt, vars := s.findRoute(r.Method, rel)
	op, opVars, _ := apiSchema.Find(r.Method, apischema.Split(rel))
	var id *identity
	if rt == nil || !rt.public {
		var err *apiError
		id, err = s.authenticate(r)
		if err != nil {
			return nil, nil, err
		}
		rec.User = id.authUser()
	}
	raw, perr := readRawParams(r)
	if perr != nil {
		return nil, nil, perr
	}
	rec.Params = redactParams(raw)
	if op == nil && rt == nil {
		return nil, nil, errNotImplemented(r.Method, rel)
	}
	if op == nil {
		// A route the published API lacks: a bug in the fake (TestRoutesInSchema forbids it),
		// never answered as if PVE had it.
		rec.Route = rt.method + " " + rt.pattern
		return nil, nil, &apiError{Code: NotModelledStatus, Msg: fmt.Sprintf("%s route '%s %s' is not in the PVE 9.1.3 API schema: the fake must not serve it\n", NotModelledPrefix, rt.method, rt.pattern)}
	}
	if e := mergeURIParams(raw, opVars); e != nil {
		return nil, nil, e
	}
	if rt == nil {
		rec.Route = op.Method + " " + op.Path
		if _, e := verifyParams(op, raw); e != nil {
			return nil, nil, e
		}
		return nil, nil, errNotModelled(r.Method, rel, op)
	}
	rec.Route = rt.method + " " + rt.pattern
	if id != nil && id.tokenID != "" && !op.AllowToken {
		return nil, nil, errTokenNotAllowed(rel)
	}
	if rt.priv != "" {
		path := rt.privOn
		for k, v := range vars {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		for k, v := range raw {
			path = strings.ReplaceAll(path, "{"+k+"}", jsonschema.Scalar(v))
		}
		if !s.routePermitted(id, path, rt.priv) {
			return nil, nil, errPerm(path, rt.priv)
		}
	}
	if err := s.checkNode(vars); err != nil {
		return nil, nil, err
	}
	p, verr := verifyParams(op, raw)
	if verr != nil {
		return nil, nil, verr
	}
	return s.runHandler(r, rel, rt, vars, p, id)
}

func (s *Server) checkNode(vars map[string]string) *apiError {
	n, ok := vars["node"]
	if !ok {
		return nil
	}
	s.mu.Lock()
	known := s.st.node(n) != nil
	s.mu.Unlock()
	if !known {
		return errDie("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", n, n)
	}
	return nil
}

func (s *Server) runHandler(r *http.Request, rel string, rt *route, vars map[string]string, p params, id *identity) (any, map[string]any, error) {
	c := &call{r: r, method: r.Method, rel: rel, vars: vars, p: p, id: id, route: rt}
	data, err := rt.handler(s, c)
	if err != nil {
		return nil, nil, err
	}
	if wt, ok := data.(withTotal); ok {
		return wt.data, map[string]any{"total": wt.total}, nil
	}
	return data, nil, nil
}
