package jsonschema

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/aimachine/aimachine/fakes/pve/apischema"
)

// Schema is one parameter schema.
type Schema = apischema.Schema

// Errors maps a parameter path ("vmid", "net0.mtu") to PVE's message: the "errors" object of a 400
// "Parameter verification failed.".
type Errors map[string]string

// add is add_error: a second message for the same path is joined with a literal backslash-n
// (Perl join('\n', ...) in single quotes); an empty path is "_root".
func (e Errors) add(path, msg string) {
	if path == "" {
		path = "_root"
	}
	if old, ok := e[path]; ok {
		e[path] = old + `\n` + msg
		return
	}
	e[path] = msg
}

// Lookup finds the schema of a property that is not listed by name: PVE's "net[n]" entries of the API
// viewer stand for net0..net31 (see Indexed). nil means not defined.
type Lookup func(name string) *Schema

// Object is a set of properties to check against (a method's parameters or a property string's keys).
type Object struct {
	Props map[string]*Schema
	// More resolves names Props does not list (indexed properties); may be nil.
	More Lookup
	// Additional is additionalProperties: nil = not set (anything else allowed), false = refuse.
	Additional *bool
}

func (o Object) get(k string) *Schema {
	if s := o.Props[k]; s != nil {
		return s
	}
	if o.More != nil {
		return o.More(k)
	}
	return nil
}

// Validate is JSONSchema::validate for a method's parameters: the errors, or nil.
func Validate(params map[string]any, obj Object) Errors {
	errs := Errors{}
	CheckObject("", obj, params, errs)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// CheckObject is check_object: aliases remapped (value is changed), every schema key checked
// (missing, type, format, pattern, lengths, range, enum), then every value key (requires, unknown).
func CheckObject(path string, obj Object, value map[string]any, errs Errors) {
	sub := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	for _, k := range sortedKeys(value) {
		s := obj.get(k)
		if s == nil || s.Alias == "" {
			continue
		}
		if _, ok := value[s.Alias]; ok {
			errs.add(sub(k), fmt.Sprintf("cannot set both '%s' and its alias target '%s'", k, s.Alias))
		} else {
			value[s.Alias] = value[k]
			delete(value, k)
		}
	}
	for _, k := range sortedKeys(obj.Props) {
		CheckProp(value[k], obj.Props[k], sub(k), errs)
	}
	for _, k := range sortedKeys(value) {
		if _, listed := obj.Props[k]; listed {
			if r := obj.Props[k].Requires; r != "" {
				if _, ok := value[r]; !ok {
					errs.add(sub(r), fmt.Sprintf("missing property required by '%s'", sub(k)))
				}
			}
			continue
		}
		if s := obj.get(k); s != nil {
			CheckProp(value[k], s, sub(k), errs)
			if s.Requires != "" {
				if _, ok := value[s.Requires]; !ok {
					errs.add(sub(s.Requires), fmt.Sprintf("missing property required by '%s'", sub(k)))
				}
			}
			continue
		}
		if obj.Additional != nil && !*obj.Additional {
			errs.add(sub(k), "property is not defined in schema and the schema does not allow additional properties")
		}
	}
}

// CheckProp is check_prop for one value (nil = absent).
func CheckProp(value any, s *Schema, path string, errs Errors) {
	if s.Alias != "" {
		return
	}
	if value == nil {
		if s.Type == "null" {
			return
		}
		if !s.Optional {
			errs.add(path, "property is missing and it is not optional")
		}
		return
	}
	if !checkType(path, s.Type, value, errs) {
		return
	}
	switch v := value.(type) {
	case []any:
		if s.Items != nil {
			for i, el := range v {
				CheckProp(el, s.Items, fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
		return
	case map[string]any:
		if s.Properties != nil || s.AdditionalProperties != nil {
			var add *bool
			if s.AdditionalProperties != nil {
				b := bool(*s.AdditionalProperties)
				add = &b
			}
			CheckObject(path, Object{Props: s.Properties, Additional: add}, v, errs)
		}
		return
	case bool:
		return // a JSON boolean is a reference in Perl: no scalar checks
	}
	str := Scalar(value)
	if s.FormatSchema != nil || s.Format != "" {
		if msg, ok := checkFormat(s, str, path); !ok {
			errs.add(path, "invalid format - "+msg)
			return
		}
	}
	if s.Pattern != "" {
		if re := perlRegexp(s.Pattern); re != nil && !re.MatchString(str) {
			errs.add(path, "value does not match the regex pattern")
			return
		}
	}
	if s.MaxLength != nil && utf8.RuneCountInString(str) > *s.MaxLength {
		errs.add(path, fmt.Sprintf("value may only be %d characters long", *s.MaxLength))
		return
	}
	if s.MinLength != nil && utf8.RuneCountInString(str) < *s.MinLength {
		errs.add(path, fmt.Sprintf("value must be at least %d characters long", *s.MinLength))
		return
	}
	if isNumber(str) {
		f, _ := strconv.ParseFloat(str, 64)
		if s.Maximum != nil && f > float64(*s.Maximum) {
			errs.add(path, "value must have a maximum value of "+perlNum(float64(*s.Maximum)))
			return
		}
		if s.Minimum != nil && f < float64(*s.Minimum) {
			errs.add(path, "value must have a minimum value of "+perlNum(float64(*s.Minimum)))
			return
		}
	}
	if len(s.Enum) > 0 {
		for _, e := range s.Enum {
			if e == str {
				return
			}
		}
		errs.add(path, fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", str, strings.Join(s.Enum, ", ")))
	}
}

// checkType is check_type for the scalar types PVE uses in API parameters.
func checkType(path, typ string, value any, errs Errors) bool {
	switch typ {
	case "", "any":
		return true
	case "null":
		errs.add(path, "type check ('null') failed - value is not null")
		return false
	case "array":
		if _, ok := value.([]any); !ok {
			errs.add(path, "type check ('array') failed")
			return false
		}
		return true
	case "object":
		if _, ok := value.(map[string]any); !ok {
			errs.add(path, "type check ('object') failed")
			return false
		}
		return true
	}
	if ref := refName(value); ref != "" {
		if _, isBool := value.(bool); isBool && typ == "boolean" {
			return true
		}
		errs.add(path, fmt.Sprintf("type check ('%s') failed - got %s", typ, ref))
		return false
	}
	v := Scalar(value)
	switch typ {
	case "boolean":
		if v != "1" && v != "0" {
			errs.add(path, fmt.Sprintf("type check ('%s') failed - got '%s'", typ, v))
			return false
		}
	case "integer":
		if !reInteger.MatchString(v) {
			errs.add(path, fmt.Sprintf("type check ('%s') failed - got '%s'", typ, v))
			return false
		}
	case "number":
		if !isNumber(v) {
			errs.add(path, fmt.Sprintf("type check ('%s') failed - got '%s'", typ, v))
			return false
		}
	}
	return true
}

// refName is how Perl names a reference in "type check" errors.
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

// Scalar is a scalar value as Perl sees it: strings as they are, JSON numbers in their text form.
func Scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "1"
		}
		return "0"
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

var (
	reInteger = regexp.MustCompile(`^[+-]?\d+$`)
	reNumber  = regexp.MustCompile(`^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$`)
)

// isNumber is JSONSchema::is_number.
func isNumber(v string) bool { return reNumber.MatchString(v) }

// perlNum prints a schema bound as Perl interpolates it (100, 0.5).
func perlNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

var (
	reCache   sync.Map
	rePerlQr  = regexp.MustCompile(`\(\?\^([a-z]*):`)
	reOpenMin = regexp.MustCompile(`\{,(\d+)\}`)
)

// perlRegexp compiles a schema pattern as check_prop applies it, m/^$pattern$/: qr// text "(?^:…)"
// becomes "(?:…)", Perl ≥ 5.34's "{,n}" becomes "{0,n}". nil when Go cannot express it (then the
// pattern is not checked).
func perlRegexp(p string) *regexp.Regexp {
	if re, ok := reCache.Load(p); ok {
		return re.(*regexp.Regexp)
	}
	g := rePerlQr.ReplaceAllStringFunc(p, func(m string) string {
		flags := rePerlQr.FindStringSubmatch(m)[1]
		if flags == "" {
			return "(?:"
		}
		return "(?" + flags + ":"
	})
	g = reOpenMin.ReplaceAllString(g, "{0,$1}")
	re, err := regexp.Compile("^" + g + "$")
	if err != nil {
		return nil
	}
	reCache.Store(p, re)
	return re
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PatternOK tells whether the fake can apply a schema pattern (Go's regexp lacks look-around and
// back-references; such a pattern is not checked).
func PatternOK(p string) bool { return perlRegexp(p) != nil }
