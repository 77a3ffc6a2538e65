// Package catalog owns the infrastructure catalog: its types, strict loading with the
// line and column of every field, the defaults (in one place, ApplyDefaults), validation
// that reports every problem at once as FILE:LINE:COL: path: message, and the JSON Schema
// editors use (schema.json).
//
// Use:
//
//	c, err := catalog.Load("infrastructure-catalog.yml") // decode strictly + ApplyDefaults
//	if err == nil {
//		err = c.Validate() // every problem, as ValidationErrors
//	}
//	for _, w := range c.Warnings() { … } // valid but doubtful (an ISO image, a kvm64 CPU)
//	vm, err := c.VM("vm-llm-aimachine")
//
// or catalog.LoadValid, which does both. Input is bounded before it is interpreted: the file
// size (MaxCatalogBytes), what anchors and merge keys expand to and the nesting depth
// (MaxCatalogNodes, MaxCatalogDepth, measured without expanding), every string field's
// alphabet and length (textRules), and ssh_keys[].file (a regular file, MaxKeyFileBytes,
// KeyFileTimeout). FuzzLoad fuzzes Parse and Validate. Load and Parse decode and fill in the defaults
// but do not validate values, so that a tool can still show a catalog it will refuse.
package catalog
