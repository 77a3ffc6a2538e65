package guest

import (
	"strings"
	"testing"
	"time"
)

func envMap(kvs [][2]string) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv[0]] = kv[1]
	}
	return m
}

// EnvironmentFile= parsing follows env-file.c; the first case is env_file_1 of systemd's
// src/test/test-env-file.c (test_load_env_file_1), the others the rules systemd.exec(5)
// "EnvironmentFile=" states.
func TestParseEnvFile(t *testing.T) {
	cases := []struct {
		name, file string
		want       map[string]string
	}{
		{"test-env-file.c env_file_1",
			"a=a\na=b\na=b\na=a\nb=b\\\nc\nd= d\\\ne  \\\nf  \ng=g\\ \nh= ąęół\\ śćńźżμ \ni=i\\",
			map[string]string{"a": "a", "b": "bc", "d": "de  f", "g": "g ", "h": "ąęół śćńźżμ", "i": "i"}},
		{"comments and blanks", "# c\n; c\n\n  K=v  \n", map[string]string{"K": "v"}},
		{"single quotes are verbatim", `K='$(x) \" \\ "'` + "\n", map[string]string{"K": `$(x) \" \\ "`}},
		{"double quotes unescape \\\" \\\\ \\` \\$ only", `K="a\"b\\c\` + "`" + `d\$e\nf"` + "\n", map[string]string{"K": "a\"b\\c`d$e\\nf"}},
		{"double quotes span lines", "K=\"a\nb\"\nL=1\n", map[string]string{"K": "a\nb", "L": "1"}},
		{"unquoted value keeps interior quotes", `K=a "b" 'c'` + "\n", map[string]string{"K": `a "b" 'c'`}},
		{"\\r ends a line", "K=a\rL=b\n", map[string]string{"K": "a", "L": "b"}},
		{"export is not a keyword: the name is invalid", "export K=v\nL=w\n", map[string]string{"L": "w"}},
		{"no = : ignored", "JUSTTEXT\nK=v\n", map[string]string{"K": "v"}},
	}
	for _, c := range cases {
		kvs, _ := parseEnvFile(c.file)
		got := envMap(kvs)
		if len(got) != len(c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %s=%q, want %q", c.name, k, got[k], v)
			}
		}
	}
}

// Words, quotes and escapes as extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) returns
// them (cases from systemd's src/test/test-extract-word.c and systemd.service(5) "Command lines").
func TestExtractWord(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{`foobar waldo`, []string{"foobar", "waldo"}},
		{`"foobar" 'waldo'`, []string{"foobar", "waldo"}},
		{`a"b c"d`, []string{"ab cd"}},
		{`"\"quoted\" \\ \x41 \n"`, []string{"\"quoted\" \\ A \n"}},
		{`'single \' quote'`, []string{"single ' quote"}},
		{`unknown\escape`, []string{`unknown\escape`}}, // kept verbatim after the warning
		{"  spaced\t  out  ", []string{"spaced", "out"}},
		{`"ユニコード 🔑"`, []string{"ユニコード 🔑"}},
	}
	for _, c := range cases {
		var got []string
		for p := c.in; ; {
			w, rest, ok, err := extractWord(p)
			if err != nil {
				t.Fatalf("%q: %v", c.in, err)
			}
			if !ok {
				break
			}
			got = append(got, w)
			p = rest
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
	if _, _, _, err := extractWord(`"unbalanced`); err == nil {
		t.Error("unbalanced quotes accepted")
	}
}

// Unit files end lines at \n, \r and \r\n and continue lines ending in a backslash
// (fileio.c read_line_full, systemd.syntax(7)).
func TestUnitFileLines(t *testing.T) {
	got := unitFileLines("A=1\rB=2\r\nC=3 \\\n 4\nD=5\\\\\nE=6 \\\n# comment inside\n 7")
	want := []string{"A=1", "B=2", "C=3   4", `D=5\\`, "E=6   7"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Command-line environment substitution (systemd.service(5) "Command lines", env-util.c
// replace_env_argv).
func TestReplaceEnvArgv(t *testing.T) {
	env := map[string]string{"ONE": "one", "TWO": `a "b c" d`, "EMPTY": ""}
	got := replaceEnvArgv([]string{"$ONE", "$TWO", "x${TWO}y", "$$ONE", "$UNSET", "${UNSET}z", "a$ONE", "${ONE", "$", "${EMPTY:-dflt}"}, env)
	want := []string{"one", "a", "b c", "d", `xa "b c" dy`, "$ONE", "z", "a$ONE", "${ONE", "dflt"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Specifiers (systemd.unit(5) "Specifiers", specifier.c specifier_printf).
func TestSpecifiers(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	s := vm.g.sys
	u := &unit{name: "foo@bar.service", path: "/etc/systemd/system/foo@.service"}
	got, err := s.specifiers(u, "%n %N %p %i %h %u %U %T %% %y 100%")
	if want := "foo@bar.service foo@bar foo bar /root root 0 /tmp % /etc/systemd/system/foo@.service 100%"; err != nil || got != want {
		t.Errorf("got %q %v, want %q", got, err, want)
	}
	if _, err := s.specifiers(u, "%Z"); err == nil {
		t.Error("an unknown specifier was accepted")
	}
}

// A service started from a unit gets exactly the argv and environment systemd would build:
// quotes and escapes removed, %% and $$ single, ${V} as one word, $V split, EnvironmentFile=
// overriding Environment=, a bad setting refused at start.
func TestServiceSeesSystemdArgvAndEnvironment(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	script := `#!/bin/sh
for a in "$@"; do printf '[%s]' "$a"; done > /tmp/argv
printf '%s|%s' "$V" "$W" > /tmp/env
`
	unitText := `[Service]
ExecStart=/usr/local/bin/rec "a b" 'c\'d' $$X 100%% %n ${V} $V \
  e\x41
Environment="V=1 2" W=env
EnvironmentFile=/etc/rec.env
`
	vm.must(c, "printf '%s' "+shq(script)+" | sudo tee /usr/local/bin/rec >/dev/null && sudo chmod 755 /usr/local/bin/rec && "+
		"printf '%s' "+shq(unitText)+" | sudo tee /etc/systemd/system/rec.service >/dev/null && "+
		"printf 'W=\"file $(touch /tmp/pwned)\"\\n' | sudo tee /etc/rec.env >/dev/null && sudo systemctl daemon-reload && sudo systemctl start rec")
	waitFor(t, func() bool { return vm.sh(c, "test -s /tmp/env").code == 0 })
	if got, want := vm.must(c, "cat /tmp/argv"), "[a b][c'd][$X][100%][rec.service][1 2][1][2][eA]"; got != want {
		t.Errorf("argv %s, want %s", got, want)
	}
	if got, want := vm.must(c, "cat /tmp/env"), "1 2|file $(touch /tmp/pwned)"; got != want {
		t.Errorf("env %s, want %s", got, want)
	}
	if vm.sh(c, "test -e /tmp/pwned").code == 0 {
		t.Error("the environment file ran a command")
	}
	vm.must(c, "printf '[Service]\\nExecStart=/usr/local/bin/rec %%Z\\n' | sudo tee /etc/systemd/system/bad.service >/dev/null && sudo systemctl daemon-reload")
	if r := vm.sh(c, "sudo systemctl start bad"); r.code != 1 || !strings.Contains(r.stderr, "bad unit file setting") {
		t.Errorf("start with an unknown specifier: %d %q", r.code, r.stderr)
	}
	if got := vm.must(c, "systemctl show -p LoadState bad"); got != "LoadState=bad-setting\n" {
		t.Errorf("show: %q", got)
	}
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond) // test harness: the simulated service runs in a goroutine
	}
	t.Fatal("timed out")
}
