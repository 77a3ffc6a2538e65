package encode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxArg is the longest single argument or environment string Linux execve(2) accepts
// (MAX_ARG_STRLEN, 32 pages of 4 KiB, include/uapi/linux/binfmts.h), counting its NUL.
const MaxArg = 32 * 4096

// Error is a value a sink cannot carry. It never holds the value.
type Error struct {
	Sink   string // "shell word", "systemd command-line argument", …
	Reason string // what in the value, and why the sink cannot carry it
}

func (e *Error) Error() string { return "cannot write the value into a " + e.Sink + ": " + e.Reason }

func refuse(sink, format string, a ...any) error {
	return &Error{Sink: sink, Reason: fmt.Sprintf(format, a...)}
}

// checkText refuses invalid UTF-8 and NUL bytes, which no sink here can carry.
func checkText(sink, s string) error {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return refuse(sink, "it contains a NUL byte (at byte %d), which ends a C string", i)
	}
	if !utf8.ValidString(s) {
		return refuse(sink, "it is not valid UTF-8 (at byte %d)", invalidAt(s))
	}
	return nil
}

func invalidAt(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return -1
}

// control finds the first C0 control character or DEL.
func control(s string) (int, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return i, true
		}
	}
	return 0, false
}

// --- POSIX shell ---

const shellSink = "shell word"

// ShellQuote is one POSIX shell word that the shell reads back as s: s itself when it holds
// only characters no shell treats specially, else s in single quotes, each ' written as '\”
// (POSIX.1-2017 XCU 2.2.2: "Enclosing characters in single-quotes shall preserve the literal
// value of each character within the single-quotes"; no expansion happens inside). A NUL
// byte cannot be in an argument at all: Shell refuses it.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Shell is ShellQuote for a value that may hold anything: it refuses a NUL byte.
func Shell(s string) (string, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return "", refuse(shellSink, "it contains a NUL byte (at byte %d), which no command argument can hold", i)
	}
	return ShellQuote(s), nil
}

// --- systemd unit files ---

// A unit file is read line by line, and a line ends at \n, \r, \r\n or NUL (fileio.c
// read_line_full); a line ending in a backslash continues on the next one (systemd.syntax(7)).
// The encoders below therefore never emit a raw control character.

const execSink = "systemd command-line argument"

// ExecArg is one argument of an ExecStart=/ExecStartPre=/… command line that the started
// process receives as exactly s, as one argument. systemd.service(5) "Command lines": the
// line is split into words with C-style escapes and quotes removed (extract_first_word with
// EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE), each word then has its specifiers resolved
// (systemd.unit(5): "%%" is a single "%"), and at start-up "$VAR" and "${VAR}" are replaced
// by the environment ("to pass a literal dollar sign, use $$"). So: s goes in double quotes,
// \ and " are backslash-escaped, % is doubled, $ is doubled, and control characters are
// written as C escapes (\n, \t, \xNN). Refused: NUL, invalid UTF-8, and more than an execve
// argument can hold (MaxArg). A word of letters, digits and -_./:=@,+ only is left bare. Not
// for argv[0], whose leading -@:+! are prefixes.
func ExecArg(s string) (string, error) {
	if err := checkText(execSink, s); err != nil {
		return "", err
	}
	if len(s)+1 > MaxArg {
		return "", refuse(execSink, "it is %d bytes long; Linux passes at most %d bytes in one argument (MAX_ARG_STRLEN)", len(s), MaxArg-1)
	}
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+", r))
	}) < 0 {
		return s, nil // nothing systemd reads specially: the bare word
	}
	return `"` + unitEscape(s, true) + `"`, nil
}

// unitEscape escapes for a double-quoted word that systemd unquotes, C-unescapes and
// specifier-expands (and, with dollar, environment-expands).
func unitEscape(s string, dollar bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '"':
			b.WriteString(`\"`)
		case c == '%':
			b.WriteString("%%")
		case c == '$' && dollar:
			b.WriteString("$$")
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

const envSink = "systemd Environment= assignment"

// Environment is one word of Environment= that sets key to exactly value. systemd.exec(5)
// "Environment=": a space-separated list of assignments, quotes and C escapes removed
// (extract_first_word with EXTRACT_CUNESCAPE|EXTRACT_UNQUOTE, load-fragment.c
// config_parse_environ), then specifiers resolved; no variable expansion. The key must be a
// valid name (env-util.c env_name_is_valid).
func Environment(key, value string) (string, error) {
	if err := checkName(envSink, key); err != nil {
		return "", err
	}
	if err := checkText(envSink, value); err != nil {
		return "", err
	}
	if len(key)+1+len(value)+1 > MaxArg {
		return "", refuse(envSink, "it is %d bytes long; Linux passes at most %d bytes in one environment string (MAX_ARG_STRLEN)", len(value), MaxArg-len(key)-2)
	}
	return `"` + key + "=" + unitEscape(value, false) + `"`, nil
}

func checkName(sink, key string) error {
	if key == "" || key[0] >= '0' && key[0] <= '9' {
		return refuse(sink, "the variable name %q is empty or starts with a digit", key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return refuse(sink, "the variable name %q holds %q; names are ASCII letters, digits and _", key, c)
		}
	}
	return nil
}

const unitTextSink = "systemd unit setting"

// UnitString is the value of a free-text unit setting (Description=, a path in
// WorkingDirectory=, ListenStream=, …) that systemd reads back as s: such settings are taken
// verbatim after leading and trailing whitespace is stripped, with specifiers resolved
// (systemd.unit(5) "Specifiers": "%%" is a single "%"). There are no escapes, so a control
// character (a newline would start another directive), leading or trailing whitespace and a
// trailing backslash (a line continuation, systemd.syntax(7)) cannot be carried and are refused.
func UnitString(s string) (string, error) {
	if err := checkText(unitTextSink, s); err != nil {
		return "", err
	}
	if i, ok := control(s); ok {
		return "", refuse(unitTextSink, "it contains the control character %q (at byte %d); unit settings have no escapes and a line ends at \\n or \\r", s[i], i)
	}
	if strings.TrimSpace(s) != s {
		return "", refuse(unitTextSink, "it has leading or trailing whitespace, which systemd strips")
	}
	if strings.HasSuffix(s, `\`) {
		return "", refuse(unitTextSink, "it ends with a backslash, which continues the line")
	}
	return strings.ReplaceAll(s, "%", "%%"), nil
}

const envFileSink = "systemd EnvironmentFile= line"

// EnvFileLine is one line of a file read by EnvironmentFile= that sets key to exactly value,
// ending in "\n". systemd.exec(5) "EnvironmentFile=": "a double-quoted value after the = can
// span multiple lines, and the same escape sequences are recognized as in POSIX shell
// double-quoted strings. A backslash followed by any of "\`$ will preserve that character";
// any other backslash is kept verbatim (env-file.c, state DOUBLE_QUOTE_VALUE_ESCAPE). So value
// goes in double quotes with \ " ` $ escaped: the file carries anything else as it is, and no
// shell ever reads it (the service manager does). Refused besides NUL and invalid UTF-8:
// control characters — systemd.exec(5) says non-printable values "are currently rejected"
// (env-util.c env_value_is_valid dropped them before v248) — and values longer than an
// environment string (MaxArg).
func EnvFileLine(key, value string) (string, error) {
	if err := checkName(envFileSink, key); err != nil {
		return "", err
	}
	if err := checkText(envFileSink, value); err != nil {
		return "", err
	}
	if i, ok := control(value); ok {
		return "", refuse(envFileSink, "it contains the control character %q (at byte %d); environment values must be printable", value[i], i)
	}
	if len(key)+1+len(value)+1 > MaxArg {
		return "", refuse(envFileSink, "it is %d bytes long; Linux passes at most %d bytes in one environment string (MAX_ARG_STRLEN)", len(value), MaxArg-len(key)-2)
	}
	var b strings.Builder
	b.WriteString(key + `="`)
	for i := 0; i < len(value); i++ {
		if strings.IndexByte("\"\\`$", value[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(value[i])
	}
	b.WriteString("\"\n")
	return b.String(), nil
}

// --- curl ---

const headerSink = "curl header-file line"

// HeaderLine is one line of a file passed to curl as --header @FILE, sending the HTTP header
// "name: value". curl(1) --header: "adds a header for each line in the input file"; curl
// splits the file at \r and \n (tool_getparam.c). RFC 9110 §5.5: a field value holds no
// control characters other than HTAB, and recipients strip leading and trailing whitespace, so
// such values cannot arrive byte-exact and are refused; the name must be a token (§5.1).
func HeaderLine(name, value string) (string, error) {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return "", refuse(headerSink, "the header name %q holds %q, which is not a token character (RFC 9110 §5.6.2)", name, c)
		}
	}
	if name == "" {
		return "", refuse(headerSink, "the header name is empty")
	}
	if err := checkText(headerSink, value); err != nil {
		return "", err
	}
	if i, ok := control(value); ok {
		return "", refuse(headerSink, "it contains the control character %q (at byte %d); HTTP field values cannot hold it", value[i], i)
	}
	if strings.Trim(value, " ") != value {
		return "", refuse(headerSink, "it has leading or trailing spaces, which HTTP recipients strip from a field value")
	}
	return name + ": " + value + "\n", nil
}

// --- YAML and JSON ---

const yamlSink = "YAML string"

// YAML is a YAML double-quoted scalar that a YAML 1.1/1.2 parser reads back as exactly s (YAML
// 1.2 §7.3.1: in double quotes, "\" escapes; §5.7 lists \0 \a \b \t \n \v \f \r \e \" \\ \N \_ \L
// \P \xXX \uXXXX). Everything outside YAML's printable set (§5.1: C0 except TAB/LF/CR, DEL, C1,
// U+FEFF, U+FFFE/FFFF) and line breaks are escaped, so the scalar stays on one line. Refused:
// invalid UTF-8.
func YAML(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", refuse(yamlSink, "it is not valid UTF-8 (at byte %d)", invalidAt(s))
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r >= 0x7f && r <= 0x9f || r == 0xfeff || r == 0x2028 || r == 0x2029 || r == 0xfffe || r == 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

const jsonSink = "JSON string"

// JSON is a JSON string (RFC 8259 §7) that a JSON parser reads back as exactly s. Invalid
// UTF-8 is refused (encoding/json would silently turn it into U+FFFD).
func JSON(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", refuse(jsonSink, "it is not valid UTF-8 (at byte %d)", invalidAt(s))
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(s); err != nil {
		return "", refuse(jsonSink, "%v", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
