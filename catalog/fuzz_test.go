package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzSeeds are hostile catalogs beyond the testdata files: alias and merge-key bombs,
// NaN and infinities, integers past every range, nulls, control characters, deep nesting.
var fuzzSeeds = []string{
	"version: 1\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
	"version: 1\nvms:\n  - &v {id: 1}\n  - &w {<<: [*v, *v, *v, *v]}\n  - {<<: [*w, *w, *w, *w]}\n",
	"version: 1\nvms:\n  - services: {vllm: {enabled: true, gpu_memory_utilization: .nan}}\n",
	"version: 1\nvms:\n  - services: {vllm: {enabled: true, gpu_memory_utilization: -.inf}}\n",
	"version: 1\nvms:\n  - {id: 99999999999999999999, cores: 1e308, memory_mb: 9223372036854775807, disk: {size_gb: 9223372036854775807}}\n",
	"version: 1\nnodes: [~, null, {name: ~, storages: [~]}]\nvms: [~]\n",
	"version: 1\nvms:\n  - name: \"vm\\x00\\r\\n\\x1b[31m\"\n    description: \"\\u202e\\x7f\"\n",
	"version: 1\nvms: " + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "\n",
	"version: 1\nvms:\n  - cloud_init: {user: ubuntu, ssh_keys: [{file: /dev/zero}, {file: .}, {key: \"ssh-ed25519 \\x00\"}]}\n",
	"version: !!binary AAAA\nnetwork: !!map {}\n",
	"&a [*a]\n",
}

// FuzzLoad feeds arbitrary bytes through Parse, Validate and Warnings: whatever the input,
// no panic, no hang (every expansion is measured first, every key file is bounded) and every
// refusal is ValidationErrors whose lines each hold one problem. `make test` runs it briefly.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	files = append(files, "../infrastructure-catalog.yml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yml")
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		if err := c.Validate(); err != nil {
			checkFuzzErr(t, err)
		}
		_ = c.Warnings()
	})
}

func checkFuzzErr(t *testing.T, err error) {
	t.Helper()
	var verrs ValidationErrors
	if !errors.As(err, &verrs) {
		t.Fatalf("error %T is not ValidationErrors: %v", err, err)
	}
	for _, e := range verrs {
		if strings.ContainsAny(e.Error(), "\n\r") {
			t.Fatalf("one problem spans lines: %q", e.Error())
		}
	}
}
