package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits on what Parse accepts, so that a hostile or broken file cannot pin a CPU or fill
// memory: the sample catalog is about 5 KB with some 400 YAML nodes, nested 7 deep.
const (
	// MaxCatalogBytes is the largest catalog file Load reads and Parse decodes.
	MaxCatalogBytes = 1 << 20
	// MaxCatalogNodes bounds the YAML nodes of the catalog once every alias and merge key
	// is expanded: a few KB of nested merge keys otherwise expand to billions.
	MaxCatalogNodes = 100_000
	// MaxCatalogDepth bounds the nesting of mappings and lists (after expansion).
	MaxCatalogDepth = 32
)

// Load reads the catalog file at path (at most MaxCatalogBytes); see Parse. Only a regular
// file is read: the open does not block (a FIFO without a writer cannot hang it, as with the
// SSH key files) and a device, FIFO, socket or directory is refused without reading.
func Load(path string) (*Catalog, error) {
	f, err := os.OpenFile(path, keyFileOpenFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("catalog %s is %s, not a regular file: give the path of the catalog's YAML file", path, describeMode(fi.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxCatalogBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return Parse(data, path)
}

// LoadValid is Load followed by Validate: a catalog it returns is ready to deploy.
func LoadValid(path string) (*Catalog, error) {
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes one catalog document strictly and applies the defaults (ApplyDefaults).
//
// path names the file in error messages and is the directory relative ssh_keys[].file
// entries are read from; it may be "". Parse rejects what cannot be decoded — YAML syntax
// errors, unknown or duplicated fields, values of the wrong type, a second document —
// returning every such problem as ValidationErrors with its line and column.
// It does not check the values: call Validate for that (or use LoadValid).
func Parse(data []byte, path string) (*Catalog, error) {
	file := displayName(path)
	if len(data) > MaxCatalogBytes {
		return nil, ValidationErrors{{File: file, Msg: fmt.Sprintf("the catalog is larger than %d bytes: this is not a catalog (hint: check the file name)", MaxCatalogBytes)}}
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ValidationErrors{{File: file, Msg: "the catalog is empty (hint: start from the sample infrastructure-catalog.yml)"}}
		}
		return nil, ValidationErrors{syntaxError(file, err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, ValidationErrors{{File: file, Pos: Position{extra.Line, extra.Column},
			Msg: "a second YAML document: the catalog is a single document (remove the '---' separator)"}}
	case !errors.Is(err, io.EOF):
		return nil, ValidationErrors{syntaxError(file, err)}
	}

	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, ValidationErrors{{File: file, Pos: Position{doc.Line, doc.Column},
			Msg: fmt.Sprintf("got %s, want a mapping with version, network, nodes and vms", describeNode(doc))}}
	}

	// Before anything follows an alias: the walk below and yaml.v3's decoder both expand them.
	if e := checkExpansion(file, doc); e != nil {
		return nil, ValidationErrors{e}
	}

	w := &walker{file: file, pos: map[string]Position{}, nodes: map[string]*yaml.Node{}, byLine: map[int][]string{}}
	w.walk(doc, reflect.TypeOf(Catalog{}), "")

	var c Catalog
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, ValidationErrors{syntaxError(file, err)}
		}
		reported := map[string]bool{}
		for _, e := range w.errs {
			reported[e.Path] = true
		}
		for _, msg := range te.Errors {
			// A field the walk already reported (a float for an integer) is not reported twice.
			if e := w.typeError(msg); e != nil && (e.Path == "" || !reported[e.Path]) {
				w.errs = append(w.errs, e)
			}
		}
	}
	if len(w.errs) > 0 {
		sortErrors(w.errs)
		return nil, w.errs
	}

	c.Path = path
	c.positions = w.pos
	c.missingEnabled = w.missingEnabled
	dir := ""
	if path != "" {
		dir = filepath.Dir(path)
	}
	for i := range c.VMs {
		for j := range c.VMs[i].CloudInit.SSHKeys {
			c.VMs[i].CloudInit.SSHKeys[j].dir = dir
		}
	}
	c.ApplyDefaults()
	return &c, nil
}

// Position returns where the field at path (e.g. "vms[0].gpu.pci_address") is in the file.
// A scalar's position is its value's; a mapping's or list's is its key's.
func (c *Catalog) Position(path string) (Position, bool) {
	p, ok := c.positions[path]
	return p, ok
}

// fieldError places msg at path, or at the nearest parent the file has when the field itself
// is missing from it.
func (c *Catalog) fieldError(path, format string, args ...any) *FieldError {
	return &FieldError{File: displayName(c.Path), Pos: c.nearest(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

func (c *Catalog) nearest(path string) Position {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := c.positions[p]; ok {
			return pos
		}
	}
	return Position{}
}

// parentPath strips the last segment: vms[0].gpu.pcie -> vms[0].gpu -> vms[0] -> vms -> "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func displayName(path string) string {
	if path == "" {
		return "<input>"
	}
	return path
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns yaml.v3's "yaml: line N: msg" into a FieldError at line N.
func syntaxError(file string, err error) *FieldError {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FieldError{File: file, Pos: Position{Line: line}, Msg: "YAML syntax error: " + m[2]}
	}
	return &FieldError{File: file, Msg: "YAML syntax error: " + strings.TrimPrefix(msg, "yaml: ")}
}

func sortErrors(errs []*FieldError) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].Pos, errs[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// walker visits the YAML tree alongside the Go types, recording every field's position
// and reporting unknown and duplicated keys with their line and column (which yaml.v3's
// own strict mode reports without a column or a path).
type walker struct {
	file   string
	pos    map[string]Position
	nodes  map[string]*yaml.Node
	byLine map[int][]string
	errs   ValidationErrors
	// merging > 0 while walking merged keys: they never replace a field the mapping sets.
	merging int
	// missingEnabled lists the sections (gpu, vllm, ollama) written without "enabled".
	missingEnabled []string
}

func (w *walker) record(path string, key, value *yaml.Node) {
	if _, done := w.pos[path]; done && w.merging > 0 {
		return
	}
	at := key
	if value.Kind == yaml.ScalarNode || key == nil {
		at = value
	}
	w.pos[path] = Position{Line: at.Line, Column: at.Column}
	w.nodes[path] = value
	w.byLine[value.Line] = append(w.byLine[value.Line], path)
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	n = resolveAlias(n)
	if n == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch
		}
		fields := yamlFields(t)
		seen := map[string]*yaml.Node{}
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], resolveAlias(n.Content[i+1])
			if v == nil {
				continue
			}
			if k.Tag == "!!merge" {
				merges = append(merges, v)
				continue
			}
			p := joinPath(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				w.errs = append(w.errs, &FieldError{File: w.file, Pos: Position{k.Line, k.Column}, Path: p,
					Msg: fmt.Sprintf("duplicate key %q (first set at line %d)", k.Value, first.Line)})
				continue
			}
			seen[k.Value] = k
			ft, ok := fields[k.Value]
			if !ok {
				w.errs = append(w.errs, &FieldError{File: w.file, Pos: Position{k.Line, k.Column}, Path: p,
					Msg: unknownFieldMsg(k.Value, fields)})
				continue
			}
			w.record(p, k, v)
			w.walk(v, ft, p)
		}
		// Merged keys (<<: *anchor) come last: the mapping's own keys win, as in the decoder,
		// and a merged field is placed at the anchor it comes from.
		for _, m := range merges {
			w.walkMerge(m, t, path)
		}
		// A gpu, vllm or ollama section must say whether it is on: one without "enabled"
		// would silently be off. Validate reports these.
		if _, ok := fields["enabled"]; ok && w.merging == 0 {
			if _, set := w.pos[joinPath(path, "enabled")]; !set {
				w.missingEnabled = append(w.missingEnabled, path)
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			item = resolveAlias(item)
			if item == nil {
				continue
			}
			w.record(p, nil, item)
			if item.Kind == yaml.ScalarNode && item.ShortTag() == "!!null" {
				// The decoder would keep it as an empty value and the list would silently
				// hold a blank entry.
				w.errs = append(w.errs, &FieldError{File: w.file, Pos: Position{item.Line, item.Column}, Path: p,
					Msg: "an empty (null) list entry: remove the '-' line or give it a value"})
				continue
			}
			w.walk(item, t.Elem(), p)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		// yaml.v3 stores 2.5 into an int as 2, silently; a number too large for an
		// integer (1e30, 99999999999999999999) also reads as a float.
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
			w.errs = append(w.errs, &FieldError{File: w.file, Pos: Position{n.Line, n.Column}, Path: path,
				Msg: fmt.Sprintf("got the number %q, want a whole number within this field's range (no fraction, no exponent)", n.Value)})
		}
	}
}

// walkMerge follows a YAML merge key (<<: *anchor or <<: [*a, *b]).
func (w *walker) walkMerge(v *yaml.Node, t reflect.Type, path string) {
	w.merging++
	defer func() { w.merging-- }()
	if v.Kind == yaml.SequenceNode {
		for _, m := range v.Content {
			w.walk(m, t, path)
		}
		return
	}
	w.walk(v, t, path)
}

var (
	typeErrRE  = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `.*`)? into (.+)$")
	knownErrRE = regexp.MustCompile(`^line (\d+): (field \S+ not found in type|mapping key .* already defined|field \S+ already set)`)
	anyLineRE  = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// typeError converts one of yaml.v3's TypeError lines. Unknown and duplicated fields are
// already reported by the walk (with a column), so those come back nil when the walk
// found something.
func (w *walker) typeError(msg string) *FieldError {
	if knownErrRE.MatchString(msg) && len(w.errs) > 0 {
		return nil
	}
	if m := typeErrRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		path := w.pathAtLine(line)
		e := &FieldError{File: w.file, Pos: Position{Line: line}, Path: path}
		got := tagNoun(m[2])
		if n := w.nodes[path]; n != nil {
			e.Pos = w.pos[path]
			if n.Kind == yaml.ScalarNode {
				got = fmt.Sprintf("%s %q", got, n.Value)
			}
		}
		e.Msg = fmt.Sprintf("got %s, want %s", got, goTypeNoun(m[3]))
		if m[2] == "!!int" && goTypeNoun(m[3]) == "an integer" {
			e.Msg = fmt.Sprintf("got %s, too large for this field (want at most %d)", got, maxIntOf(m[3]))
		}
		return e
	}
	if m := anyLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FieldError{File: w.file, Pos: Position{Line: line}, Path: w.pathAtLine(line), Msg: m[2]}
	}
	return &FieldError{File: w.file, Msg: msg}
}

// pathAtLine is the deepest recorded field whose value starts on line.
func (w *walker) pathAtLine(line int) string {
	best := ""
	for _, p := range w.byLine[line] {
		if len(p) > len(best) || (len(p) == len(best) && p < best) {
			best = p
		}
	}
	return best
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// yamlFields maps a struct's YAML keys to their Go types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func unknownFieldMsg(name string, fields map[string]reflect.Type) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	sort.Strings(known)
	msg := fmt.Sprintf("unknown field %q", name)
	if s := closest(name, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return msg + "; known fields here: " + strings.Join(known, ", ")
}

// closest returns the known name within edit distance 2 of name, if any.
func closest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// maxIntOf is the largest value of a Go integer type named as yaml.v3 names it ("int", "*uint8").
func maxIntOf(t string) uint64 {
	t = strings.TrimPrefix(t, "*")
	bits := 64
	if i := strings.IndexAny(t, "0123456789"); i >= 0 {
		bits, _ = strconv.Atoi(t[i:])
	}
	if strings.HasPrefix(t, "uint") {
		return 1<<bits - 1
	}
	return 1<<(bits-1) - 1
}

func tagNoun(tag string) string {
	switch tag {
	case "!!str":
		return "the string"
	case "!!int":
		return "the integer"
	case "!!float":
		return "the number"
	case "!!bool":
		return "the boolean"
	case "!!null":
		return "null"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	}
	return "a " + tag + " value"
}

func goTypeNoun(t string) string {
	t = strings.TrimPrefix(t, "*")
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a mapping"
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the scalar %q", n.Value)
	}
	return "an empty document"
}
