package guest

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// sed: the simple subset provisioning scripts use — s///[gI], /re/d, /re/p with -n, Nd, $d,
// /re/s///, a/i/c text, -i in place, -E/-r, several -e.
type sedCmd struct {
	addrRe   *regexp.Regexp
	addrLine int // 0 none, -1 last
	op       byte
	re       *regexp.Regexp
	repl     string
	global   bool
	text     string
	print    bool
}

func parseSed(script string, ext bool) ([]sedCmd, error) {
	var out []sedCmd
	for _, part := range splitSedScript(script) {
		s := strings.TrimSpace(part)
		if s == "" {
			continue
		}
		var c sedCmd
		switch {
		case s[0] == '/':
			end := strings.Index(s[1:], "/")
			if end < 0 {
				return nil, errSed
			}
			re, err := compileSedRE(s[1:end+1], ext, false)
			if err != nil {
				return nil, err
			}
			c.addrRe = re
			s = strings.TrimSpace(s[end+2:])
		case s[0] == '$':
			c.addrLine = -1
			s = strings.TrimSpace(s[1:])
		case s[0] >= '0' && s[0] <= '9':
			i := 0
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
			c.addrLine, _ = strconv.Atoi(s[:i])
			s = strings.TrimSpace(s[i:])
		}
		if s == "" {
			return nil, errSed
		}
		c.op = s[0]
		switch c.op {
		case 's':
			if len(s) < 2 {
				return nil, errSed
			}
			d := string(s[1])
			parts := splitUnescaped(s[2:], d)
			if len(parts) < 3 {
				return nil, errSed
			}
			flags := parts[2]
			re, err := compileSedRE(parts[0], ext, strings.Contains(flags, "I"))
			if err != nil {
				return nil, err
			}
			c.re, c.repl, c.global, c.print = re, parts[1], strings.Contains(flags, "g"), strings.Contains(flags, "p")
		case 'd', 'p':
		case 'a', 'i', 'c':
			t := strings.TrimPrefix(s[1:], "\\")
			c.text = strings.TrimPrefix(strings.TrimLeft(t, " "), "\n")
		default:
			return nil, errSed
		}
		out = append(out, c)
	}
	return out, nil
}

type sedError struct{}

func (sedError) Error() string { return "-e expression #1, char 1: unknown command" }

var errSed = sedError{}

func splitSedScript(s string) []string {
	var parts []string
	i := 0
	for i < len(s) {
		j := i
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j < len(s) && s[j] == '/' {
			k := j + 1
			for k < len(s) && s[k] != '/' {
				if s[k] == '\\' {
					k++
				}
				k++
			}
			j = k + 1
		} else {
			for j < len(s) && (s[j] == '$' || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
		}
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if j+1 < len(s) && s[j] == 's' {
			d := s[j+1]
			k, n := j+2, 0
			for k < len(s) && n < 2 {
				if s[k] == '\\' {
					k += 2
					continue
				}
				if s[k] == d {
					n++
				}
				k++
			}
			j = k
		} else if j < len(s) && (s[j] == 'a' || s[j] == 'i' || s[j] == 'c') {
			if k := strings.IndexByte(s[j:], '\n'); k < 0 {
				j = len(s)
			} else {
				j += k
			}
		}
		k := j
		for k < len(s) && s[k] != ';' && s[k] != '\n' {
			k++
		}
		if k > len(s) {
			k = len(s)
		}
		parts = append(parts, s[i:k])
		i = k + 1
	}
	return parts
}

func splitUnescaped(s, d string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && string(s[i+1]) == d {
			cur.WriteString(d)
			i++
			continue
		}
		if string(s[i]) == d {
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	parts = append(parts, cur.String())
	return parts
}

func compileSedRE(s string, ext, icase bool) (*regexp.Regexp, error) {
	s = fixClasses(s)
	if !ext {
		s = breToRE(s)
	}
	if icase {
		s = "(?i)" + s
	}
	return regexp.Compile(s)
}

func sedReplace(re *regexp.Regexp, line, repl string, global bool) string {
	n := 0
	return re.ReplaceAllStringFunc(line, func(m string) string {
		n++
		if !global && n > 1 {
			return m
		}
		sub := re.FindStringSubmatch(m)
		var b strings.Builder
		for i := 0; i < len(repl); i++ {
			c := repl[i]
			switch {
			case c == '\\' && i+1 < len(repl):
				nx := repl[i+1]
				i++
				if nx >= '0' && nx <= '9' {
					if k := int(nx - '0'); k < len(sub) {
						b.WriteString(sub[k])
					}
				} else if nx == 'n' {
					b.WriteByte('\n')
				} else {
					b.WriteByte(nx)
				}
			case c == '&':
				b.WriteString(m)
			default:
				b.WriteByte(c)
			}
		}
		return b.String()
	})
}

func progSed(p *proc) int {
	args := p.args[1:]
	var scripts []string
	var files []string
	inPlace, quiet, ext := false, false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-e" && i+1 < len(args):
			scripts = append(scripts, args[i+1])
			i++
		case a == "-i" || strings.HasPrefix(a, "-i") && !strings.HasPrefix(a, "-i-"):
			inPlace = true
		case a == "-n" || a == "--quiet":
			quiet = true
		case a == "-E" || a == "-r":
			ext = true
		case a == "-ie" || a == "-Ei" || a == "-iE":
			inPlace, ext = true, a != "-ie"
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, c := range a[1:] {
				switch c {
				case 'i':
					inPlace = true
				case 'n':
					quiet = true
				case 'E', 'r':
					ext = true
				}
			}
		default:
			if len(scripts) == 0 {
				scripts = append(scripts, a)
			} else {
				files = append(files, a)
			}
		}
	}
	if len(scripts) == 0 {
		p.errorf("Usage: sed [OPTION]... {script-only-if-no-other-script} [input-file]...\n")
		return 1
	}
	var cmds []sedCmd
	for _, s := range scripts {
		c, err := parseSed(s, ext)
		if err != nil {
			p.errorf("sed: %v\n", err)
			return 1
		}
		cmds = append(cmds, c...)
	}
	run := func(in []string) string {
		var out bytes.Buffer
		for n, line := range in {
			deleted := false
			var after []string
			for _, c := range cmds {
				match := c.addrRe == nil && c.addrLine == 0 ||
					c.addrRe != nil && c.addrRe.MatchString(line) ||
					c.addrLine == -1 && n == len(in)-1 || c.addrLine > 0 && c.addrLine == n+1
				if !match {
					continue
				}
				switch c.op {
				case 's':
					if c.re.MatchString(line) {
						line = sedReplace(c.re, line, c.repl, c.global)
						if c.print {
							out.WriteString(line + "\n")
						}
					}
				case 'd':
					deleted = true
				case 'p':
					out.WriteString(line + "\n")
				case 'a':
					after = append(after, c.text)
				case 'i':
					out.WriteString(c.text + "\n")
				case 'c':
					line = c.text
				}
				if deleted {
					break
				}
			}
			if !deleted && !quiet {
				out.WriteString(line + "\n")
			}
			for _, a := range after {
				out.WriteString(a + "\n")
			}
		}
		return out.String()
	}
	if !inPlace {
		return p.inputs(files, func(_ string, r io.Reader) { p.printf("%s", run(lines(r))) })
	}
	if len(files) == 0 {
		p.errorf("sed: no input files\n")
		return 1
	}
	for _, f := range files {
		b, err := p.readFile(f)
		if err != nil {
			p.errorf("sed: can't read %s: %s\n", f, errText(err))
			return 2
		}
		fi, _ := p.g.fs.stat(p.abs(f), true)
		if !p.parentWritable(p.abs(f)) {
			p.errorf("sed: couldn't open temporary file %s/sedXXXXXX: Permission denied\n", dirOf(f))
			return 4
		}
		res := run(lines(bytes.NewReader(b)))
		hp, _, _ := p.g.fs.host(p.abs(f), true)
		os.WriteFile(hp, []byte(res), fi.Mode().Perm())
	}
	return 0
}

func dirOf(f string) string {
	i := strings.LastIndex(f, "/")
	if i <= 0 {
		return "."
	}
	return f[:i]
}

// awk: pattern { print ... } rules with -F, $N, NF, NR, string literals, /re/, NR==n, $n=="x",
// $n ~ /re/, BEGIN and END.
type awkRule struct {
	begin, end bool
	cond       func(fields []string, nr int, line string) bool
	items      [][]string // print statements: each a list of items (comma = OFS)
	printf     bool
}

func parseAwk(prog string) ([]awkRule, bool) {
	var rules []awkRule
	s := strings.TrimSpace(prog)
	for s != "" {
		var r awkRule
		brace := strings.Index(s, "{")
		pat := s
		if brace >= 0 {
			pat = s[:brace]
		}
		pat = strings.TrimSpace(pat)
		switch {
		case pat == "BEGIN":
			r.begin = true
		case pat == "END":
			r.end = true
		case pat != "":
			c, ok := awkCond(pat)
			if !ok {
				return nil, false
			}
			r.cond = c
		}
		if brace < 0 {
			r.items = [][]string{{"$0"}}
			rules = append(rules, r)
			break
		}
		close := strings.Index(s[brace:], "}")
		if close < 0 {
			return nil, false
		}
		body := s[brace+1 : brace+close]
		s = strings.TrimSpace(s[brace+close+1:])
		for _, st := range strings.Split(body, ";") {
			st = strings.TrimSpace(st)
			if st == "" {
				continue
			}
			if !strings.HasPrefix(st, "print") {
				return nil, false
			}
			rest := strings.TrimSpace(strings.TrimPrefix(st, "print"))
			if strings.HasPrefix(rest, "f") {
				return nil, false
			}
			if rest == "" {
				rest = "$0"
			}
			r.items = append(r.items, awkSplitItems(rest))
		}
		rules = append(rules, r)
	}
	return rules, true
}

func awkSplitItems(s string) []string {
	var out []string
	var cur strings.Builder
	inStr := false
	for _, c := range s {
		if c == '"' {
			inStr = !inStr
		}
		if c == ',' && !inStr {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
			continue
		}
		cur.WriteRune(c)
	}
	return append(out, strings.TrimSpace(cur.String()))
}

func awkCond(pat string) (func([]string, int, string) bool, bool) {
	neg := false
	if strings.HasPrefix(pat, "!") {
		neg, pat = true, strings.TrimSpace(pat[1:])
	}
	wrap := func(f func([]string, int, string) bool) (func([]string, int, string) bool, bool) {
		return func(fs []string, nr int, l string) bool { return f(fs, nr, l) != neg }, true
	}
	if strings.HasPrefix(pat, "/") && strings.HasSuffix(pat, "/") && len(pat) > 1 {
		re, err := regexp.Compile(fixClasses(pat[1 : len(pat)-1]))
		if err != nil {
			return nil, false
		}
		return wrap(func(_ []string, _ int, l string) bool { return re.MatchString(l) })
	}
	for _, op := range []string{"==", "!=", "~", ">"} {
		l, r, ok := strings.Cut(pat, op)
		if !ok {
			continue
		}
		l, r = strings.TrimSpace(l), strings.TrimSpace(r)
		if op == "~" {
			re, err := regexp.Compile(fixClasses(strings.Trim(r, "/")))
			if err != nil {
				return nil, false
			}
			return wrap(func(fs []string, nr int, line string) bool { return re.MatchString(awkValue(l, fs, nr, line)) })
		}
		return wrap(func(fs []string, nr int, line string) bool {
			a, b := awkValue(l, fs, nr, line), awkValue(r, fs, nr, line)
			switch op {
			case "==":
				return a == b
			case "!=":
				return a != b
			default:
				x, _ := strconv.ParseFloat(a, 64)
				y, _ := strconv.ParseFloat(b, 64)
				return x > y
			}
		})
	}
	return nil, false
}

func awkValue(item string, fields []string, nr int, line string) string {
	item = strings.TrimSpace(item)
	switch {
	case item == "NR":
		return strconv.Itoa(nr)
	case item == "NF":
		return strconv.Itoa(len(fields))
	case item == "$NF":
		if len(fields) == 0 {
			return ""
		}
		return fields[len(fields)-1]
	case strings.HasPrefix(item, "\"") && strings.HasSuffix(item, "\"") && len(item) >= 2:
		return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(item[1 : len(item)-1])
	case strings.HasPrefix(item, "$"):
		n, err := strconv.Atoi(item[1:])
		if err != nil {
			return ""
		}
		if n == 0 {
			return line
		}
		if n-1 < len(fields) {
			return fields[n-1]
		}
		return ""
	}
	// juxtaposition: $1 "x" $2
	if strings.Contains(item, " ") {
		var b strings.Builder
		for _, part := range awkTokens(item) {
			b.WriteString(awkValue(part, fields, nr, line))
		}
		return b.String()
	}
	return item
}

func awkTokens(s string) []string {
	var out []string
	var cur strings.Builder
	inStr := false
	for _, c := range s {
		if c == '"' {
			inStr = !inStr
		}
		if c == ' ' && !inStr {
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(c)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func progAwk(p *proc) int {
	args := p.args[1:]
	sep := ""
	var prog string
	var files []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-F" && i+1 < len(args):
			sep = args[i+1]
			i++
		case strings.HasPrefix(a, "-F"):
			sep = a[2:]
		case a == "-v" && i+1 < len(args):
			i++
		case prog == "":
			prog = a
		default:
			files = append(files, a)
		}
	}
	rules, ok := parseAwk(prog)
	if !ok {
		p.errorf("awk: program not supported by this simulated guest: %s\n", prog)
		return 2
	}
	if sep == `\t` {
		sep = "\t"
	}
	split := func(l string) []string {
		if sep == "" || sep == " " {
			return strings.Fields(l)
		}
		if len(sep) > 1 {
			if re, err := regexp.Compile(sep); err == nil {
				return re.Split(l, -1)
			}
		}
		return strings.Split(l, sep)
	}
	emit := func(r awkRule, fields []string, nr int, line string) {
		for _, st := range r.items {
			vals := make([]string, len(st))
			for i, it := range st {
				vals[i] = awkValue(it, fields, nr, line)
			}
			p.printf("%s\n", strings.Join(vals, " "))
		}
	}
	for _, r := range rules {
		if r.begin {
			emit(r, nil, 0, "")
		}
	}
	nr := 0
	var last []string
	lastLine := ""
	code := p.inputs(files, func(_ string, rd io.Reader) {
		for _, line := range lines(rd) {
			nr++
			f := split(line)
			last, lastLine = f, line
			for _, r := range rules {
				if r.begin || r.end {
					continue
				}
				if r.cond == nil || r.cond(f, nr, line) {
					emit(r, f, nr, line)
				}
			}
		}
	})
	for _, r := range rules {
		if r.end {
			emit(r, last, nr, lastLine)
		}
	}
	return code
}
