// Package apischema is the Proxmox VE API schema the fake validates against: every path, method and
// parameter schema of the PVE 9.1.3 API viewer (proxmox/pve-docs api-viewer/apidata.js at "bump
// version to 9.1.3"), vendored as schema.json.gz so that a clone without ../shared builds and tests.
//
// Regenerate from the shared reference copy with
//
//	go generate ./fakes/pve/apischema
//
// (it reads ../shared/reference/pve-api-schema.json from the repository root's parent); a test fails
// when the vendored copy differs from what the generator makes of the shared file.
package apischema

//go:generate go run ./internal/gen -in ../../../../shared/reference/pve-api-schema.json -out schema.json.gz
