package catalog

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// textRule is what one string field may hold: its alphabet in words (quoted in errors) and
// its longest value. Every string field is checked against it before its own rules, so a
// control character or a megabyte of text is refused with the field's alphabet, whatever
// the field is used for later (a systemd unit, a shell, cloud-init, the Proxmox API).
type textRule struct {
	alphabet string
	max      int // bytes
	// lines allows a line feed and a tab (free text shown as is, e.g. the description).
	lines bool
	// schema is where schema.json holds the same limits (schema_test.go checks it).
	schema string
}

// Alphabets in words, shared by fields of one kind.
const (
	alphaIPv4      = "an IPv4 address: digits and '.'"
	alphaDNSLabel  = "a DNS label: lower-case letters a-z, digits and '-'"
	alphaStorageID = "a Proxmox storage id: lower-case letters, digits, '.', '_' and '-'"
	alphaVolume    = "a Proxmox volume id STORAGE:TYPE/NAME: letters, digits, '.', '_', '-', ':' and one '/'"
	alphaVersion   = "a release version: letters, digits, '.', '+' and '-'"
	alphaPrintable = "printable text: any character but control characters (U+0000–U+001F, U+007F–U+009F)"
	alphaNoSpace   = "printable text without spaces or control characters"
)

// Longest values. MaxText bounds a one-line value; MaxDescription is Proxmox's own limit for
// a VM description (the API schema's maxLength of /nodes/{node}/qemu description).
const (
	MaxText        = 255
	MaxDescription = 8192
	MaxKeyLine     = 16384 // an authorized_keys line of a 16384-bit RSA key is about 2.8 KB
	MaxPath        = 4096  // Linux PATH_MAX
	MaxURL         = 2048  // the image URL prepare hands to download-url
)

// textRules holds a rule for every string field of Catalog, by generic path (list indices
// left out: vms[].name). TestEveryStringFieldHasATextRule keeps it complete.
var textRules = map[string]textRule{
	"network.strategy":                 {"one of the words id, explicit", 16, false, "/$defs/network/properties/strategy"},
	"network.subnet":                   {"an IPv4 prefix: digits, '.' and '/'", 18, false, "/$defs/network/properties/subnet"},
	"network.gateway":                  {alphaIPv4, 15, false, "/$defs/ipv4"},
	"network.bridge":                   {"a Linux interface name: letters, digits, '.', '_' and '-'", 15, false, "/$defs/network/properties/bridge"},
	"network.nameservers[]":            {alphaIPv4, 15, false, "/$defs/ipv4"},
	"nodes[].name":                     {alphaDNSLabel, 63, false, "/$defs/dnsLabel"},
	"nodes[].storages[]":               {alphaStorageID, 64, false, "/$defs/storageId"},
	"jump_host.address":                {"host:port: a host name or address, ':' and a port number", MaxText, false, "/$defs/jumpHost/properties/address"},
	"jump_host.user":                   {alphaNoSpace, 64, false, "/$defs/jumpHost/properties/user"},
	"vms[].name":                       {alphaDNSLabel, 63, false, "/$defs/dnsLabel"},
	"vms[].node":                       {alphaDNSLabel, 63, false, "/$defs/dnsLabel"},
	"vms[].disk.storage":               {alphaStorageID, 64, false, "/$defs/storageId"},
	"vms[].image.cloud_image":          {alphaVolume, MaxText, false, "/$defs/vm/properties/image/properties/cloud_image"},
	"vms[].image.iso":                  {alphaVolume, MaxText, false, "/$defs/vm/properties/image/properties/iso"},
	"vms[].image.vendor_data":          {alphaVolume, MaxText, false, "/$defs/vm/properties/image/properties/vendor_data"},
	"vms[].image.url":                  {"an http(s) URL: " + alphaNoSpace, MaxURL, false, "/$defs/vm/properties/image/properties/url"},
	"vms[].image.sha256":               {"a SHA-256: 64 hex digits", 64, false, "/$defs/vm/properties/image/properties/sha256"},
	"vms[].machine":                    {"a QEMU machine type: q35, pc or pc-q35-X.Y / pc-i440fx-X.Y", 64, false, "/$defs/vm/properties/machine"},
	"vms[].bios":                       {"one of the words ovmf, seabios", 16, false, "/$defs/vm/properties/bios"},
	"vms[].cpu":                        {"a Proxmox CPU type: letters, digits, '_', '.', '+' and '-'", 64, false, "/$defs/vm/properties/cpu"},
	"vms[].network.ip":                 {alphaIPv4, 15, false, "/$defs/ipv4"},
	"vms[].network.gateway":            {alphaIPv4, 15, false, "/$defs/ipv4"},
	"vms[].network.bridge":             {"a Linux interface name: letters, digits, '.', '_' and '-'", 15, false, "/$defs/vm/properties/network/properties/bridge"},
	"vms[].gpu.pci_address":            {"a PCI address: lower-case hex digits, ':' and '.'", 16, false, "/$defs/gpu/properties/pci_address"},
	"vms[].gpu.mapping":                {"a Proxmox config id: letters, digits, '_' and '-'", 64, false, "/$defs/gpu/properties/mapping"},
	"vms[].gpu.expect.model":           {alphaPrintable, MaxText, false, "/$defs/gpu/properties/expect/properties/model"},
	"vms[].gpu.expect.pci_id":          {"vendor:device: lower-case hex digits and ':'", 9, false, "/$defs/gpu/properties/expect/properties/pci_id"},
	"vms[].cloud_init.user":            {"a Linux user name: lower-case letters, digits, '_' and '-'", 32, false, "/$defs/vm/properties/cloud_init/properties/user"},
	"vms[].cloud_init.ssh_keys[].key":  {"one authorized_keys line: printable text without control characters", MaxKeyLine, false, "/$defs/vm/properties/cloud_init/properties/ssh_keys/items/properties/key"},
	"vms[].cloud_init.ssh_keys[].file": {"a file path: printable text without control characters", MaxPath, false, "/$defs/vm/properties/cloud_init/properties/ssh_keys/items/properties/file"},
	"vms[].jump_host.address":          {"host:port: a host name or address, ':' and a port number", MaxText, false, "/$defs/jumpHost/properties/address"},
	"vms[].jump_host.user":             {alphaNoSpace, 64, false, "/$defs/jumpHost/properties/user"},
	"vms[].services.vllm.version":      {alphaVersion, 64, false, "/$defs/version"},
	"vms[].services.vllm.model":        {"a Hugging Face model id or a path: " + alphaNoSpace, MaxText, false, "/$defs/vllm/properties/model"},
	"vms[].services.vllm.bind[]":       {alphaIPv4, 15, false, "/$defs/ipv4"},
	"vms[].services.vllm.api_key_env":  {"an environment variable name: letters, digits and '_'", 128, false, "/$defs/vllm/properties/api_key_env"},
	"vms[].services.vllm.models_dir":   {"an absolute path: '/' then " + alphaNoSpace, MaxPath, false, "/$defs/vllm/properties/models_dir"},
	"vms[].services.vllm.revision":     {"a Hugging Face revision: letters, digits, '.', '_', '/' and '-'", MaxText, false, "/$defs/vllm/properties/revision"},
	"vms[].services.vllm.hf_token_env": {"an environment variable name: letters, digits and '_'", 128, false, "/$defs/vllm/properties/hf_token_env"},
	"vms[].services.ollama.version":    {alphaVersion, 64, false, "/$defs/version"},
	"vms[].services.ollama.bind[]":     {alphaIPv4, 15, false, "/$defs/ipv4"},
	"vms[].services.ollama.models_dir": {"an absolute path: '/' then " + alphaNoSpace, MaxPath, false, "/$defs/ollama/properties/models_dir"},
	"vms[].services.ollama.models[]":   {"an Ollama model name [NAMESPACE/]NAME[:TAG]: lower-case letters, digits, '.', '_', '-', one '/' and one ':' (the tag may hold upper case)", MaxText, false, "/$defs/ollama/properties/models/items"},
	"vms[].tags[]":                     {"a Proxmox tag: lower-case letters, digits, '_', '+', '.' and '-'", 64, false, "/$defs/vm/properties/tags/items"},
	"vms[].description":                {alphaPrintable + ", line feeds and tabs", MaxDescription, true, "/$defs/vm/properties/description"},
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// genericPath drops list indices: vms[0].tags[2] -> vms[].tags[].
func genericPath(path string) string { return indexRE.ReplaceAllString(path, "[]") }

// text checks every string field of the catalog against its textRule, recording the fields
// it refuses so that their own rules do not report them a second time.
func (k *checker) text() {
	k.refused = map[string]bool{}
	forEachString(reflect.ValueOf(k.c).Elem(), "", func(path, s string) {
		if s == "" {
			return
		}
		rule, ok := textRules[genericPath(path)]
		if !ok {
			rule = textRule{alphabet: alphaPrintable, max: MaxText}
		}
		if msg := rule.check(s); msg != "" {
			k.errf(path, "%s; this field holds %s, at most %d bytes", msg, rule.alphabet, rule.max)
			k.refused[path] = true
		}
	})
}

// check returns what is wrong with s, or "".
func (r textRule) check(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for i, c := range s {
		if unicode.IsControl(c) && !(r.lines && (c == '\n' || c == '\t')) {
			return fmt.Sprintf("got a control character (%U) at byte %d of %s", c, i, quoteStart(s))
		}
	}
	if len(s) > r.max {
		return fmt.Sprintf("got %d bytes (%s)", len(s), quoteStart(s))
	}
	return ""
}

// quoteStart quotes the start of a long value: enough to find it.
func quoteStart(s string) string {
	if len(s) <= 40 {
		return fmt.Sprintf("%q", s)
	}
	cut := 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", s[:cut])
}

// forEachString calls f with the path and value of every string the catalog holds, in the
// field paths the walker records (vms[0].cloud_init.ssh_keys[1].file).
func forEachString(v reflect.Value, path string, f func(path, s string)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			forEachString(v.Elem(), path, f)
		}
	case reflect.String:
		f(path, v.String())
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			forEachString(v.Index(i), fmt.Sprintf("%s[%d]", path, i), f)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if !sf.IsExported() || name == "-" {
				continue
			}
			forEachString(v.Field(i), joinPath(path, name), f)
		}
	}
}
