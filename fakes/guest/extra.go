package guest

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

func init() {
	programs["zstd"] = func(p *proc) int {
		if len(p.args) > 1 && (p.args[1] == "--version" || p.args[1] == "-V") {
			p.printf("*** Zstandard CLI (64-bit) v1.5.5, by Yann Collet ***\n")
			return 0
		}
		io.Copy(p.stdout, p.stdin)
		return 0
	}
	programs["make"] = func(p *proc) int {
		if len(p.args) > 1 && p.args[1] == "--version" {
			p.printf("GNU Make 4.3\nBuilt for x86_64-pc-linux-gnu\n")
			return 0
		}
		p.errorf("make: *** No targets specified and no makefile found.  Stop.\n")
		return 2
	}
	programs["jq"] = progJq
}

// progJq supports the filters scripts use on API answers: ., .a.b, .a[0], .a[], .a[].b, length.
func progJq(p *proc) int {
	raw := false
	exit := false
	filter := "."
	haveFilter := false
	var files []string
	for _, a := range p.args[1:] {
		switch {
		case a == "-r" || a == "--raw-output":
			raw = true
		case a == "-e" || a == "--exit-status":
			exit = true
		case a == "-c" || a == "-M" || a == "-S":
		case strings.HasPrefix(a, "-") && a != "-":
			if strings.Contains(a, "r") {
				raw = true
			}
			if strings.Contains(a, "e") {
				exit = true
			}
		case !haveFilter:
			filter, haveFilter = a, true
		default:
			files = append(files, a)
		}
	}
	var data []byte
	p.inputs(files, func(_ string, r io.Reader) { b, _ := io.ReadAll(r); data = append(data, b...) })
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		p.errorf("jq: error (at <stdin>:1): Cannot parse input as JSON\n")
		return 5
	}
	outs := []any{v}
	for _, step := range jqSteps(filter) {
		var next []any
		for _, x := range outs {
			switch {
			case step == "length":
				switch t := x.(type) {
				case []any:
					next = append(next, float64(len(t)))
				case map[string]any:
					next = append(next, float64(len(t)))
				case string:
					next = append(next, float64(len(t)))
				default:
					next = append(next, float64(0))
				}
			case step == "[]":
				switch t := x.(type) {
				case []any:
					next = append(next, t...)
				case map[string]any:
					for _, e := range t {
						next = append(next, e)
					}
				}
			case strings.HasPrefix(step, "["):
				i, _ := strconv.Atoi(strings.Trim(step, "[]"))
				if arr, ok := x.([]any); ok && i < len(arr) {
					next = append(next, arr[i])
				} else {
					next = append(next, nil)
				}
			default:
				if m, ok := x.(map[string]any); ok {
					next = append(next, m[step])
				} else {
					next = append(next, nil)
				}
			}
		}
		outs = next
	}
	code := 0
	for _, o := range outs {
		if s, ok := o.(string); ok && raw {
			p.printf("%s\n", s)
		} else {
			b, _ := json.MarshalIndent(o, "", "  ")
			p.printf("%s\n", b)
		}
		if exit && (o == nil || o == false) {
			code = 1
		}
	}
	return code
}

func jqSteps(f string) []string {
	f = strings.TrimSpace(f)
	if f == "." || f == "" {
		return nil
	}
	var steps []string
	for _, part := range strings.Split(f, "|") {
		part = strings.TrimSpace(part)
		if part == "length" {
			steps = append(steps, "length")
			continue
		}
		part = strings.TrimPrefix(part, ".")
		for part != "" {
			if strings.HasPrefix(part, "[") {
				end := strings.Index(part, "]")
				if end < 0 {
					break
				}
				steps = append(steps, part[:end+1])
				part = strings.TrimPrefix(part[end+1:], ".")
				continue
			}
			end := strings.IndexAny(part, ".[")
			if end < 0 {
				steps = append(steps, part)
				break
			}
			steps = append(steps, part[:end])
			part = strings.TrimPrefix(part[end:], ".")
		}
	}
	return steps
}

var _ = fmt.Sprint
