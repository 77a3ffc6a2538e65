package catalog

import (
	"fmt"
	"strings"
)

// FieldError is one problem in the catalog, placed at the field it is about.
//
// It prints as FILE:LINE:COL: path.to.field: message — the shape editors and CI logs
// turn into links. Line and column are 0 when the field has no place in the file
// (a catalog built in Go, or a required field that is missing and has no parent in the file).
type FieldError struct {
	// File is the catalog file ("<input>" when parsed from bytes without a name).
	File string
	// Pos is where the field (or, for a missing field, its nearest parent) is in the file.
	Pos Position
	// Path is the field path, e.g. vms[0].gpu.pci_address ("" for the whole file).
	Path string
	// Msg says what is wrong, quoting the bad value and the rule.
	Msg string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Pos.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Pos.Line)
		if e.Pos.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Pos.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ValidationErrors is every problem found in one catalog, in file order.
// Parse, Load and Validate return it; use errors.As to get at the single errors.
type ValidationErrors []*FieldError

// Error prints one line per problem.
func (v ValidationErrors) Error() string {
	lines := make([]string, len(v))
	for i, e := range v {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find a *FieldError inside.
func (v ValidationErrors) Unwrap() []error {
	errs := make([]error, len(v))
	for i, e := range v {
		errs[i] = e
	}
	return errs
}
