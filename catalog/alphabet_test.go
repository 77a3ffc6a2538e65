package catalog

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestEveryStringFieldHasATextRule: a string field added to the types without a rule would
// be checked only against the default, so the table must name every one (and nothing else).
func TestEveryStringFieldHasATextRule(t *testing.T) {
	var paths []string
	var collect func(t reflect.Type, path string)
	collect = func(t reflect.Type, path string) {
		switch t.Kind() {
		case reflect.Pointer:
			collect(t.Elem(), path)
		case reflect.String:
			paths = append(paths, path)
		case reflect.Slice:
			collect(t.Elem(), path+"[]")
		case reflect.Struct:
			for name, ft := range yamlFields(t) {
				collect(ft, joinPath(path, name))
			}
		}
	}
	collect(reflect.TypeOf(Catalog{}), "")
	sort.Strings(paths)
	for _, p := range paths {
		if _, ok := textRules[p]; !ok {
			t.Errorf("string field %s has no textRule", p)
		}
	}
	for p := range textRules {
		if !sliceHas(paths, p) {
			t.Errorf("textRules names %s, which is not a string field", p)
		}
	}
}

func sliceHas(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestControlCharactersAreRefusedWithTheFieldsAlphabet: a control character in any string
// field is refused at its line and column, once, naming what the field may hold.
func TestControlCharactersAreRefusedWithTheFieldsAlphabet(t *testing.T) {
	base := `version: 1
network: {subnet: 192.168.0.0/24, gateway: 192.168.0.1}
nodes: [{name: pve, storages: [local, local-lvm]}]
vms:
  - id: 120
    name: %NAME%
    node: pve
    cores: 1
    memory_mb: 512
    disk: {size_gb: 8, storage: local-lvm}
    image: {vendor_data: "local:snippets/v.yaml"}
    description: %DESC%
    gpu: {enabled: false, expect: {model: %MODEL%}}
    services: {vllm: {enabled: false, model: %VLLM%}}
    cloud_init: {user: ubuntu, ssh_keys: [{key: %KEY%}]}
`
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyBEct9p+/3BQlA0E/FkkGXIOT1/sePYm3vsIcQTqBH t"
	ok := map[string]string{"%NAME%": "vm-a", "%DESC%": `"two\nlines\tand a tab"`, "%MODEL%": "NVIDIA GeForce RTX 5060 Ti", "%VLLM%": "Qwen/Qwen2.5-3B-Instruct", "%KEY%": `"` + key + `"`}
	render := func(over map[string]string) string {
		s := base
		for k, v := range ok {
			if o, set := over[k]; set {
				v = o
			}
			s = strings.ReplaceAll(s, k, v)
		}
		return s
	}
	c, err := Parse([]byte(render(nil)), "ok.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the base catalog is invalid: %v", err)
	}
	for _, tc := range []struct {
		name, field, value, want string
	}{
		{"escape sequence in a name", "%NAME%", `"vm\e[31m"`, `ctl.yml:6:11: vms[0].name: got a control character (U+001B) at byte 2 of "vm\x1b[31m"; this field holds a DNS label: lower-case letters a-z, digits and '-', at most 63 bytes`},
		{"carriage return in a model name", "%MODEL%", `"RTX\r5060"`, `ctl.yml:13:43: vms[0].gpu.expect.model: got a control character (U+000D) at byte 3 of "RTX\r5060"; this field holds printable text: any character but control characters (U+0000–U+001F, U+007F–U+009F), at most 255 bytes`},
		{"newline in the vLLM model", "%VLLM%", `"a\nExecStartPre=/bin/sh"`, `ctl.yml:14:46: vms[0].services.vllm.model: got a control character (U+000A) at byte 1`},
		{"NUL in a key", "%KEY%", `"` + key + `\0"`, `ctl.yml:15:49: vms[0].cloud_init.ssh_keys[0].key: got a control character (U+0000) at byte 82`},
		{"C1 control in the description", "%DESC%", `"a\u0085b"`, `ctl.yml:12:18: vms[0].description: got a control character (U+0085) at byte 1 of "a\u0085b"; this field holds printable text`},
		{"too long a description", "%DESC%", strings.Repeat("d", MaxDescription+1), `ctl.yml:12:18: vms[0].description: got 8193 bytes ("dddddddddddddddddddddddddddddddddddddddd"…); this field holds printable text: any character but control characters (U+0000–U+001F, U+007F–U+009F), line feeds and tabs, at most 8192 bytes`},
		{"too long a model", "%VLLM%", strings.Repeat("m", 256), `ctl.yml:14:46: vms[0].services.vllm.model: got 256 bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(render(map[string]string{tc.field: tc.value})), "ctl.yml")
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			var verrs ValidationErrors
			if !errors.As(err, &verrs) {
				t.Fatalf("got %v, want ValidationErrors", err)
			}
			if len(verrs) != 1 || !strings.HasPrefix(verrs[0].Error(), tc.want) {
				t.Errorf("got:\n%v\nwant one error starting:\n%s", err, tc.want)
			}
		})
	}
}
