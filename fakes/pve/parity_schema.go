package pve

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aimachine/aimachine/fakes/pve/apischema"
	"github.com/aimachine/aimachine/fakes/pve/jsonschema"
)

// Coverage of one operation of the published API.
const (
	CoverModelled    = "modelled"       // a handler answers it
	CoverValidated   = "validated only" // parameters verified exactly as PVE does, then the not-modelled answer
	CoverNotModelled = "not modelled"   // not answered, and some named format of it is not verified by the fake
)

// schemaOpOf maps a route of the fake to its operation in the published API (nil when missing).
func schemaOpOf(rt *route) *apischema.Operation {
	segs := make([]string, len(rt.segs))
	for i, s := range rt.segs {
		if strings.HasPrefix(s, "{") {
			s = "x"
		}
		segs[i] = s
	}
	op, _, _ := apiSchema.Find(rt.method, segs)
	return op
}

// coverage tells each operation of the schema how the fake covers it, and the formats it lacks.
func coverage() (map[*apischema.Operation]string, map[*apischema.Operation][]string) {
	modelled := map[*apischema.Operation]bool{}
	for _, rt := range buildRoutes() {
		if op := schemaOpOf(rt); op != nil {
			modelled[op] = true
		}
	}
	cov := map[*apischema.Operation]string{}
	missing := map[*apischema.Operation][]string{}
	for _, op := range apiSchema.Operations {
		missing[op] = unverifiedFormats(op.Parameters)
		switch {
		case modelled[op]:
			cov[op] = CoverModelled
		case len(missing[op]) == 0:
			cov[op] = CoverValidated
		default:
			cov[op] = CoverNotModelled
		}
	}
	return cov, missing
}

// unverifiedFormats lists the named formats under s that jsonschema does not verify.
func unverifiedFormats(s *apischema.Schema) []string {
	set := map[string]bool{}
	var walk func(s *apischema.Schema)
	walk = func(s *apischema.Schema) {
		if s == nil {
			return
		}
		if s.Format != "" && !jsonschema.Known(s.Format) {
			set[s.Format] = true
		}
		if s.TypeProperty != "" {
			set["type-property variants"] = true
		}
		if s.Pattern != "" && !jsonschema.PatternOK(s.Pattern) {
			set["pattern "+s.Pattern] = true
		}
		for _, sub := range s.FormatSchema {
			walk(sub)
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
	}
	walk(s)
	var out []string
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func opKey(op *apischema.Operation) string { return op.Method + " " + op.Path }

// schemaCoverageMarkdown is PARITY.md's part about the published API.
func schemaCoverageMarkdown() string {
	cov, missing := coverage()
	var b strings.Builder
	counts := map[string]int{}
	for _, c := range cov {
		counts[c]++
	}
	fmt.Fprintf(&b, "\n## Coverage of the published API (%s)\n\n", apiSchema.Source)
	b.WriteString("Every request is looked up in the vendored schema (`apischema/`, `go generate ./fakes/pve/apischema`) and its parameters are " +
		"verified before anything else runs, with pve-common JSONSchema.pm's checks, order and texts (`jsonschema/`). A path the schema does not " +
		"have answers like pveproxy: `501 Method 'M /path' not implemented`. An operation the schema has and the fake does not model is verified " +
		fmt.Sprintf("first (a bad request gets PVE's 400) and then answered `%d %s 'M /path' is in the PVE 9.1.3 API schema (…) but this fake does not model it`: ", NotModelledStatus, NotModelledPrefix) +
		"a status text no real PVE sends, so a client log shows at once that the fake, not the host, refused.\n\n")
	b.WriteString("- **modelled**: a handler answers it (the table above)\n" +
		"- **validated only**: not modelled, but every named format of its parameters is verified like PVE, so bad requests get PVE's exact 400\n" +
		"- **not modelled**: not modelled, and some named format of its parameters is accepted unchecked (listed)\n\n")
	fmt.Fprintf(&b, "| | operations |\n|---|---|\n| modelled | %d |\n| validated only | %d |\n| not modelled | %d |\n| total | %d |\n\n",
		counts[CoverModelled], counts[CoverValidated], counts[CoverNotModelled], len(apiSchema.Operations))

	b.WriteString("### What each client needs\n\n" +
		"go-proxmox is the tool's own client (provision/pve; the calls are in the table above). The other clients of a real host, and the operations " +
		"their flows (log in, read a VM, create one with a mapped GPU, change it, start, stop, delete) call, from their source:\n\n")
	b.WriteString("| operation | go-proxmox | Telmate proxmox-api-go | web UI | fake |\n|---|---|---|---|---|\n")
	byOp := map[string]map[string]string{}
	goProxmox := map[string]string{}
	for _, rt := range buildRoutes() {
		if op := schemaOpOf(rt); op != nil && rt.client != "" {
			goProxmox[opKey(op)] = rt.client
		}
	}
	for _, n := range clientNeeds {
		if byOp[n.op] == nil {
			byOp[n.op] = map[string]string{}
		}
		byOp[n.op][n.client] = n.src
	}
	var ops []*apischema.Operation
	for _, op := range apiSchema.Operations {
		if byOp[opKey(op)] != nil || goProxmox[opKey(op)] != "" {
			ops = append(ops, op)
		}
	}
	sort.SliceStable(ops, func(i, j int) bool { return opKey(ops[i]) < opKey(ops[j]) })
	cell := func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	}
	for _, op := range ops {
		fmt.Fprintf(&b, "| %s `%s` | %s | %s | %s | %s |\n", op.Method, op.Path, cell(goProxmox[opKey(op)]),
			cell(byOp[opKey(op)]["telmate"]), cell(byOp[opKey(op)]["webui"]), cov[op])
	}

	b.WriteString("\n### Every operation\n\n| operation | name | fake | formats accepted unchecked |\n|---|---|---|---|\n")
	for _, op := range apiSchema.Operations {
		fmt.Fprintf(&b, "| %s `%s` | %s | %s | %s |\n", op.Method, op.Path, op.Name, cov[op], cell(strings.Join(missing[op], ", ")))
	}
	return b.String()
}
