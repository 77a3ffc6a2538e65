package catalog

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON))
	if err != nil {
		t.Fatalf("schema.json is not JSON: %v", err)
	}
	const url = "https://github.com/aimachine/aimachine/catalog/schema.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("schema.json does not compile: %v", err)
	}
	return s
}

// yamlToJSONValue decodes YAML into the values a JSON decoder would give (json.Number
// numbers, map[string]any objects), which is what the schema validator expects.
func yamlToJSONValue(t *testing.T, data []byte) (any, error) {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("YAML value does not convert to JSON: %v", err)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(j))
}

func TestSchemaAcceptsTheSampleAndEveryValidFile(t *testing.T) {
	s := compileSchema(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "valid-*.yaml"))
	files = append(files, "../infrastructure-catalog.yml")
	if len(files) < 2 {
		t.Fatal("no valid testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			v, err := yamlToJSONValue(t, data)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(v); err != nil {
				t.Errorf("schema rejects it:\n%v", err)
			}
			// And Validate agrees.
			if _, err := loadAndValidate(f); err != nil {
				t.Errorf("Validate rejects it:\n%v", err)
			}
		})
	}
}

// TestSchemaOnInvalidFiles holds schema.json to the verdicts recorded in invalidCases:
// what a schema can express, it must reject; what it cannot (rules across fields, VMs and
// files), it accepts — so the table stays an exact record of where only Validate protects.
func TestSchemaOnInvalidFiles(t *testing.T) {
	s := compileSchema(t)
	var rejects int
	for _, tc := range invalidCases {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			v, err := yamlToJSONValue(t, data)
			if tc.schema == schemaNA {
				if err == nil {
					t.Errorf("decodes to a value; mark it schemaRejects or schemaAccepts")
				}
				return
			}
			if err != nil {
				t.Fatalf("does not decode: %v", err)
			}
			err = s.Validate(v)
			switch tc.schema {
			case schemaRejects:
				rejects++
				if err == nil {
					t.Errorf("schema accepts it, but the rule (%s: %s) is one a schema can express", tc.path, tc.msg)
					return
				}
				// For the same reason: at the field Validate names, or the object holding it.
				where := []string{jsonPointer(tc.path), jsonPointer(parentPath(tc.path))}
				if o, ok := schemaAt[tc.file]; ok {
					where = []string{o}
				}
				var found bool
				for _, w := range where {
					found = found || strings.Contains(err.Error(), "at '"+w+"'")
				}
				if !found {
					t.Errorf("schema rejects it elsewhere than %q:\n%v", where, err)
				}
			case schemaAccepts:
				if err != nil {
					t.Errorf("schema rejects it (good, but then mark it schemaRejects):\n%v", err)
				}
			}
		})
	}
	if rejects < 12 {
		t.Errorf("the schema rejects only %d invalid files", rejects)
	}
}

// schemaAt is where the schema places an error that a cross-field rule of schema.json
// (an if/then) reports on the other field.
var schemaAt = map[string]string{
	"invalid-services-no-gpu.yaml": "/vms/0/gpu/enabled",
}

// jsonPointer turns a field path (vms[0].gpu.pcie) into the JSON pointer the schema
// validator reports (/vms/0/gpu/pcie).
func jsonPointer(path string) string {
	if path == "" {
		return ""
	}
	r := strings.NewReplacer("[", "/", "]", "", ".", "/")
	return "/" + r.Replace(path)
}

// TestSchemaAgreesWithGo checks the schema carries the Go code's patterns, enums, bounds
// and defaults, so an editor and `aimachine catalog validate` judge a value alike.
func TestSchemaAgreesWithGo(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(SchemaJSON, &schema); err != nil {
		t.Fatal(err)
	}
	at := func(ptr string) any {
		var v any = schema
		for _, part := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%s: %q is not an object", ptr, part)
			}
			if v, ok = m[part]; !ok {
				t.Fatalf("schema has no %s", ptr)
			}
		}
		return v
	}
	patterns := map[string]*regexp.Regexp{
		"/$defs/dnsLabel/pattern":                                   dnsLabelRE,
		"/$defs/storageId/pattern":                                  storageIDRE,
		"/$defs/vm/properties/image/properties/cloud_image/pattern": cloudImageRE,
		"/$defs/vm/properties/image/properties/iso/pattern":         isoRE,
		"/$defs/vm/properties/image/properties/vendor_data/pattern": snippetRE,
		"/$defs/vm/properties/machine/pattern":                      machineRE,
		"/$defs/vm/properties/cpu/pattern":                          cpuRE,
		"/$defs/vm/properties/network/properties/bridge/pattern":    bridgeRE,
		"/$defs/network/properties/bridge/pattern":                  bridgeRE,
		"/$defs/vm/properties/cloud_init/properties/user/pattern":   userRE,
		"/$defs/vm/properties/tags/items/pattern":                   tagRE,
		"/$defs/gpu/properties/pci_address/pattern":                 pciAddressRE,
		"/$defs/gpu/properties/mapping/pattern":                     mappingRE,
		"/$defs/gpu/properties/expect/properties/pci_id/pattern":    pciIDRE,
		"/$defs/version/pattern":                                    versionRE,
		"/$defs/vllm/properties/api_key_env/pattern":                envRE,
		"/$defs/ollama/properties/models_dir/pattern":               absPathRE,
	}
	for ptr, re := range patterns {
		if got := at(ptr); got != re.String() {
			t.Errorf("%s = %q, Go has %q", ptr, got, re.String())
		}
	}
	values := map[string]any{
		"/$defs/vm/properties/id/minimum":                            float64(MinVMID),
		"/$defs/vm/properties/id/maximum":                            float64(MaxVMID),
		"/$defs/vm/properties/machine/default":                       DefaultMachine,
		"/$defs/vm/properties/bios/default":                          DefaultBIOS,
		"/$defs/vm/properties/cpu/default":                           DefaultCPU,
		"/$defs/vm/properties/image/properties/cloud_image/default":  DefaultCloudImage,
		"/$defs/network/properties/strategy/default":                 DefaultStrategy,
		"/$defs/network/properties/bridge/default":                   DefaultBridge,
		"/$defs/vllm/properties/port/default":                        float64(DefaultVLLMPort),
		"/$defs/vllm/properties/gpu_memory_utilization/default":      DefaultGPUMemoryUtilization,
		"/$defs/ollama/properties/port/default":                      float64(DefaultOllamaPort),
		"/$defs/ollama/properties/models_dir/default":                DefaultOllamaModelsDir,
		"/properties/version/const":                                  float64(1),
		"/$defs/vm/properties/cores/maximum":                         float64(MaxCores),
		"/$defs/node/properties/cores/maximum":                       float64(MaxCores),
		"/$defs/vm/properties/memory_mb/maximum":                     float64(MaxMemoryMB),
		"/$defs/node/properties/memory_mb/maximum":                   float64(MaxMemoryMB),
		"/$defs/vm/properties/disk/properties/size_gb/maximum":       float64(MaxDiskGB),
		"/$defs/vllm/properties/max_model_len/maximum":               float64(MaxModelLen),
		"/$defs/gpu/properties/expect/properties/memory_mib/maximum": float64(MaxGPUMemoryMiB),
	}
	for ptr, want := range values {
		if got := at(ptr); got != want {
			t.Errorf("%s = %v, Go has %v", ptr, got, want)
		}
	}
	enums := map[string][]any{
		"/$defs/vm/properties/bios/enum":          {"ovmf", "seabios"},
		"/$defs/network/properties/strategy/enum": {StrategyID, StrategyExplicit},
	}
	for ptr, want := range enums {
		got, _ := json.Marshal(at(ptr))
		w, _ := json.Marshal(want)
		if !bytes.Equal(got, w) {
			t.Errorf("%s = %s, Go accepts %s", ptr, got, w)
		}
	}
}

func TestSampleStartsWithTheSchemaLine(t *testing.T) {
	data, err := os.ReadFile("../infrastructure-catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	if first != "# yaml-language-server: $schema=catalog/schema.json" {
		t.Errorf("first line %q", first)
	}
	if _, err := os.Stat(filepath.Join("..", "catalog", "schema.json")); err != nil {
		t.Errorf("the schema the sample points at is missing: %v", err)
	}
}

// TestSchemaHasEveryTextRule: for every string field, schema.json holds Go's length limit
// (maxLength) and refuses what Go refuses for every field: a control character and a value
// one byte too long.
func TestSchemaHasEveryTextRule(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(SchemaJSON, &schema); err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON))
	if err != nil {
		t.Fatal(err)
	}
	const url = "https://github.com/aimachine/aimachine/catalog/schema.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	for path, rule := range textRules {
		t.Run(path, func(t *testing.T) {
			var v any = schema
			for _, part := range strings.Split(strings.TrimPrefix(rule.schema, "/"), "/") {
				v = v.(map[string]any)[part]
			}
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("schema has no %s", rule.schema)
			}
			if got := m["maxLength"]; got != float64(rule.max) {
				t.Errorf("%s maxLength = %v, Go allows %d bytes", rule.schema, got, rule.max)
			}
			s, err := c.Compile(url + "#" + rule.schema)
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"a\x01b", "a\x7fb", "a\u0085b", strings.Repeat("a", rule.max+1)} {
				if s.Validate(bad) == nil {
					t.Errorf("schema %s accepts %.20q", rule.schema, bad)
				}
			}
			if rule.lines {
				if err := s.Validate("two\nlines\tand a tab"); err != nil {
					t.Errorf("schema %s refuses a line feed Go accepts: %v", rule.schema, err)
				}
			} else if s.Validate("a\nb") == nil {
				t.Errorf("schema %s accepts a line feed", rule.schema)
			}
		})
	}
}
