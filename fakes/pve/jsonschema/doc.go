// Package jsonschema checks API parameters the way Proxmox VE does before a method runs: pve-common
// PVE/JSONSchema.pm (check_prop, check_object, check_type, check_format, parse_property_string,
// print_property_string) with its texts and order, plus the named formats' verifiers from pve-common,
// pve-storage, qemu-server and pve-access-control. Schemas come from fakes/pve/apischema.
//
// Two deliberate deviations, both about Perl's hash order: where PVE walks a hash (the keys of a
// schema, the errors of a property string) the order is random in Perl; here it is sorted, so the
// same request always gives the same text.
package jsonschema
