// Package encodetest holds the hostile-value corpus the encoder tests (and the simulated-guest
// tests) push through every sink.
package encodetest

import "strings"

// Canary is the file a value tries to create in the guest; a test asserts it never exists.
const Canary = "/tmp/pwned"

// Value is one hostile value.
type Value struct {
	Name string
	S    string
}

// Corpus is the hostile values: shell and systemd metacharacters, command substitution in
// every form, specifiers, variables, escapes, line breaks, unicode and a long value. Every
// command substitution in it would create Canary if anything ran it.
func Corpus() []Value {
	return []Value{
		{"plain", "sk-plain-0123456789"},
		{"command substitution", "$(touch " + Canary + ")"},
		{"backticks", "`touch " + Canary + "`"},
		{"semicolon", "x; touch " + Canary + "; y"},
		{"and-and", "x && touch " + Canary},
		{"pipe", "x | touch " + Canary},
		{"single quotes", `it's 'quoted' '\''$(touch ` + Canary + `)'`},
		{"double quotes", `say "hi" "$(touch ` + Canary + `)"`},
		{"spaces", "  leading and trailing  "},
		{"percent specifiers", "%n %i %h %u %% %Z 100%"},
		{"dollar var", "$HOME $PATH $VLLM_API_KEY $$ $"},
		{"dollar braces", "${HOME}${PATH:-x}${VLLM_API_KEY}${"},
		{"backslashes", `a\b\\c\"d\$e\` + "`f" + `\n\x41\`},
		{"newline", "line1\nExecStartPre=/usr/bin/touch " + Canary + "\nVLLM_API_KEY=injected"},
		{"carriage return", "a\rExecStartPre=/usr/bin/touch " + Canary},
		{"tab", "a\tb"},
		{"hash and semicolon", "#not a comment ;nor this"},
		{"equals", "A=B=C"},
		{"unicode", "ключ-密钥-🔑-ǅ-\u00a0-é"},
		{"glob", "* ? [a-z] ~root"},
		{"redirect", "> " + Canary + " < /etc/shadow"},
		{"very long", strings.Repeat("$(touch "+Canary+")%n\\\"'", 4096)},
	}
}
