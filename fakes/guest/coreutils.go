package guest

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

func init() {
	for name, fn := range map[string]program{
		"cat": progCat, "tee": progTee, "grep": progGrep, "egrep": progGrep, "head": progHead, "tail": progTail,
		"wc": progWc, "sort": progSort, "uniq": progUniq, "cut": progCut, "tr": progTr, "mkdir": progMkdir,
		"rm": progRm, "rmdir": progRmdir, "cp": progCp, "mv": progMv, "ln": progLn, "chmod": progChmod,
		"chown": progChown, "chgrp": progChown, "install": progInstall, "touch": progTouch, "ls": progLs,
		"readlink": progReadlink, "realpath": progReadlink, "dirname": progDirname, "basename": progBasename,
		"id": progID, "whoami": progWhoami, "groups": progGroups, "hostname": progHostname, "uname": progUname,
		"sleep": progSleep, "date": progDate, "which": progWhich, "xargs": progXargs, "stat": progStat,
		"getent": progGetent, "sha256sum": progSum, "md5sum": progSum, "seq": progSeq, "nproc": progNproc,
		"df": progDf, "free": progFree, "find": progFind, "printenv": progPrintenv, "base64": progBase64,
		"true": func(*proc) int { return 0 }, "false": func(*proc) int { return 1 }, "sync": func(*proc) int { return 0 },
		"echo": progEcho, "printf": progPrintf, "test": progTest, "mktemp": progMktemp, "lsb_release": progLsbRelease,
		"systemd-detect-virt": func(p *proc) int { p.printf("kvm\n"); return 0 }, "file": progFile, "lscpu": progLscpu,
		"cmp": progCmp, "diff": progCmp, "yes": func(p *proc) int { return 0 }, "ldconfig": rootOnly("ldconfig", nil),
		"sysctl": func(p *proc) int { return 0 }, "update-initramfs": rootOnly("update-initramfs", func(p *proc) int {
			p.printf("update-initramfs: Generating /boot/initrd.img-%s\n", kernelRelease)
			return 0
		}), "visudo": progVisudo, "gpg": progGpg, "ip": progIP, "ps": progPs, "kill": func(p *proc) int { return 0 },
		"pgrep": progPgrep, "tar": progTar, "gzip": func(p *proc) int { return 0 }, "mawk": progAwk, "awk": progAwk, "sed": progSed,
		"useradd": progUseradd, "adduser": progUseradd, "groupadd": progGroupadd, "usermod": progUsermod, "userdel": rootOnly("userdel", nil),
		"update-alternatives": func(p *proc) int { return 0 }, "sshd": func(p *proc) int { return 0 },
	} {
		programs[name] = fn
	}
}

func rootOnly(name string, fn program) program {
	return func(p *proc) int {
		if !p.root() {
			p.errorf("%s: Permission denied\n", name)
			return 1
		}
		if fn == nil {
			return 0
		}
		return fn(p)
	}
}

// splitFlags separates "-abc" style flags (returned as single letters and long flags) from operands.
func splitFlags(args []string, withValue string) (flags map[string]string, ops []string) {
	flags = map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			ops = append(ops, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "--") {
			k, v, _ := strings.Cut(a[2:], "=")
			flags["--"+k] = v
			continue
		}
		if len(a) > 1 && a[0] == '-' && !isNumber(a[1:]) {
			for j := 1; j < len(a); j++ {
				c := string(a[j])
				if strings.Contains(withValue, c) {
					v := a[j+1:]
					if v == "" && i+1 < len(args) {
						i++
						v = args[i]
					}
					flags[c] = v
					break
				}
				flags[c] = ""
			}
			continue
		}
		ops = append(ops, a)
	}
	return
}

func has(flags map[string]string, keys ...string) bool {
	for _, k := range keys {
		if _, ok := flags[k]; ok {
			return true
		}
	}
	return false
}

func isNumber(s string) bool { _, err := strconv.Atoi(s); return err == nil }

// inputs opens operands (or stdin) and calls fn for each.
func (p *proc) inputs(ops []string, fn func(name string, r io.Reader)) int {
	if len(ops) == 0 {
		fn("-", p.stdin)
		return 0
	}
	code := 0
	for _, o := range ops {
		if o == "-" {
			fn("-", p.stdin)
			continue
		}
		b, err := p.readFile(o)
		if err != nil {
			p.errorf("%s: %s: %s\n", p.name, o, errText(err))
			code = 1
			continue
		}
		fn(o, bytes.NewReader(b))
	}
	return code
}

func progCat(p *proc) int {
	_, ops := splitFlags(p.args[1:], "")
	return p.inputs(ops, func(_ string, r io.Reader) { io.Copy(p.stdout, r) })
}

func progTee(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	mode := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if has(flags, "a", "--append") {
		mode = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	ws := []io.Writer{p.stdout}
	code := 0
	for _, o := range ops {
		f, err := p.open(o, mode, 0o644)
		if err != nil {
			p.errorf("tee: %s: %s\n", o, errText(err))
			code = 1
			continue
		}
		defer f.Close()
		ws = append(ws, f)
	}
	io.Copy(io.MultiWriter(ws...), p.stdin)
	return code
}

// breToRE converts a POSIX basic regular expression to Go syntax.
func breToRE(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			n := s[i+1]
			i++
			switch n {
			case '(', ')', '{', '}', '+', '?', '|':
				b.WriteByte(n)
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
			continue
		}
		switch c {
		case '(', ')', '{', '}', '+', '?', '|':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func fixClasses(s string) string {
	r := strings.NewReplacer("[[:space:]]", `\s`, "[[:digit:]]", `\d`, "[[:alpha:]]", `[a-zA-Z]`, "[[:alnum:]]", `[a-zA-Z0-9]`, "[[:upper:]]", "[A-Z]", "[[:lower:]]", "[a-z]")
	return r.Replace(s)
}

func progGrep(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "emABCf")
	var pats []string
	if e, ok := flags["e"]; ok {
		pats = append(pats, e)
	} else if len(ops) > 0 {
		pats = append(pats, ops[0])
		ops = ops[1:]
	} else {
		p.errorf("Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n")
		return 2
	}
	ext := has(flags, "E", "--extended-regexp") || p.name == "egrep"
	var res []*regexp.Regexp
	for _, pat := range pats {
		for _, one := range strings.Split(pat, "\n") {
			expr := one
			switch {
			case has(flags, "F", "--fixed-strings"):
				expr = regexp.QuoteMeta(one)
			case !ext:
				expr = breToRE(fixClasses(one))
			default:
				expr = fixClasses(one)
			}
			if has(flags, "w") {
				expr = `\b(?:` + expr + `)\b`
			}
			if has(flags, "x") {
				expr = `^(?:` + expr + `)$`
			}
			if has(flags, "i", "--ignore-case") {
				expr = "(?i)" + expr
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				p.errorf("grep: Invalid regular expression\n")
				return 2
			}
			res = append(res, re)
		}
	}
	invert := has(flags, "v")
	quiet := has(flags, "q", "--quiet", "s")
	_ = quiet
	max := -1
	if m, ok := flags["m"]; ok {
		max, _ = strconv.Atoi(m)
	}
	recursive := has(flags, "r", "R")
	if recursive && len(ops) == 0 {
		ops = []string{"."}
	}
	if recursive {
		var files []string
		for _, o := range ops {
			p.walk(o, func(gp string, fi fs.FileInfo) {
				if !fi.IsDir() {
					files = append(files, gp)
				}
			})
		}
		ops = files
	}
	multi := len(ops) > 1 || recursive
	if has(flags, "h") {
		multi = false
	}
	matched := false
	code := p.inputs(ops, func(name string, r io.Reader) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		n, count := 0, 0
		for sc.Scan() {
			n++
			line := sc.Text()
			hit := false
			var hits []string
			for _, re := range res {
				if re.MatchString(line) {
					hit = true
					if has(flags, "o") {
						hits = append(hits, re.FindAllString(line, -1)...)
					}
				}
			}
			if hit == invert {
				continue
			}
			matched = true
			count++
			if has(flags, "q", "--quiet") {
				return
			}
			if has(flags, "l") {
				p.printf("%s\n", name)
				return
			}
			if !has(flags, "c") {
				prefix := ""
				if multi {
					prefix = name + ":"
				}
				if has(flags, "n") {
					prefix += strconv.Itoa(n) + ":"
				}
				if has(flags, "o") && !invert {
					for _, h := range hits {
						p.printf("%s%s\n", prefix, h)
					}
				} else {
					p.printf("%s%s\n", prefix, line)
				}
			}
			if max >= 0 && count >= max {
				break
			}
		}
		if has(flags, "c") {
			if multi {
				p.printf("%s:%d\n", name, count)
			} else {
				p.printf("%d\n", count)
			}
		}
	})
	if code != 0 && !matched {
		return 2
	}
	if !matched {
		return 1
	}
	return 0
}

func lines(r io.Reader) []string {
	b, _ := io.ReadAll(r)
	s := string(b)
	if s == "" {
		return nil
	}
	s = strings.TrimSuffix(s, "\n")
	return strings.Split(s, "\n")
}

func progHead(p *proc) int {
	n := 10
	args := p.args[1:]
	var ops []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-n" && i+1 < len(args):
			n, _ = strconv.Atoi(args[i+1])
			i++
		case strings.HasPrefix(a, "-n"):
			n, _ = strconv.Atoi(a[2:])
		case len(a) > 1 && a[0] == '-' && isNumber(a[1:]):
			n, _ = strconv.Atoi(a[1:])
		case a == "-c" && i+1 < len(args):
			i++
		default:
			ops = append(ops, a)
		}
	}
	return p.inputs(ops, func(_ string, r io.Reader) {
		ls := lines(r)
		if n < 0 {
			n = len(ls) + n
		}
		for i := 0; i < n && i < len(ls); i++ {
			p.printf("%s\n", ls[i])
		}
	})
}

func progTail(p *proc) int {
	n := 10
	args := p.args[1:]
	var ops []string
	from := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		v := ""
		switch {
		case a == "-n" && i+1 < len(args):
			v = args[i+1]
			i++
		case strings.HasPrefix(a, "-n"):
			v = a[2:]
		case len(a) > 1 && a[0] == '-' && isNumber(a[1:]):
			v = a[1:]
		case a == "-f" || a == "-F":
			continue
		default:
			ops = append(ops, a)
			continue
		}
		if strings.HasPrefix(v, "+") {
			from = true
		}
		n, _ = strconv.Atoi(strings.TrimPrefix(v, "+"))
	}
	return p.inputs(ops, func(_ string, r io.Reader) {
		ls := lines(r)
		start := len(ls) - n
		if from {
			start = n - 1
		}
		if start < 0 {
			start = 0
		}
		for i := start; i < len(ls); i++ {
			p.printf("%s\n", ls[i])
		}
	})
}

func progWc(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	return p.inputs(ops, func(name string, r io.Reader) {
		b, _ := io.ReadAll(r)
		l, w, c := bytes.Count(b, []byte("\n")), len(strings.Fields(string(b))), len(b)
		suffix := ""
		if name != "-" {
			suffix = " " + name
		}
		switch {
		case has(flags, "l"):
			p.printf("%d%s\n", l, suffix)
		case has(flags, "w"):
			p.printf("%d%s\n", w, suffix)
		case has(flags, "c"):
			p.printf("%d%s\n", c, suffix)
		default:
			p.printf("%7d %7d %7d%s\n", l, w, c, suffix)
		}
	})
}

func progSort(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "tko")
	var all []string
	p.inputs(ops, func(_ string, r io.Reader) { all = append(all, lines(r)...) })
	key := func(s string) string { return s }
	if k, ok := flags["k"]; ok {
		n, _ := strconv.Atoi(strings.Split(k, ",")[0])
		sep := flags["t"]
		key = func(s string) string {
			var f []string
			if sep != "" {
				f = strings.Split(s, sep)
			} else {
				f = strings.Fields(s)
			}
			if n-1 < len(f) && n > 0 {
				return f[n-1]
			}
			return ""
		}
	}
	if has(flags, "V", "n", "h") {
		sort.SliceStable(all, func(i, j int) bool { return versionLess(key(all[i]), key(all[j])) })
	} else {
		sort.SliceStable(all, func(i, j int) bool { return key(all[i]) < key(all[j]) })
	}
	if has(flags, "r") {
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	}
	prev := "\x00"
	for _, l := range all {
		if has(flags, "u") && l == prev {
			continue
		}
		prev = l
		p.printf("%s\n", l)
	}
	return 0
}

// versionLess compares strings with embedded numbers numerically (sort -V, dpkg-ish).
func versionLess(a, b string) bool {
	re := regexp.MustCompile(`\d+|\D+`)
	pa, pb := re.FindAllString(a, -1), re.FindAllString(b, -1)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			if na != nb {
				return na < nb
			}
			continue
		}
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return len(pa) < len(pb)
}

func progUniq(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	return p.inputs(ops, func(_ string, r io.Reader) {
		ls := lines(r)
		for i := 0; i < len(ls); {
			j := i
			for j < len(ls) && ls[j] == ls[i] {
				j++
			}
			if has(flags, "c") {
				p.printf("%7d %s\n", j-i, ls[i])
			} else {
				p.printf("%s\n", ls[i])
			}
			i = j
		}
	})
}

func progCut(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "dfc")
	d := "\t"
	if v, ok := flags["d"]; ok {
		d = v
	}
	var idx []int
	spec := flags["f"]
	chars := false
	if c, ok := flags["c"]; ok {
		spec, chars = c, true
	}
	for _, part := range strings.Split(spec, ",") {
		if a, b, ok := strings.Cut(part, "-"); ok {
			lo, _ := strconv.Atoi(a)
			hi, err := strconv.Atoi(b)
			if lo == 0 {
				lo = 1
			}
			if err != nil {
				hi = 1000
			}
			for i := lo; i <= hi; i++ {
				idx = append(idx, i)
			}
		} else if n, err := strconv.Atoi(part); err == nil {
			idx = append(idx, n)
		}
	}
	return p.inputs(ops, func(_ string, r io.Reader) {
		for _, l := range lines(r) {
			var f []string
			if chars {
				for _, c := range l {
					f = append(f, string(c))
				}
			} else {
				if !strings.Contains(l, d) {
					p.printf("%s\n", l)
					continue
				}
				f = strings.Split(l, d)
			}
			var out []string
			for _, i := range idx {
				if i-1 < len(f) {
					out = append(out, f[i-1])
				}
			}
			sep := d
			if chars {
				sep = ""
			}
			p.printf("%s\n", strings.Join(out, sep))
		}
	})
}

func expandTrSet(s string) []rune {
	s = strings.NewReplacer("[:upper:]", "A-Z", "[:lower:]", "a-z", "[:space:]", " \t\n\r", "[:digit:]", "0-9", `\n`, "\n", `\t`, "\t").Replace(s)
	rs := []rune(s)
	var out []rune
	for i := 0; i < len(rs); i++ {
		if i+2 < len(rs) && rs[i+1] == '-' {
			for c := rs[i]; c <= rs[i+2]; c++ {
				out = append(out, c)
			}
			i += 2
			continue
		}
		out = append(out, rs[i])
	}
	return out
}

func progTr(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	b, _ := io.ReadAll(p.stdin)
	if len(ops) == 0 {
		return p.fail(1, "missing operand")
	}
	set1 := expandTrSet(ops[0])
	in := func(c rune) int {
		for i, x := range set1 {
			if x == c {
				return i
			}
		}
		return -1
	}
	var out strings.Builder
	if has(flags, "d") {
		for _, c := range string(b) {
			if in(c) < 0 {
				out.WriteRune(c)
			}
		}
	} else if has(flags, "s") && len(ops) == 1 {
		var last rune = -1
		for _, c := range string(b) {
			if c == last && in(c) >= 0 {
				continue
			}
			last = c
			out.WriteRune(c)
		}
	} else {
		if len(ops) < 2 {
			return p.fail(1, "missing operand after '%s'", ops[0])
		}
		set2 := expandTrSet(ops[1])
		for _, c := range string(b) {
			if i := in(c); i >= 0 && len(set2) > 0 {
				if i >= len(set2) {
					i = len(set2) - 1
				}
				out.WriteRune(set2[i])
			} else {
				out.WriteRune(c)
			}
		}
	}
	p.printf("%s", out.String())
	return 0
}

// mkdirAs creates a directory as the process user.
func (p *proc) mkdir(name string, mode fs.FileMode, parents bool) error {
	gp := p.abs(name)
	if parents {
		if p.g.fs.isDir(gp) {
			return nil
		}
		parent := path.Dir(gp)
		if parent != gp {
			if err := p.mkdir(parent, 0o755, true); err != nil {
				return err
			}
		}
	}
	hp, rgp, err := p.g.fs.host(gp, false)
	if err != nil {
		return err
	}
	if p.g.fs.exists(gp) {
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
	}
	dfi, err := p.g.fs.stat(path.Dir(rgp), true)
	if err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrNotExist}
	}
	if !p.g.fs.access(p.user, path.Dir(rgp), dfi, 2) {
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrPermission}
	}
	if err := os.Mkdir(hp, mode); err != nil {
		return err
	}
	os.Chmod(hp, mode)
	p.g.fs.setOwner(rgp, owner{p.user.UID, p.user.GID})
	return nil
}

func parseMode(s string, cur fs.FileMode) (fs.FileMode, bool) {
	if n, err := strconv.ParseUint(s, 8, 32); err == nil {
		m := fs.FileMode(n & 0o777)
		if n&0o1000 != 0 {
			m |= fs.ModeSticky
		}
		return m, true
	}
	m := cur
	for _, clause := range strings.Split(s, ",") {
		i := strings.IndexAny(clause, "+-=")
		if i < 0 {
			return 0, false
		}
		who, op, perms := clause[:i], clause[i], clause[i+1:]
		if who == "" || who == "a" {
			who = "ugo"
		}
		var bits fs.FileMode
		for _, w := range who {
			for _, pc := range perms {
				shift := map[rune]uint{'u': 6, 'g': 3, 'o': 0}[w]
				switch pc {
				case 'r':
					bits |= 4 << shift
				case 'w':
					bits |= 2 << shift
				case 'x', 'X':
					bits |= 1 << shift
				}
			}
		}
		switch op {
		case '+':
			m |= bits
		case '-':
			m &^= bits
		case '=':
			m = bits
		}
	}
	return m, true
}

func progMkdir(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "m")
	mode := fs.FileMode(0o755)
	if m, ok := flags["m"]; ok {
		mode, _ = parseMode(m, 0o755)
	}
	if len(ops) == 0 {
		return p.fail(1, "missing operand")
	}
	code := 0
	for _, o := range ops {
		if err := p.mkdir(o, mode, has(flags, "p", "--parents")); err != nil {
			p.errorf("mkdir: cannot create directory '%s': %s\n", o, errText(err))
			code = 1
		}
	}
	return code
}

// writable reports whether the user may modify entries of the directory holding gp.
func (p *proc) parentWritable(gp string) bool {
	rgp, _ := p.g.fs.resolve(gp, false)
	d := path.Dir(rgp)
	fi, err := p.g.fs.stat(d, true)
	return err == nil && p.g.fs.access(p.user, d, fi, 2)
}

func progRm(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	force := has(flags, "f", "--force")
	code := 0
	for _, o := range ops {
		gp := p.abs(o)
		fi, err := p.g.fs.stat(gp, false)
		if err != nil {
			if !force {
				p.errorf("rm: cannot remove '%s': No such file or directory\n", o)
				code = 1
			}
			continue
		}
		if fi.IsDir() && !has(flags, "r", "R", "--recursive") {
			p.errorf("rm: cannot remove '%s': Is a directory\n", o)
			code = 1
			continue
		}
		if !p.parentWritable(gp) {
			p.errorf("rm: cannot remove '%s': Permission denied\n", o)
			code = 1
			continue
		}
		p.g.fs.remove(gp)
	}
	return code
}

func progRmdir(p *proc) int {
	_, ops := splitFlags(p.args[1:], "")
	for _, o := range ops {
		ents, err := p.g.fs.readDir(p.abs(o))
		if err != nil || len(ents) > 0 {
			p.errorf("rmdir: failed to remove '%s': Directory not empty\n", o)
			return 1
		}
		p.g.fs.remove(p.abs(o))
	}
	return 0
}

func (p *proc) copyFile(src, dst string, mode fs.FileMode) error {
	b, err := p.readFile(src)
	if err != nil {
		return err
	}
	if p.g.fs.isDir(p.abs(dst)) {
		dst = path.Join(p.abs(dst), path.Base(src))
	}
	return p.writeFile(dst, b, mode)
}

func progCp(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	if len(ops) < 2 {
		return p.fail(1, "missing destination file operand after '%s'", strings.Join(ops, " "))
	}
	dst := ops[len(ops)-1]
	code := 0
	for _, src := range ops[:len(ops)-1] {
		fi, err := p.g.fs.stat(p.abs(src), true)
		if err != nil {
			p.errorf("cp: cannot stat '%s': No such file or directory\n", src)
			code = 1
			continue
		}
		if fi.IsDir() {
			if !has(flags, "r", "R", "a", "--recursive") {
				p.errorf("cp: -r not specified; omitting directory '%s'\n", src)
				code = 1
				continue
			}
			target := p.abs(dst)
			if p.g.fs.isDir(target) {
				target = path.Join(target, path.Base(src))
			}
			base := p.abs(src)
			p.walk(base, func(gp string, fi fs.FileInfo) {
				rel := strings.TrimPrefix(gp, base)
				if fi.IsDir() {
					p.mkdir(target+rel, fi.Mode().Perm(), true)
				} else {
					p.copyFile(gp, target+rel, fi.Mode().Perm())
				}
			})
			continue
		}
		if err := p.copyFile(src, dst, fi.Mode().Perm()); err != nil {
			p.errorf("cp: cannot create regular file '%s': %s\n", dst, errText(err))
			code = 1
		}
	}
	return code
}

func progMv(p *proc) int {
	_, ops := splitFlags(p.args[1:], "")
	if len(ops) < 2 {
		return p.fail(1, "missing destination file operand")
	}
	dst := p.abs(ops[len(ops)-1])
	for _, src := range ops[:len(ops)-1] {
		s := p.abs(src)
		if !p.g.fs.exists(s) {
			p.errorf("mv: cannot stat '%s': No such file or directory\n", src)
			return 1
		}
		if !p.parentWritable(s) || !p.parentWritable(dst) {
			p.errorf("mv: cannot move '%s' to '%s': Permission denied\n", src, ops[len(ops)-1])
			return 1
		}
		d := dst
		if p.g.fs.isDir(d) {
			d = path.Join(d, path.Base(s))
		}
		hs, rs, _ := p.g.fs.host(s, false)
		hd, rd, _ := p.g.fs.host(d, false)
		o := p.g.fs.ownerOf(rs)
		if err := os.Rename(hs, hd); err != nil {
			p.errorf("mv: cannot move '%s': %s\n", src, errText(err))
			return 1
		}
		p.g.fs.forget(rs)
		p.g.fs.setOwner(rd, o)
	}
	return 0
}

func progLn(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	if len(ops) < 1 {
		return p.fail(1, "missing file operand")
	}
	target := ops[0]
	link := path.Base(target)
	if len(ops) > 1 {
		link = ops[1]
	}
	gl := p.abs(link)
	if p.g.fs.isDir(gl) && !has(flags, "n", "T") {
		gl = path.Join(gl, path.Base(target))
	}
	if p.g.fs.exists(gl) || isSymlink(p.g.fs, gl) {
		if !has(flags, "f", "--force") {
			p.errorf("ln: failed to create symbolic link '%s': File exists\n", link)
			return 1
		}
		p.g.fs.remove(gl)
	}
	if !p.parentWritable(gl) {
		p.errorf("ln: failed to create symbolic link '%s': Permission denied\n", link)
		return 1
	}
	if !has(flags, "s", "--symbolic") {
		if err := p.copyFile(target, gl, 0o644); err != nil {
			p.errorf("ln: failed to access '%s': %s\n", target, errText(err))
			return 1
		}
		return 0
	}
	if err := p.g.fs.symlink(target, gl); err != nil {
		p.errorf("ln: %s\n", errText(err))
		return 1
	}
	return 0
}

func isSymlink(v *vfs, gp string) bool {
	fi, err := v.stat(gp, false)
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

// walk visits gp and everything below (no symlink following).
func (p *proc) walk(name string, fn func(gp string, fi fs.FileInfo)) {
	gp, err := p.g.fs.resolve(p.abs(name), true)
	if err != nil {
		return
	}
	var rec func(string)
	rec = func(x string) {
		fi, err := p.g.fs.stat(x, false)
		if err != nil {
			return
		}
		fn(x, fi)
		if fi.IsDir() {
			ents, _ := p.g.fs.readDir(x)
			for _, e := range ents {
				rec(path.Join(x, e.Name()))
			}
		}
	}
	rec(gp)
}

func progChmod(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	if len(ops) < 2 {
		return p.fail(1, "missing operand")
	}
	code := 0
	for _, o := range ops[1:] {
		apply := func(gp string, fi fs.FileInfo) {
			if fi.Mode()&fs.ModeSymlink != 0 {
				return
			}
			rgp, _ := p.g.fs.resolve(gp, true)
			if !p.root() && p.g.fs.ownerOf(rgp).uid != p.user.UID {
				p.errorf("chmod: changing permissions of '%s': Operation not permitted\n", o)
				code = 1
				return
			}
			m, ok := parseMode(ops[0], fi.Mode().Perm())
			if !ok {
				p.errorf("chmod: invalid mode: '%s'\n", ops[0])
				code = 1
				return
			}
			chmodGuest(p.g.fs, gp, m)
		}
		fi, err := p.g.fs.stat(p.abs(o), true)
		if err != nil {
			p.errorf("chmod: cannot access '%s': No such file or directory\n", o)
			code = 1
			continue
		}
		if has(flags, "R") {
			p.walk(o, apply)
		} else {
			apply(p.abs(o), fi)
		}
	}
	return code
}

func progChown(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	if len(ops) < 2 {
		return p.fail(1, "missing operand")
	}
	spec := ops[0]
	if p.name == "chgrp" {
		spec = ":" + spec
	}
	un, gn, hasGroup := strings.Cut(spec, ":")
	if !hasGroup {
		un, gn, hasGroup = strings.Cut(spec, ".")
	}
	code := 0
	for _, o := range ops[1:] {
		gp, _ := p.g.fs.resolve(p.abs(o), true)
		if !p.g.fs.exists(gp) {
			p.errorf("%s: cannot access '%s': No such file or directory\n", p.name, o)
			code = 1
			continue
		}
		cur := p.g.fs.ownerOf(gp)
		nw := cur
		if un != "" {
			u, err := p.g.fs.lookupUser(un)
			if err != nil {
				p.errorf("chown: invalid user: '%s'\n", spec)
				return 1
			}
			nw.uid = u.UID
			if hasGroup && gn == "" {
				nw.gid = u.GID
			}
		}
		if gn != "" {
			g, ok := p.g.fs.groupByName(gn)
			if !ok {
				p.errorf("%s: invalid group: '%s'\n", p.name, spec)
				return 1
			}
			nw.gid = g.gid
		}
		if !p.root() {
			p.errorf("%s: changing ownership of '%s': Operation not permitted\n", p.name, o)
			code = 1
			continue
		}
		if has(flags, "R", "--recursive") {
			p.g.fs.setOwnerTree(gp, nw)
		} else {
			p.g.fs.setOwner(gp, nw)
		}
	}
	return code
}

func progInstall(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "mogtT")
	mode := fs.FileMode(0o755)
	if m, ok := flags["m"]; ok {
		mode, _ = parseMode(m, 0o755)
	}
	setOwner := func(gp string) int {
		if o, ok := flags["o"]; ok {
			if !p.root() {
				p.errorf("install: cannot change ownership of '%s': Operation not permitted\n", gp)
				return 1
			}
			u, err := p.g.fs.lookupUser(o)
			if err != nil {
				p.errorf("install: invalid user '%s'\n", o)
				return 1
			}
			ow := p.g.fs.ownerOf(gp)
			ow.uid = u.UID
			p.g.fs.setOwner(gp, ow)
		}
		if gname, ok := flags["g"]; ok {
			g, found := p.g.fs.groupByName(gname)
			if !found {
				p.errorf("install: invalid group '%s'\n", gname)
				return 1
			}
			ow := p.g.fs.ownerOf(gp)
			ow.gid = g.gid
			p.g.fs.setOwner(gp, ow)
		}
		return 0
	}
	if has(flags, "d") {
		for _, o := range ops {
			if err := p.mkdir(o, mode, true); err != nil {
				p.errorf("install: cannot create directory '%s': %s\n", o, errText(err))
				return 1
			}
			chmodGuest(p.g.fs, p.abs(o), mode)
			gp, _ := p.g.fs.resolve(p.abs(o), true)
			if c := setOwner(gp); c != 0 {
				return c
			}
		}
		return 0
	}
	if len(ops) < 2 {
		return p.fail(1, "missing destination file operand after '%s'", strings.Join(ops, " "))
	}
	dst := ops[len(ops)-1]
	for _, src := range ops[:len(ops)-1] {
		d := p.abs(dst)
		if p.g.fs.isDir(d) {
			d = path.Join(d, path.Base(src))
		}
		if has(flags, "D") {
			p.mkdir(path.Dir(d), 0o755, true)
		}
		b, err := p.readFile(src)
		if err != nil {
			p.errorf("install: cannot stat '%s': No such file or directory\n", src)
			return 1
		}
		p.g.fs.remove(d)
		if err := p.writeFile(d, b, mode); err != nil {
			p.errorf("install: cannot create regular file '%s': %s\n", d, errText(err))
			return 1
		}
		chmodGuest(p.g.fs, d, mode)
		gp, _ := p.g.fs.resolve(d, true)
		if c := setOwner(gp); c != 0 {
			return c
		}
	}
	return 0
}

func progTouch(p *proc) int {
	_, ops := splitFlags(p.args[1:], "dtr")
	for _, o := range ops {
		f, err := p.open(o, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			p.errorf("touch: cannot touch '%s': %s\n", o, errText(err))
			return 1
		}
		f.Close()
		hp, _, _ := p.g.fs.host(p.abs(o), true)
		now := time.Now()
		os.Chtimes(hp, now, now)
	}
	return 0
}

func modeString(fi fs.FileMode) string {
	s := []byte("-rwxrwxrwx")
	switch {
	case fi&fs.ModeSymlink != 0:
		s[0] = 'l'
	case fi.IsDir():
		s[0] = 'd'
	}
	for i := 0; i < 9; i++ {
		if fi&(1<<uint(8-i)) == 0 {
			s[i+1] = '-'
		}
	}
	if fi&fs.ModeSticky != 0 {
		s[9] = 't'
	}
	return string(s)
}

func progLs(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	if len(ops) == 0 {
		ops = []string{"."}
	}
	long := has(flags, "l")
	all := has(flags, "a", "A")
	code := 0
	show := func(gp, name string, fi fs.FileInfo) {
		if !long {
			p.printf("%s\n", name)
			return
		}
		rgp := gp
		if fi.Mode()&fs.ModeSymlink == 0 {
			rgp, _ = p.g.fs.resolve(gp, true)
		}
		o := p.g.fs.ownerOf(rgp)
		size := fi.Size()
		extra := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			hp, _, _ := p.g.fs.host(gp, false)
			t, _ := os.Readlink(hp)
			extra = " -> " + t
			size = int64(len(t))
		}
		p.printf("%s 1 %s %s %d %s %s%s\n", modeString(fi.Mode()), p.g.fs.userByUID(o.uid), p.g.fs.groupName(o.gid), size, fi.ModTime().Format("Jan _2 15:04"), name, extra)
	}
	for _, o := range ops {
		gp := p.abs(o)
		fi, err := p.g.fs.stat(gp, !long || strings.HasSuffix(o, "/"))
		if err != nil {
			p.errorf("ls: cannot access '%s': No such file or directory\n", o)
			code = 2
			continue
		}
		if fi.IsDir() && !has(flags, "d") {
			ents, err := p.g.fs.readDir(gp)
			if err != nil {
				p.errorf("ls: cannot open directory '%s': %s\n", o, errText(err))
				code = 2
				continue
			}
			if len(ops) > 1 {
				p.printf("%s:\n", o)
			}
			if long {
				p.printf("total %d\n", len(ents)*4)
			}
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") && !all {
					continue
				}
				efi, err := p.g.fs.stat(path.Join(gp, e.Name()), false)
				if err != nil {
					continue
				}
				show(path.Join(gp, e.Name()), e.Name(), efi)
			}
			continue
		}
		show(gp, o, fi)
	}
	return code
}

func progReadlink(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	canon := p.name == "realpath" || has(flags, "f", "e", "m")
	code := 0
	for _, o := range ops {
		gp := p.abs(o)
		if canon {
			r, err := p.g.fs.resolve(gp, true)
			if err != nil || (has(flags, "e") && !p.g.fs.exists(r)) {
				code = 1
				continue
			}
			p.printf("%s\n", r)
			continue
		}
		hp, _, err := p.g.fs.host(gp, false)
		t, err2 := os.Readlink(hp)
		if err != nil || err2 != nil {
			code = 1
			continue
		}
		p.printf("%s\n", t)
	}
	return code
}

func progDirname(p *proc) int {
	for _, o := range p.args[1:] {
		p.printf("%s\n", path.Dir(strings.TrimSuffix(o, "/")))
	}
	return 0
}

func progBasename(p *proc) int {
	if len(p.args) < 2 {
		return p.fail(1, "missing operand")
	}
	b := path.Base(p.args[1])
	if len(p.args) > 2 {
		b = strings.TrimSuffix(b, p.args[2])
	}
	p.printf("%s\n", b)
	return 0
}

func progID(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "")
	u := p.user
	if len(ops) > 0 {
		var err error
		u, err = p.g.fs.lookupUser(ops[0])
		if err != nil {
			p.errorf("id: '%s': no such user\n", ops[0])
			return 1
		}
	}
	switch {
	case has(flags, "u"):
		if has(flags, "n") {
			p.printf("%s\n", u.Name)
		} else {
			p.printf("%d\n", u.UID)
		}
	case has(flags, "g"):
		if has(flags, "n") {
			p.printf("%s\n", p.g.fs.groupName(u.GID))
		} else {
			p.printf("%d\n", u.GID)
		}
	case has(flags, "G"):
		ids := []string{}
		for _, g := range append([]int{u.GID}, u.Groups...) {
			if has(flags, "n") {
				ids = append(ids, p.g.fs.groupName(g))
			} else {
				ids = append(ids, strconv.Itoa(g))
			}
		}
		p.printf("%s\n", strings.Join(ids, " "))
	default:
		gs := []string{fmt.Sprintf("%d(%s)", u.GID, p.g.fs.groupName(u.GID))}
		for _, g := range u.Groups {
			if g != u.GID {
				gs = append(gs, fmt.Sprintf("%d(%s)", g, p.g.fs.groupName(g)))
			}
		}
		p.printf("uid=%d(%s) gid=%d(%s) groups=%s\n", u.UID, u.Name, u.GID, p.g.fs.groupName(u.GID), strings.Join(gs, ","))
	}
	return 0
}

func progWhoami(p *proc) int { p.printf("%s\n", p.user.Name); return 0 }

func progGroups(p *proc) int {
	var names []string
	for _, g := range append([]int{p.user.GID}, p.user.Groups...) {
		names = append(names, p.g.fs.groupName(g))
	}
	p.printf("%s\n", strings.Join(names, " "))
	return 0
}

func progHostname(p *proc) int {
	flags, _ := splitFlags(p.args[1:], "")
	h := strings.TrimSpace(p.g.fs.readString("/etc/hostname"))
	switch {
	case has(flags, "I", "i"):
		p.printf("%s \n", p.g.IP())
	case has(flags, "f"):
		p.printf("%s\n", h)
	default:
		p.printf("%s\n", h)
	}
	return 0
}

func progUname(p *proc) int {
	flags, _ := splitFlags(p.args[1:], "")
	host := strings.TrimSpace(p.g.fs.readString("/etc/hostname"))
	switch {
	case has(flags, "a", "--all"):
		p.printf("Linux %s %s %s x86_64 x86_64 x86_64 GNU/Linux\n", host, kernelRelease, kernelVersion)
	case has(flags, "r"):
		p.printf("%s\n", kernelRelease)
	case has(flags, "m", "p", "i"):
		p.printf("x86_64\n")
	case has(flags, "n"):
		p.printf("%s\n", host)
	case has(flags, "v"):
		p.printf("%s\n", kernelVersion)
	default:
		p.printf("Linux\n")
	}
	return 0
}

func parseSleep(s string) (time.Duration, error) {
	mult := time.Second
	switch {
	case strings.HasSuffix(s, "m"):
		mult, s = time.Minute, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "h"):
		mult, s = time.Hour, strings.TrimSuffix(s, "h")
	case strings.HasSuffix(s, "s"):
		s = strings.TrimSuffix(s, "s")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(f * float64(mult)), nil
}

func progSleep(p *proc) int {
	var total time.Duration
	for _, a := range p.args[1:] {
		d, err := parseSleep(a)
		if err != nil {
			p.errorf("sleep: invalid time interval '%s'\n", a)
			return 1
		}
		total += d
	}
	if err := p.g.sleep(p.ctx, total); err != nil {
		return 143
	}
	return 0
}

func progDate(p *proc) int {
	now := time.Now().UTC()
	for _, a := range p.args[1:] {
		if a == "+%s" {
			p.printf("%d\n", now.Unix())
			return 0
		}
		if strings.HasPrefix(a, "+") {
			r := strings.NewReplacer("%Y", "2006", "%m", "01", "%d", "02", "%H", "15", "%M", "04", "%S", "05", "%F", "2006-01-02", "%T", "15:04:05", "%z", "-0700", "%Z", "MST")
			p.printf("%s\n", now.Format(r.Replace(a[1:])))
			return 0
		}
	}
	p.printf("%s\n", now.Format("Mon Jan _2 03:04:05 PM MST 2006"))
	return 0
}

func progWhich(p *proc) int {
	code := 0
	_, ops := splitFlags(p.args[1:], "")
	for _, a := range ops {
		if fp, ok := p.g.lookPath(a, p.env["PATH"]); ok {
			p.printf("%s\n", fp)
		} else {
			code = 1
		}
	}
	return code
}

func progXargs(p *proc) int {
	args := p.args[1:]
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		args = args[1:]
	}
	if len(args) == 0 {
		args = []string{"echo"}
	}
	b, _ := io.ReadAll(p.stdin)
	items := strings.Fields(string(b))
	if len(items) == 0 {
		return 0
	}
	q := *p
	q.stdin = strings.NewReader("")
	return p.g.execArgs(&q, append(append([]string{}, args...), items...))
}

func progStat(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "c")
	code := 0
	for _, o := range ops {
		gp := p.abs(o)
		fi, err := p.g.fs.stat(gp, has(flags, "L"))
		if err != nil {
			p.errorf("stat: cannot statx '%s': No such file or directory\n", o)
			code = 1
			continue
		}
		rgp, _ := p.g.fs.resolve(gp, true)
		ow := p.g.fs.ownerOf(rgp)
		format, ok := flags["c"]
		if !ok {
			format, ok = flags["--format"]
		}
		if !ok {
			format, ok = flags["--printf"]
		}
		if !ok {
			p.printf("  File: %s\n  Size: %d\nAccess: (%04o/%s)  Uid: (%d/%s)   Gid: (%d/%s)\n", o, fi.Size(), fi.Mode().Perm(), modeString(fi.Mode()), ow.uid, p.g.fs.userByUID(ow.uid), ow.gid, p.g.fs.groupName(ow.gid))
			continue
		}
		r := strings.NewReplacer("%U", p.g.fs.userByUID(ow.uid), "%G", p.g.fs.groupName(ow.gid), "%u", strconv.Itoa(ow.uid),
			"%g", strconv.Itoa(ow.gid), "%a", strconv.FormatUint(uint64(fi.Mode().Perm()), 8), "%A", modeString(fi.Mode()),
			"%s", strconv.FormatInt(fi.Size(), 10), "%n", o, "%Y", strconv.FormatInt(fi.ModTime().Unix(), 10))
		p.printf("%s\n", r.Replace(format))
	}
	return code
}

func progGetent(p *proc) int {
	if len(p.args) < 3 {
		return p.fail(1, "missing key")
	}
	file := map[string]string{"passwd": "/etc/passwd", "group": "/etc/group"}[p.args[1]]
	if file == "" {
		if p.args[1] == "hosts" || p.args[1] == "ahosts" {
			if p.args[2] == "localhost" {
				p.printf("127.0.0.1       localhost\n")
				return 0
			}
			return 2
		}
		return 1
	}
	for _, l := range strings.Split(p.g.fs.readString(file), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && (f[0] == p.args[2] || f[2] == p.args[2]) {
			p.printf("%s\n", l)
			return 0
		}
	}
	return 2
}

func progSum(p *proc) int {
	_, ops := splitFlags(p.args[1:], "")
	return p.inputs(ops, func(name string, r io.Reader) {
		b, _ := io.ReadAll(r)
		var sum string
		if p.name == "md5sum" {
			sum = fmt.Sprintf("%x", md5.Sum(b))
		} else {
			sum = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		p.printf("%s  %s\n", sum, name)
	})
}

func progSeq(p *proc) int {
	var n []int
	for _, a := range p.args[1:] {
		x, _ := strconv.Atoi(a)
		n = append(n, x)
	}
	lo, hi := 1, 0
	switch len(n) {
	case 1:
		hi = n[0]
	case 2, 3:
		lo, hi = n[0], n[len(n)-1]
	}
	for i := lo; i <= hi; i++ {
		p.printf("%d\n", i)
	}
	return 0
}

func progNproc(p *proc) int {
	c := p.g.bootInfo().Cores
	if c <= 0 {
		c = 1
	}
	p.printf("%d\n", c)
	return 0
}

func progDf(p *proc) int {
	size := 500
	if d := p.g.bootInfo().Config["scsi0"]; d != "" {
		for _, kv := range strings.Split(d, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok && k == "size" {
				n, err := strconv.Atoi(strings.TrimRight(v, "GMK"))
				if err == nil && strings.HasSuffix(v, "G") {
					size = n
				}
			}
		}
	}
	p.printf("Filesystem      Size  Used Avail Use%% Mounted on\n/dev/sda1       %dG  2.1G  %dG   1%% /\n", size-4, size-7)
	return 0
}

func progFree(p *proc) int {
	m := p.g.bootInfo().MemoryMiB
	p.printf("               total        used        free      shared  buff/cache   available\nMem:          %6d         612       %6d           1         300       %6d\nSwap:              0           0           0\n", m, m-900, m-600)
	return 0
}

func progFind(p *proc) int {
	args := p.args[1:]
	var roots []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		roots = append(roots, args[0])
		args = args[1:]
	}
	if len(roots) == 0 {
		roots = []string{"."}
	}
	var namePat, typ string
	maxDepth := -1
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-name", "-iname":
			if i+1 < len(args) {
				namePat = args[i+1]
				i++
			}
		case "-type":
			if i+1 < len(args) {
				typ = args[i+1]
				i++
			}
		case "-maxdepth":
			if i+1 < len(args) {
				maxDepth, _ = strconv.Atoi(args[i+1])
				i++
			}
		}
	}
	code := 0
	for _, r := range roots {
		base := p.abs(r)
		if !p.g.fs.exists(base) {
			p.errorf("find: '%s': No such file or directory\n", r)
			code = 1
			continue
		}
		p.walk(r, func(gp string, fi fs.FileInfo) {
			rel := strings.TrimPrefix(gp, base)
			if maxDepth >= 0 && strings.Count(rel, "/") > maxDepth {
				return
			}
			if namePat != "" {
				if ok, _ := path.Match(namePat, path.Base(gp)); !ok {
					return
				}
			}
			if typ == "f" && !fi.Mode().IsRegular() || typ == "d" && !fi.IsDir() || typ == "l" && fi.Mode()&fs.ModeSymlink == 0 {
				return
			}
			p.printf("%s\n", strings.TrimSuffix(r, "/")+rel)
		})
	}
	return code
}

func progPrintenv(p *proc) int {
	if len(p.args) > 1 {
		v, ok := p.env[p.args[1]]
		if !ok {
			return 1
		}
		p.printf("%s\n", v)
		return 0
	}
	return progEnv(&proc{g: p.g, ctx: p.ctx, user: p.user, args: []string{"env"}, env: p.env, dir: p.dir, stdin: p.stdin, stdout: p.stdout, stderr: p.stderr})
}

func progBase64(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "w")
	return p.inputs(ops, func(_ string, r io.Reader) {
		b, _ := io.ReadAll(r)
		if has(flags, "d", "--decode") {
			out, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(b)), ""))
			if err != nil {
				p.errorf("base64: invalid input\n")
			}
			p.stdout.Write(out)
			return
		}
		p.printf("%s\n", base64.StdEncoding.EncodeToString(b))
	})
}

func progEcho(p *proc) int {
	args := p.args[1:]
	nl := true
	for len(args) > 0 && (args[0] == "-n" || args[0] == "-e") {
		if args[0] == "-n" {
			nl = false
		}
		args = args[1:]
	}
	p.printf("%s", strings.Join(args, " "))
	if nl {
		p.printf("\n")
	}
	return 0
}

// progPrintf and progTest delegate to the shell builtins.
func progPrintf(p *proc) int {
	return p.builtin("printf")
}

func progTest(p *proc) int {
	if p.name == "[" {
		return p.builtin("[")
	}
	return p.builtin("test")
}

func (p *proc) builtin(name string) int {
	var sb strings.Builder
	sb.WriteString("builtin " + name)
	for _, a := range p.args[1:] {
		sb.WriteString(" '" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return p.g.runShell(p.ctx, shellSpec{user: p.user, env: p.env, dir: p.dir, script: sb.String(), stdin: p.stdin, stdout: p.stdout, stderr: p.stderr})
}

func progMktemp(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "p")
	tmpl := "/tmp/tmp.XXXXXXXXXX"
	if len(ops) > 0 {
		tmpl = ops[0]
		if !strings.Contains(tmpl, "/") {
			tmpl = orDefault(flags["p"], "/tmp") + "/" + tmpl
		}
	}
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	n := len(tmpl) - len(strings.TrimRight(tmpl, "X"))
	if n < 3 {
		return p.fail(1, "too few X's in template '%s'", tmpl)
	}
	suffix := make([]byte, n)
	seed := time.Now().UnixNano()
	for i := range suffix {
		suffix[i] = letters[(seed>>(uint(i)*5)+int64(i)*7)%int64(len(letters))]
	}
	name := strings.TrimRight(tmpl, "X") + string(suffix)
	if has(flags, "d") {
		if err := p.mkdir(name, 0o700, false); err != nil {
			return p.fail(1, "failed to create directory via template '/tmp/tmp.XXXXXXXXXX': %s", errText(err))
		}
	} else if err := p.writeFile(name, nil, 0o600); err != nil {
		return p.fail(1, "failed to create file via template '/tmp/tmp.XXXXXXXXXX': %s", errText(err))
	}
	p.printf("%s\n", name)
	return 0
}

func progLsbRelease(p *proc) int {
	flags, _ := splitFlags(p.args[1:], "")
	switch {
	case has(flags, "c"):
		if has(flags, "s") {
			p.printf("noble\n")
		} else {
			p.printf("Codename:\tnoble\n")
		}
	case has(flags, "r"):
		if has(flags, "s") {
			p.printf("24.04\n")
		} else {
			p.printf("Release:\t24.04\n")
		}
	default:
		p.printf("Distributor ID:\tUbuntu\nDescription:\tUbuntu 24.04.3 LTS\nRelease:\t24.04\nCodename:\tnoble\n")
	}
	return 0
}

func progFile(p *proc) int {
	for _, o := range p.args[1:] {
		b, err := p.readFile(o)
		switch {
		case err != nil:
			p.printf("%s: cannot open `%s' (No such file or directory)\n", o, o)
		case bytes.HasPrefix(b, []byte("\x7fELF")):
			p.printf("%s: ELF 64-bit LSB pie executable, x86-64, version 1 (SYSV), dynamically linked, interpreter /lib64/ld-linux-x86-64.so.2, stripped\n", o)
		case bytes.HasPrefix(b, []byte("#!")):
			p.printf("%s: POSIX shell script, ASCII text executable\n", o)
		default:
			p.printf("%s: ASCII text\n", o)
		}
	}
	return 0
}

func progLscpu(p *proc) int {
	b := p.g.bootInfo()
	model, flags := cpuFlags(b.CPU)
	p.printf("Architecture:             x86_64\nCPU(s):                   %d\nVendor ID:                AuthenticAMD\nModel name:               %s\nHypervisor vendor:        KVM\nFlags:                    %s\n", b.Cores, model, strings.Join(flags, " "))
	return 0
}

func progCmp(p *proc) int {
	_, ops := splitFlags(p.args[1:], "")
	if len(ops) < 2 {
		return 2
	}
	a, err1 := p.readFile(ops[0])
	b, err2 := p.readFile(ops[1])
	if err1 != nil || err2 != nil {
		return 2
	}
	if !bytes.Equal(a, b) {
		if p.name == "cmp" {
			p.printf("%s %s differ\n", ops[0], ops[1])
		} else {
			p.printf("--- %s\n+++ %s\n", ops[0], ops[1])
		}
		return 1
	}
	return 0
}

func progVisudo(p *proc) int {
	flags, _ := splitFlags(p.args[1:], "f")
	if !p.root() {
		p.errorf("visudo: /etc/sudoers: Permission denied\n")
		return 1
	}
	if has(flags, "c") {
		f := "/etc/sudoers"
		if v, ok := flags["f"]; ok {
			f = v
		}
		p.printf("%s: parsed OK\n", f)
	}
	return 0
}

func progGpg(p *proc) int {
	args := p.args[1:]
	out := ""
	dearmor := false
	var ops []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--dearmor":
			dearmor = true
		case "-o", "--output":
			if i+1 < len(args) {
				out = args[i+1]
				i++
			}
		case "--batch", "--yes":
		default:
			ops = append(ops, args[i])
		}
	}
	if !dearmor {
		return 0
	}
	var data []byte
	if len(ops) > 0 {
		data, _ = p.readFile(ops[0])
	} else {
		data, _ = io.ReadAll(p.stdin)
	}
	if out == "" {
		p.stdout.Write(data)
		return 0
	}
	if err := p.writeFile(out, data, 0o644); err != nil {
		p.errorf("gpg: can't create '%s': %s\n", out, errText(err))
		return 2
	}
	return 0
}

func progIP(p *proc) int {
	g := p.g
	g.mu.Lock()
	ip, pfx, mac := g.ip, g.prefix, g.mac
	g.mu.Unlock()
	args := strings.Join(p.args[1:], " ")
	if strings.HasPrefix(args, "route") || strings.HasPrefix(args, "r") && !strings.HasPrefix(args, "-") {
		p.printf("default via %s dev eth0 proto static\n", gateway(ip))
		return 0
	}
	brief := strings.Contains(args, "-br") || strings.Contains(args, "-brief")
	if brief {
		p.printf("%-16s %-14s %s \n%-16s %-14s %s/%d \n", "lo", "UNKNOWN", "127.0.0.1/8 ::1/128", "eth0", "UP", ip, pfx)
		return 0
	}
	p.printf("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n    inet 127.0.0.1/8 scope host lo\n       valid_lft forever preferred_lft forever\n")
	p.printf("2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000\n    link/ether %s brd ff:ff:ff:ff:ff:ff\n    altname enp6s18\n    inet %s/%d brd %s scope global eth0\n       valid_lft forever preferred_lft forever\n", mac, ip, pfx, broadcast(ip))
	return 0
}

func gateway(ip string) string {
	i := strings.LastIndex(ip, ".")
	if i < 0 {
		return ip
	}
	return ip[:i] + ".1"
}

func broadcast(ip string) string {
	i := strings.LastIndex(ip, ".")
	if i < 0 {
		return ip
	}
	return ip[:i] + ".255"
}

func progPs(p *proc) int {
	s := p.g.sys
	full := len(p.args) > 1 && (strings.Contains(p.args[1], "aux") || p.args[1] == "-ef")
	type row struct {
		user string
		pid  int
		cmd  string
	}
	rows := []row{{"root", 1, "/sbin/init"}, {"root", 612, "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"}}
	if pid, holder := s.lockHolder(); pid != 0 {
		cmd := "/usr/bin/python3 /usr/bin/unattended-upgrade"
		if holder == "apt-get" {
			cmd = "apt-get install"
		}
		rows = append(rows, row{"root", pid, cmd})
	}
	for _, sv := range s.runningServices() {
		u := sv.u.user
		if u == "" {
			u = "root"
		}
		rows = append(rows, row{u, sv.pid, sv.cmdline})
	}
	if !full {
		p.printf("    PID TTY          TIME CMD\n")
		for _, r := range rows {
			p.printf("%7d ?        00:00:01 %s\n", r.pid, path.Base(strings.Fields(r.cmd)[0]))
		}
		return 0
	}
	p.printf("USER         PID %%CPU %%MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n")
	for _, r := range rows {
		p.printf("%-8s %7d  0.0  0.1  22000 13000 ?        Ss   %s   0:01 %s\n", r.user, r.pid, time.Now().Format("15:04"), r.cmd)
	}
	return 0
}

func progPgrep(p *proc) int {
	flags, ops := splitFlags(p.args[1:], "u")
	if len(ops) == 0 {
		return 2
	}
	found := false
	for _, sv := range p.g.sys.runningServices() {
		hay := path.Base(sv.exe)
		if has(flags, "f") {
			hay = sv.cmdline
		}
		if re, err := regexp.Compile(ops[0]); err == nil && re.MatchString(hay) {
			found = true
			p.printf("%d\n", sv.pid)
		}
	}
	if !found {
		return 1
	}
	return 0
}

func progTar(p *proc) int {
	p.errorf("tar: simulated archives are not supported in this guest\n")
	return 2
}

func progUseradd(p *proc) int {
	if !p.root() {
		p.errorf("%s: Permission denied.\n%s: cannot lock /etc/passwd; try again later.\n", p.name, p.name)
		return 1
	}
	args := p.args[1:]
	system := false
	home := ""
	shell := "/bin/sh"
	createHome := false
	userGroup := true
	var extra []string
	gid := -1
	var name string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch a {
		case "-r", "--system":
			system = true
		case "-m", "--create-home":
			createHome = true
		case "-M", "--no-create-home":
			createHome = false
		case "-U", "--user-group":
			userGroup = true
		case "-d", "--home-dir", "--home":
			home = next()
		case "-s", "--shell":
			shell = next()
		case "-g", "--gid", "--ingroup":
			gn := next()
			if g, ok := p.g.fs.groupByName(gn); ok {
				gid = g.gid
			} else {
				p.errorf("useradd: group '%s' does not exist\n", gn)
				return 6
			}
		case "-G", "--groups":
			extra = strings.Split(next(), ",")
		case "-c", "--comment", "--gecos", "-u", "--uid":
			next()
		case "--disabled-password", "--disabled-login", "-q", "--quiet", "--no-log-init", "-N":
			if a == "-N" {
				userGroup = false
				gid = 100
			}
		default:
			if strings.HasPrefix(a, "-") {
				continue
			}
			name = a
		}
	}
	if p.name == "adduser" {
		createHome = true
		if shell == "/bin/sh" {
			shell = "/bin/bash"
		}
	}
	_ = userGroup
	if name == "" {
		p.errorf("Usage: useradd [options] LOGIN\n")
		return 2
	}
	if home == "" {
		home = "/home/" + name
		if system && p.name == "useradd" {
			home = "/home/" + name
		}
	}
	if _, err := p.g.fs.lookupUser(name); err == nil {
		p.errorf("%s: user '%s' already exists\n", p.name, name)
		return 9
	}
	u, err := p.g.fs.addUser(name, system, home, shell, gid)
	if err != nil {
		p.errorf("%s: %v\n", p.name, err)
		return 1
	}
	for _, gname := range extra {
		p.g.fs.addToGroup(name, gname)
	}
	if createHome {
		p.g.fs.mkdirAll(home, 0o750, owner{u.UID, u.GID})
		p.g.fs.setOwner(home, owner{u.UID, u.GID})
	}
	return 0
}

func progGroupadd(p *proc) int {
	if !p.root() {
		p.errorf("groupadd: Permission denied.\n")
		return 10
	}
	_, ops := splitFlags(p.args[1:], "g")
	if len(ops) == 0 {
		return 2
	}
	if _, ok := p.g.fs.groupByName(ops[0]); ok {
		p.errorf("groupadd: group '%s' already exists\n", ops[0])
		return 9
	}
	gid := 990
	for {
		if _, ok := p.g.fs.groupByName(strconv.Itoa(gid)); !ok {
			break
		}
		gid--
	}
	p.g.fs.appendFile("/etc/group", []byte(fmt.Sprintf("%s:x:%d:\n", ops[0], gid)))
	return 0
}

func progUsermod(p *proc) int {
	if !p.root() {
		p.errorf("usermod: Permission denied.\nusermod: cannot lock /etc/passwd; try again later.\n")
		return 1
	}
	flags, ops := splitFlags(p.args[1:], "Gg")
	if len(ops) == 0 {
		return 2
	}
	if _, err := p.g.fs.lookupUser(ops[0]); err != nil {
		p.errorf("usermod: user '%s' does not exist\n", ops[0])
		return 6
	}
	for _, gname := range strings.Split(flags["G"], ",") {
		if gname == "" {
			continue
		}
		if !p.g.fs.addToGroup(ops[0], gname) {
			p.errorf("usermod: group '%s' does not exist\n", gname)
			return 6
		}
	}
	return 0
}
