package jsonschema

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// FormatError is PVE's "format error" exception of parse_property_string: its text is what a 400
// shows after "invalid format - ".
type FormatError struct{ Errs Errors }

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("format error\n")
	for _, k := range sortedKeys(e.Errs) {
		fmt.Fprintf(&b, "%s: %s\n", k, e.Errs[k])
	}
	return b.String()
}

var (
	reKV   = regexp.MustCompile(`^([^=]+)=(.+)$`)
	reBlnk = regexp.MustCompile(`^\s*$`)
)

// ParsePropertyString is JSONSchema::parse_property_string: "virtio,bridge=vmbr0" read with a
// property string's sub-schema into key → value (aliases resolved, booleans 0/1), then checked with
// check_object (no additional keys). Errors carry PVE's die texts (ending in "\n").
func ParsePropertyString(format map[string]*Schema, data, path string) (map[string]string, error) {
	res := map[string]string{}
	defaultKey := ""
	for _, part := range strings.Split(data, ",") {
		if reBlnk.MatchString(part) {
			continue
		}
		if m := reKV.FindStringSubmatch(part); m != nil {
			k, v := m[1], m[2]
			if _, dup := res[k]; dup {
				return nil, fmt.Errorf("duplicate key in comma-separated list property: %s\n", k)
			}
			s := format[k]
			if s != nil && s.Alias != "" {
				if ka := s.KeyAlias; ka != "" {
					if _, ok := res[ka]; ok {
						return nil, fmt.Errorf("key alias '%s' is already defined\n", ka)
					}
					res[ka] = k
				}
				k = s.Alias
				s = format[k]
				if _, ok := res[k]; ok {
					return nil, fmt.Errorf("key '%s' is already defined (via alias)\n", k)
				}
			}
			if s == nil {
				return nil, fmt.Errorf("invalid key in comma-separated list property: %s\n", k)
			}
			if s.Type == "boolean" {
				v = parseBoolean(v)
			}
			res[k] = v
			continue
		}
		if strings.Contains(part, "=") {
			return nil, errors.New("missing key in comma-separated list property\n")
		}
		if defaultKey != "" {
			return nil, fmt.Errorf("duplicate key in comma-separated list property: %s\n", defaultKey)
		}
		for _, k := range sortedKeys(format) {
			if !format[k].DefaultKey {
				continue
			}
			defaultKey = k
			if res[k] != "" {
				return nil, fmt.Errorf("duplicate key in comma-separated list property: %s\n", k)
			}
			if format[k].Type == "boolean" {
				part = parseBoolean(part)
			}
			res[k] = part
			break
		}
		if defaultKey == "" {
			return nil, errors.New("value without key, but schema does not define a default key\n")
		}
	}
	no := false
	errs := Errors{}
	vals := make(map[string]any, len(res))
	for k, v := range res {
		vals[k] = v
	}
	CheckObject(path, Object{Props: format, Additional: &no}, vals, errs)
	if len(errs) > 0 {
		return nil, &FormatError{Errs: errs}
	}
	return res, nil
}

// parseBoolean is JSONSchema::parse_boolean with the "// $v" fallback of its callers.
func parseBoolean(v string) string {
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return "1"
	case "0", "off", "no", "false":
		return "0"
	}
	return v
}

// PrintPropertyString is JSONSchema::print_property_string: the default key first (combined with its
// keyAlias partner, "virtio=BC:24:11:…"), then required keys sorted, then the rest sorted; skip lists
// keys left out. disk-size values are printed with format_size.
func PrintPropertyString(data map[string]string, format map[string]*Schema, skip ...string) (string, error) {
	defaultKey := ""
	keyAlias := map[string]string{}
	for _, k := range sortedKeys(format) {
		s := format[k]
		if s.DefaultKey {
			defaultKey = k
		}
		if s.Alias != "" && s.KeyAlias != "" {
			keyAlias[s.KeyAlias] = s.Alias
		}
	}
	done := map[string]bool{}
	for _, k := range skip {
		done[k] = true
	}
	var parts []string
	value := func(k, v string, s *Schema) (string, error) {
		if s != nil && s.Format == "disk-size" {
			if n, ok := ParseSize(v); ok {
				return FormatSize(n), nil
			}
			return v, nil
		}
		if strings.Contains(v, ",") {
			return "", fmt.Errorf("illegal value with commas for %s\n", k)
		}
		return v, nil
	}
	add := func(k string, isDefault bool) error {
		if done[k] {
			return nil
		}
		done[k] = true
		v, ok := data[k]
		if !ok {
			return nil
		}
		s := format[k]
		if partner := keyAlias[k]; partner != "" {
			if pv, ok := data[partner]; ok {
				a, err := value(k, v, s)
				if err != nil {
					return err
				}
				b, err := value(partner, pv, format[partner])
				if err != nil {
					return err
				}
				parts = append(parts, a+"="+b)
				done[partner] = true
				return nil
			}
		}
		if s != nil && s.Alias != "" {
			s = format[s.Alias]
		}
		if s == nil {
			return fmt.Errorf("invalid key '%s'\n", k)
		}
		t, err := value(k, v, s)
		if err != nil {
			return err
		}
		if isDefault {
			parts = append(parts, t)
		} else {
			parts = append(parts, k+"="+t)
		}
		return nil
	}
	if defaultKey != "" {
		if err := add(defaultKey, true); err != nil {
			return "", err
		}
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if s := format[k]; s != nil && !s.Optional {
			if err := add(k, false); err != nil {
				return "", err
			}
		}
	}
	for _, k := range keys {
		if err := add(k, false); err != nil {
			return "", err
		}
	}
	return strings.Join(parts, ","), nil
}

var reSize = regexp.MustCompile(`^(\d+(\.\d+)?)([KMGT](?:iB)?)?$`)

// ParseSize is JSONSchema::parse_size (bytes; false when it does not parse).
func ParseSize(v string) (uint64, bool) {
	m := reSize.FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	var f float64
	fmt.Sscan(m[1], &f)
	switch strings.TrimSuffix(m[3], "iB") {
	case "K":
		f *= 1 << 10
	case "M":
		f *= 1 << 20
	case "G":
		f *= 1 << 30
	case "T":
		f *= 1 << 40
	}
	return uint64(f), true
}

// FormatSize is JSONSchema::format_size: the largest unit that divides the size.
func FormatSize(n uint64) string {
	kb := n / 1024
	if kb*1024 != n {
		return fmt.Sprint(n)
	}
	mb := kb / 1024
	if mb*1024 != kb {
		return fmt.Sprintf("%dK", kb)
	}
	gb := mb / 1024
	if gb*1024 != mb {
		return fmt.Sprintf("%dM", mb)
	}
	tb := gb / 1024
	if tb*1024 != gb {
		return fmt.Sprintf("%dG", gb)
	}
	return fmt.Sprintf("%dT", tb)
}
