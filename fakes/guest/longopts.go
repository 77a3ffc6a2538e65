package guest

import "strings"

// longOpts walks args the way Python's argparse and click read GNU long options, `--key=value`
// or `--key value`: f gets the key (the whole argument for a positional one), the argument as
// written, and value, which consumes the option's value (from after `=`, else the next argument).
// f returns false to stop the walk (an error it has reported); longOpts then returns false.
func longOpts(args []string, f func(key, arg string, value func() string) bool) bool {
	for i := 0; i < len(args); i++ {
		a := args[i]
		k, v, hasV := strings.Cut(a, "=")
		value := func() string {
			if hasV {
				return v
			}
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		if !f(k, a, value) {
			return false
		}
	}
	return true
}
