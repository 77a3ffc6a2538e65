package catalog

import _ "embed"

// SchemaJSON is the catalog's JSON Schema (draft 2020-12), for editors: the sample's first
// line, "# yaml-language-server: $schema=catalog/schema.json", points at it. It agrees with
// Validate on everything a schema can say (types, required fields, enums, patterns, ranges,
// unknown fields); rules across fields and files (unique ids, node capacity, key files)
// only Validate checks.
//
//go:embed schema.json
var SchemaJSON []byte
