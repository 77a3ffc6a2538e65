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
// or catalog.LoadValid, which does both. Load and Parse decode and fill in the defaults
// but do not validate values, so that a tool can still show a catalog it will refuse.
package catalog
