package encode_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"mvdan.cc/sh/v3/shell"

	"github.com/aimachine/aimachine/provision/internal/encode"
	"github.com/aimachine/aimachine/provision/internal/encode/encodetest"
)

// The shell, YAML and JSON encoders round-trip every corpus value through the real parsers
// (mvdan.cc/sh's POSIX word expansion, yaml.v3, encoding/json); the systemd and curl encoders
// are checked against the simulated guest in provision/internal/guestsimtest.
func TestCorpusRoundTrips(t *testing.T) {
	for _, v := range encodetest.Corpus() {
		t.Run(v.Name, func(t *testing.T) {
			q, err := encode.Shell(v.S)
			if err != nil {
				t.Fatalf("Shell refused: %v", err)
			}
			// shell.Fields refuses command substitution and reports every variable it expands.
			got, err := shell.Fields(q, func(name string) string {
				switch name {
				case "IFS": // read by every expansion: the default, so an unquoted space would split
					return " \t\n"
				case "PWD":
					return "/"
				}
				t.Errorf("the shell expanded $%s", name)
				return ""
			})
			if err != nil || len(got) != 1 || got[0] != v.S {
				t.Errorf("shell word %q reads back as %q (%v)", q, got, err)
			}

			y, err := encode.YAML(v.S)
			if err != nil {
				t.Fatalf("YAML refused: %v", err)
			}
			if strings.ContainsAny(y, "\n\r") {
				t.Errorf("YAML scalar spans lines: %q", y)
			}
			var ys string
			if err := yaml.Unmarshal([]byte("k: "+y+"\n"), &struct{ K *string }{&ys}); err != nil || ys != v.S {
				t.Errorf("YAML %q reads back as %q (%v)", y, ys, err)
			}
			var m map[string]string
			if err := yaml.Unmarshal([]byte("k: "+y+"\n"), &m); err != nil || m["k"] != v.S {
				t.Errorf("YAML %q reads back as %q (%v)", y, m["k"], err)
			}

			j, err := encode.JSON(v.S)
			if err != nil {
				t.Fatalf("JSON refused: %v", err)
			}
			var js string
			if err := json.Unmarshal([]byte(j), &js); err != nil || js != v.S {
				t.Errorf("JSON %q reads back as %q (%v)", j, js, err)
			}
		})
	}
}

// The systemd encoders never write a raw line break (a unit file line ends at \n or \r) and
// never leave a bare %, $ (ExecArg) or unescaped quote.
func TestSystemdEncodersStayOnOneLine(t *testing.T) {
	for _, v := range encodetest.Corpus() {
		t.Run(v.Name, func(t *testing.T) {
			for name, enc := range map[string]func(string) (string, error){
				"ExecArg":     encode.ExecArg,
				"Environment": func(s string) (string, error) { return encode.Environment("K", s) },
				"UnitString":  encode.UnitString,
				"EnvFileLine": func(s string) (string, error) {
					l, err := encode.EnvFileLine("K", s)
					return strings.TrimSuffix(l, "\n"), err
				},
				"HeaderLine": func(s string) (string, error) {
					l, err := encode.HeaderLine("Authorization", s)
					return strings.TrimSuffix(l, "\n"), err
				},
			} {
				out, err := enc(v.S)
				if err != nil {
					var e *encode.Error
					if !errors.As(err, &e) {
						t.Errorf("%s: refusal is not an *encode.Error: %v", name, err)
					}
					if strings.Contains(err.Error(), v.S) && len(v.S) > 3 {
						t.Errorf("%s: the refusal quotes the value: %v", name, err)
					}
					continue
				}
				if strings.ContainsAny(out, "\n\r\x00") {
					t.Errorf("%s(%q) = %q spans lines", name, v.S, out)
				}
			}
		})
	}
}

// Which values each sink refuses, and only those.
func TestRefusals(t *testing.T) {
	long := strings.Repeat("a", encode.MaxArg)
	cases := []struct {
		name   string
		enc    func(string) (string, error)
		refuse []string
		accept []string
	}{
		{"Shell", encode.Shell, []string{"a\x00b"}, []string{"a\nb", "\xff", long}},
		{"ExecArg", encode.ExecArg, []string{"a\x00b", "\xff", long}, []string{"a\nb", "a\rb", "%$\\\"'", ""}},
		{"Environment", func(s string) (string, error) { return encode.Environment("K", s) }, []string{"a\x00b", "\xff", long}, []string{"a\nb", "%$"}},
		{"UnitString", encode.UnitString, []string{"a\nb", "a\rb", " a", "a ", `a\`, "a\x00", "\xff"}, []string{"a b", "100%", `a\b`}},
		{"EnvFileLine", func(s string) (string, error) { return encode.EnvFileLine("K", s) }, []string{"a\nb", "a\rb", "a\tb", "a\x7f", "\xff", long}, []string{" a ", "$(x)", "'\"`\\$", ""}},
		{"HeaderLine", func(s string) (string, error) { return encode.HeaderLine("Authorization", s) }, []string{"a\nb", "a\rb", " a", "a ", "\xff"}, []string{"Bearer $(x) \"'%"}},
		{"YAML", encode.YAML, []string{"\xff"}, []string{"\x00\u2028\ufeff"}},
		{"JSON", encode.JSON, []string{"\xff"}, []string{"\x00<>&"}},
	}
	for _, c := range cases {
		for _, s := range c.refuse {
			if out, err := c.enc(s); err == nil {
				t.Errorf("%s(%.20q) = %.40q, want a refusal", c.name, s, out)
			}
		}
		for _, s := range c.accept {
			if _, err := c.enc(s); err != nil {
				t.Errorf("%s(%.20q): %v", c.name, s, err)
			}
		}
	}
	for _, k := range []string{"", "1A", "A-B", "A B", "A=B"} {
		if _, err := encode.EnvFileLine(k, "v"); err == nil {
			t.Errorf("EnvFileLine accepted the name %q", k)
		}
		if _, err := encode.Environment(k, "v"); err == nil {
			t.Errorf("Environment accepted the name %q", k)
		}
	}
}

// Exact outputs for the rules each encoder cites.
func TestEncodings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{must(encode.Shell("abc-1.2")), "abc-1.2"},
		{must(encode.Shell("")), "''"},
		{must(encode.Shell("it's")), `'it'\''s'`},
		{must(encode.ExecArg(`a "b" \ %n $X`)), `"a \"b\" \\ %%n $$X"`},
		{must(encode.ExecArg("a\nb\x01")), `"a\nb\x01"`},
		{must(encode.ExecArg("Qwen/Qwen2.5-3B-Instruct")), "Qwen/Qwen2.5-3B-Instruct"},
		{must(encode.ExecArg("")), `""`},
		{must(encode.ExecArg(";")), `";"`},
		{must(encode.Environment("K", `v "1" %h $X`)), `"K=v \"1\" %%h $X"`},
		{must(encode.UnitString("100% sure")), "100%% sure"},
		{must(encode.EnvFileLine("K", "a\"b\\c`d$e'f g")), "K=\"a\\\"b\\\\c\\`d\\$e'f g\"\n"},
		{must(encode.HeaderLine("Authorization", "Bearer x")), "Authorization: Bearer x\n"},
		{must(encode.YAML("a\"b\n\u2028")), `"a\"b\n\u2028"`},
		{must(encode.JSON("<a>")), `"<a>"`},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func must(s string, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return s
}
