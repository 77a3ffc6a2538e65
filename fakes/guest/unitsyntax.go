package guest

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// How systemd reads the text of unit files, Environment=, command lines and environment files.
// Each function follows the systemd source named in its comment (v255, Ubuntu 24.04's
// systemd 255.4): src/basic/fileio.c, conf-parser.c, extract-word.c, escape.c, env-file.c,
// env-util.c, src/shared/specifier.c, src/core/unit-printf.c, load-fragment.c.

var errUnbalanced = errors.New("unbalanced quoting")

// unitFileLines splits a unit file into logical lines: a line ends at \n, \r, \r\n or NUL
// (fileio.c read_line_full); a line ending in an odd number of backslashes continues on the
// next one, the backslash replaced by a space (systemd.syntax(7); conf-parser.c config_parse),
// and comment lines inside a continuation are skipped (the "KeyThree=value 3\ / # this line is
// ignored" example of systemd.syntax(7)).
func unitFileLines(content string) []string {
	var raw []string
	start := 0
	for i := 0; i < len(content); i++ {
		switch content[i] {
		case '\n', 0:
			raw = append(raw, content[start:i])
			start = i + 1
		case '\r':
			raw = append(raw, content[start:i])
			if i+1 < len(content) && content[i+1] == '\n' {
				i++
			}
			start = i + 1
		}
	}
	if start < len(content) {
		raw = append(raw, content[start:])
	}
	var out []string
	cont := ""
	inCont := false
	for _, l := range raw {
		if inCont {
			if t := strings.TrimLeft(l, " \t"); t != "" && (t[0] == '#' || t[0] == ';') {
				continue
			}
			l = cont + l
		}
		escaped := false
		for i := 0; i < len(l); i++ {
			if escaped {
				escaped = false
			} else if l[i] == '\\' {
				escaped = true
			}
		}
		if escaped {
			cont, inCont = l[:len(l)-1]+" ", true
			continue
		}
		out = append(out, l)
		cont, inCont = "", false
	}
	if inCont {
		out = append(out, cont)
	}
	return out
}

// cunescapeOne decodes one C escape after a backslash (escape.c cunescape_one): the bytes it
// stands for and how many input bytes it used; ok is false for an unknown or invalid escape.
func cunescapeOne(s string) (out string, n int, ok bool) {
	if s == "" {
		return "", 0, false
	}
	hex := func(t string) (rune, bool) {
		var v rune
		for _, c := range t {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | (c - '0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | (c - 'a' + 10)
			case c >= 'A' && c <= 'F':
				v = v<<4 | (c - 'A' + 10)
			default:
				return 0, false
			}
		}
		return v, true
	}
	switch c := s[0]; c {
	case 'a':
		return "\a", 1, true
	case 'b':
		return "\b", 1, true
	case 'f':
		return "\f", 1, true
	case 'n':
		return "\n", 1, true
	case 'r':
		return "\r", 1, true
	case 't':
		return "\t", 1, true
	case 'v':
		return "\v", 1, true
	case '\\', '"', '\'':
		return string(c), 1, true
	case 's':
		return " ", 1, true
	case 'x':
		if len(s) < 3 {
			return "", 0, false
		}
		v, ok := hex(s[1:3])
		if !ok || v == 0 {
			return "", 0, false // "Don't allow NUL bytes"
		}
		return string(v), 3, true
	case 'u', 'U':
		w := 4
		if c == 'U' {
			w = 8
		}
		if len(s) < 1+w {
			return "", 0, false
		}
		v, ok := hex(s[1 : 1+w])
		if !ok || v == 0 || !utf8.ValidRune(v) {
			return "", 0, false
		}
		return string(v), 1 + w, true
	case '0', '1', '2', '3', '4', '5', '6', '7':
		if len(s) < 3 {
			return "", 0, false
		}
		v := rune(0)
		for i := 0; i < 3; i++ {
			if s[i] < '0' || s[i] > '7' {
				return "", 0, false
			}
			v = v*8 + rune(s[i]-'0')
		}
		if v == 0 {
			return "", 0, false
		}
		return string(v), 3, true
	}
	return "", 0, false
}

// extractWord is extract_first_word(p, NULL, EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) with
// extract_first_word_and_warn's retry (extract-word.c): words are separated by whitespace,
// ' and " quote anywhere in a word, a backslash starts a C escape inside and outside quotes;
// an unknown escape is kept verbatim (the warning's "relax" retry). ok is false when no word
// is left.
func extractWord(p string) (word, rest string, ok bool, err error) {
	w, r, ok, err := extractWordFlags(p, false)
	if err != nil && !errors.Is(err, errUnbalanced) {
		return extractWordFlags(p, true)
	}
	return w, r, ok, err
}

var errBadEscape = errors.New("invalid escape")

func extractWordFlags(p string, relax bool) (string, string, bool, error) {
	const ws = " \t\n\r"
	i := 0
	for i < len(p) && strings.IndexByte(ws, p[i]) >= 0 {
		i++
	}
	if i == len(p) {
		return "", "", false, nil
	}
	var b strings.Builder
	var quote byte
	for i < len(p) {
		c := p[i]
		switch {
		case c == '\\':
			if i+1 >= len(p) {
				if relax && quote == 0 {
					b.WriteByte('\\')
					return b.String(), "", true, nil
				}
				return "", "", false, errBadEscape
			}
			out, n, ok := cunescapeOne(p[i+1:])
			if !ok {
				if !relax {
					return "", "", false, errBadEscape
				}
				b.WriteByte('\\')
				b.WriteByte(p[i+1])
				i += 2
				continue
			}
			b.WriteString(out)
			i += 1 + n
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				b.WriteByte(c)
			}
			i++
		case c == '\'' || c == '"':
			quote = c
			i++
		case strings.IndexByte(ws, c) >= 0:
			for i < len(p) && strings.IndexByte(ws, p[i]) >= 0 {
				i++
			}
			return b.String(), p[i:], true, nil
		default:
			b.WriteByte(c)
			i++
		}
	}
	if quote != 0 {
		return "", "", false, errUnbalanced
	}
	return b.String(), "", true, nil
}

// errBadSpecifier is specifier.c's -EBADSLT: "%" followed by a letter no table knows.
var errBadSpecifier = errors.New("unknown specifier")

// specifiers resolves unit specifiers (systemd.unit(5) "Specifiers"; specifier.c
// specifier_printf with unit-printf.c's table for the system manager): "%%" is "%", a "%"
// at the very end stays, an unknown specifier is an error.
func (s *system) specifiers(u *unit, text string) (string, error) {
	if !strings.Contains(text, "%") {
		return text, nil
	}
	name := u.name
	prefix, instance := strings.TrimSuffix(name, path.Ext(name)), ""
	if at := strings.Index(prefix, "@"); at >= 0 {
		prefix, instance = prefix[:at], prefix[at+1:]
	}
	read := func(f string) string { return strings.TrimSpace(s.g.fs.readString(f)) }
	osRelease := func(key string) string {
		for _, l := range strings.Split(s.g.fs.readString("/etc/os-release"), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok && k == key {
				return strings.Trim(v, `"`)
			}
		}
		return ""
	}
	host := s.g.hostname()
	lookup := func(c byte) (string, bool) {
		switch c {
		case 'n':
			return name, true
		case 'N':
			return strings.TrimSuffix(name, path.Ext(name)), true
		case 'p', 'P':
			return prefix, true
		case 'i', 'I':
			return instance, true
		case 'j', 'J':
			j := prefix
			if k := strings.LastIndex(j, "-"); k >= 0 {
				j = j[k+1:]
			}
			return j, true
		case 'f':
			if instance != "" {
				return "/" + instance, true
			}
			return "/" + prefix, true
		case 'y':
			return u.path, true
		case 'Y':
			return path.Dir(u.path), true
		case 'd':
			return "/run/credentials/" + name, true
		case 'h':
			return "/root", true
		case 's':
			return "/bin/sh", true
		case 'u', 'g':
			return "root", true
		case 'U', 'G':
			return "0", true
		case 'H', 'q':
			return host, true
		case 'l':
			h, _, _ := strings.Cut(host, ".")
			return h, true
		case 'm':
			return read("/etc/machine-id"), true
		case 'b':
			return strings.ReplaceAll(read("/proc/sys/kernel/random/boot_id"), "-", ""), true
		case 'v':
			return kernelRelease, true
		case 'a':
			return "x86-64", true
		case 'o':
			return osRelease("ID"), true
		case 'w':
			return osRelease("VERSION_ID"), true
		case 'B':
			return osRelease("BUILD_ID"), true
		case 'W':
			return osRelease("VARIANT_ID"), true
		case 'A':
			return osRelease("IMAGE_VERSION"), true
		case 'M':
			return osRelease("IMAGE_ID"), true
		case 'C':
			return "/var/cache", true
		case 'E':
			return "/etc", true
		case 'L':
			return "/var/log", true
		case 'S':
			return "/var/lib", true
		case 't':
			return "/run", true
		case 'T':
			return "/tmp", true
		case 'V':
			return "/var/tmp", true
		}
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		if text[i] != '%' {
			b.WriteByte(text[i])
			continue
		}
		if i+1 == len(text) {
			b.WriteByte('%')
			break
		}
		i++
		if text[i] == '%' {
			b.WriteByte('%')
			continue
		}
		v, ok := lookup(text[i])
		if !ok {
			return "", fmt.Errorf("%w %%%c", errBadSpecifier, text[i])
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// execLine parses an Exec*= value (load-fragment.c config_parse_exec): the prefixes -@:+!,
// words extracted as by extractWord with specifiers resolved per word, ";" alone separating
// commands and "\;" a literal ";". It returns each command's argv (with argv[0] the path) and
// whether the line had the ":" prefix (no environment substitution).
func (s *system) execLine(u *unit, rvalue string) (cmds [][]string, noSubst []bool, err error) {
	p := strings.TrimLeft(rvalue, " \t\n\r")
	for p != "" {
		first, rest, ok, err := extractWord(p)
		if err != nil {
			return nil, nil, fmt.Errorf("%w in %q", err, rvalue)
		}
		if !ok {
			break
		}
		p = rest
		f := first
		raw := false
		for f != "" && strings.IndexByte("-@:+!", f[0]) >= 0 {
			raw = raw || f[0] == ':'
			f = f[1:]
		}
		exe, err := s.specifiers(u, f)
		if err != nil {
			return nil, nil, fmt.Errorf("failed to resolve unit specifiers in %q: %w", f, err)
		}
		if exe == "" {
			return nil, nil, fmt.Errorf("empty path in command line: %q", rvalue)
		}
		argv := []string{exe}
		for p != "" {
			if p[0] == ';' && (len(p) == 1 || strings.IndexByte(" \t\n\r", p[1]) >= 0) {
				p = strings.TrimLeft(p[1:], " \t\n\r")
				break
			}
			if strings.HasPrefix(p, `\;`) && (len(p) == 2 || strings.IndexByte(" \t\n\r", p[2]) >= 0) {
				argv = append(argv, ";")
				p = strings.TrimLeft(p[2:], " \t\n\r")
				continue
			}
			w, r, ok, err := extractWord(p)
			if err != nil {
				return nil, nil, fmt.Errorf("%w in %q", err, rvalue)
			}
			if !ok {
				p = ""
				break
			}
			p = r
			res, err := s.specifiers(u, w)
			if err != nil {
				return nil, nil, fmt.Errorf("failed to resolve unit specifiers in %q: %w", w, err)
			}
			argv = append(argv, res)
		}
		cmds = append(cmds, argv)
		noSubst = append(noSubst, raw)
	}
	return cmds, noSubst, nil
}

// validEnvName is env-util.c env_name_is_valid: ASCII letters, digits and _, not starting
// with a digit.
func validEnvName(n string) bool {
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validEnvAssignment is env-util.c env_assignment_is_valid (v255): a valid name, a value that
// is valid UTF-8 (control characters allowed) and not longer than ARG_MAX-3.
func validEnvAssignment(kv string) bool {
	k, v, ok := strings.Cut(kv, "=")
	return ok && validEnvName(k) && utf8.ValidString(v) && len(v) <= 2097152-3
}

// environmentWords parses Environment= (load-fragment.c config_parse_environ): words as by
// extractWord, specifiers resolved, invalid assignments ignored with a warning.
func (s *system) environmentWords(u *unit, rvalue string) []string {
	var out []string
	for p := rvalue; ; {
		w, rest, ok, err := extractWord(p)
		if err != nil {
			s.logUnit(u.name, "systemd[1]: %s: Invalid syntax, ignoring: %s", u.path, rvalue)
			return out
		}
		if !ok {
			return out
		}
		p = rest
		res, err := s.specifiers(u, w)
		if err != nil {
			s.logUnit(u.name, "systemd[1]: %s: Failed to resolve specifiers in %s, ignoring: %v", u.path, w, err)
			continue
		}
		if !validEnvAssignment(res) {
			s.logUnit(u.name, "systemd[1]: %s: Invalid environment assignment, ignoring: %s", u.path, res)
			continue
		}
		out = append(out, res)
	}
}

// parseEnvFile reads an EnvironmentFile= (env-file.c parse_env_file_internal, then
// load_env_file_push and exec-invoke's strv_env_clean_with_callback): KEY=VALUE lines, # and ;
// comments, unquoted values with backslash escapes and trailing whitespace dropped, single
// quotes verbatim, double quotes with \" \\ \` \$ escapes and continuation; lines may span
// quotes; invalid assignments are dropped. The result keeps file order, later keys win.
func parseEnvFile(data string) (kvs [][2]string, dropped []string) {
	const (
		preKey = iota
		key
		preValue
		value
		valueEscape
		singleQuote
		doubleQuote
		doubleQuoteEscape
		comment
		commentEscape
	)
	const ws, nl = " \t\n\r", "\n\r"
	state := preKey
	var k, v strings.Builder
	hasValue := false
	lastKeyWS, lastValueWS := -1, -1
	push := func(trimValue bool) {
		ks := k.String()
		if lastKeyWS >= 0 {
			ks = ks[:lastKeyWS]
		}
		vs := v.String()
		if trimValue && lastValueWS >= 0 {
			vs = vs[:lastValueWS]
		}
		_ = hasValue
		if !utf8.ValidString(ks) || !utf8.ValidString(vs) || !validEnvAssignment(ks+"="+vs) {
			dropped = append(dropped, ks)
		} else {
			kvs = append(kvs, [2]string{ks, vs})
		}
		k.Reset()
		v.Reset()
		hasValue = false
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch state {
		case preKey:
			if c == '#' || c == ';' {
				state = comment
			} else if strings.IndexByte(ws, c) < 0 {
				state = key
				lastKeyWS = -1
				k.WriteByte(c)
			}
		case key:
			if strings.IndexByte(nl, c) >= 0 {
				state = preKey
				k.Reset()
			} else if c == '=' {
				state = preValue
				lastValueWS = -1
			} else {
				if strings.IndexByte(ws, c) < 0 {
					lastKeyWS = -1
				} else if lastKeyWS < 0 {
					lastKeyWS = k.Len()
				}
				k.WriteByte(c)
			}
		case preValue:
			switch {
			case strings.IndexByte(nl, c) >= 0:
				state = preKey
				push(false)
			case c == '\'':
				state = singleQuote
			case c == '"':
				state = doubleQuote
			case c == '\\':
				state = valueEscape
			case strings.IndexByte(ws, c) < 0:
				state = value
				v.WriteByte(c)
			}
		case value:
			switch {
			case strings.IndexByte(nl, c) >= 0:
				state = preKey
				push(true)
			case c == '\\':
				state = valueEscape
				lastValueWS = -1
			default:
				if strings.IndexByte(ws, c) < 0 {
					lastValueWS = -1
				} else if lastValueWS < 0 {
					lastValueWS = v.Len()
				}
				v.WriteByte(c)
			}
		case valueEscape:
			state = value
			if strings.IndexByte(nl, c) < 0 {
				v.WriteByte(c)
			}
		case singleQuote:
			if c == '\'' {
				state = preValue
			} else {
				v.WriteByte(c)
			}
		case doubleQuote:
			if c == '"' {
				state = preValue
			} else if c == '\\' {
				state = doubleQuoteEscape
			} else {
				v.WriteByte(c)
			}
		case doubleQuoteEscape:
			state = doubleQuote
			if strings.IndexByte("\"\\`$", c) >= 0 {
				v.WriteByte(c)
			} else if c != '\n' {
				v.WriteByte('\\')
				v.WriteByte(c)
			}
		case comment:
			if c == '\\' {
				state = commentEscape
			} else if strings.IndexByte(nl, c) >= 0 {
				state = preKey
			}
		case commentEscape:
			if strings.IndexByte(nl, c) >= 0 {
				state = preKey
			} else {
				state = comment
			}
		}
	}
	switch state {
	case preValue, value, valueEscape, singleQuote, doubleQuote, doubleQuoteEscape:
		push(state == value)
	}
	return kvs, dropped
}

// replaceEnvArgv substitutes the environment into a command line at start-up (env-util.c
// replace_env_argv, systemd.service(5) "Command lines"): a word that is "$NAME" becomes the
// value split at whitespace (quotes respected, then removed), zero or more words; inside any
// other word "${NAME}" becomes the value as-is (unset: empty), "$$" a single "$"; anything
// else stays.
func replaceEnvArgv(argv []string, env map[string]string) []string {
	var out []string
	for _, w := range argv {
		if len(w) > 0 && w[0] == '$' && (len(w) == 1 || w[1] != '{' && w[1] != '$') {
			name := w[1:]
			if !validEnvName(name) {
				continue
			}
			val, ok := env[name]
			if !ok {
				continue
			}
			for p := val; ; {
				f, rest, ok, err := extractWordFlags(p, true)
				if err != nil || !ok {
					break
				}
				out = append(out, f)
				p = rest
			}
			continue
		}
		out = append(out, replaceEnv(w, env))
	}
	return out
}

// replaceEnv is env-util.c replace_env with no flags: "$$" → "$", "${NAME}" → value,
// "${NAME:-default}" and "${NAME:+alternate}"; an unterminated "${" stays as it is.
func replaceEnv(w string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] != '$' || i+1 == len(w) {
			b.WriteByte(w[i])
			continue
		}
		switch w[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(w[i+2:], '}')
			if end < 0 {
				b.WriteString(w[i:])
				return b.String()
			}
			expr := w[i+2 : i+2+end]
			name, rest := expr, ""
			if j := strings.Index(expr, ":"); j >= 0 {
				name, rest = expr[:j], expr[j:]
			}
			val, set := env[name]
			switch {
			case strings.HasPrefix(rest, ":-"):
				if val == "" {
					val = rest[2:]
				}
			case strings.HasPrefix(rest, ":+"):
				if set && val != "" {
					val = rest[2:]
				} else {
					val = ""
				}
			}
			b.WriteString(val)
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
