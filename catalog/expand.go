package catalog

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// expansion measures a YAML tree as a decoder sees it: every alias and merge key replaced
// by what it points at. It visits each node once (sizes are memoised per node), so its own
// work is linear in the file however far the tree would expand.
type expansion struct {
	size  map[*yaml.Node]int // expanded node count of a subtree (capped at MaxCatalogNodes+1)
	depth map[*yaml.Node]int // expanded nesting depth of a subtree
	// busy marks the nodes on the current path: an alias back into one is a cycle.
	busy map[*yaml.Node]bool
	// visits counts the nodes whose size was computed (tests check it stays linear).
	visits int
	// cycle is the alias node that points into its own ancestor, if any.
	cycle *yaml.Node
}

// checkExpansion refuses a tree that expands beyond MaxCatalogNodes or MaxCatalogDepth.
func checkExpansion(file string, doc *yaml.Node) *FieldError {
	x := &expansion{size: map[*yaml.Node]int{}, depth: map[*yaml.Node]int{}, busy: map[*yaml.Node]bool{}}
	return x.check(file, doc)
}

func (x *expansion) check(file string, doc *yaml.Node) *FieldError {
	size, depth := x.measure(doc)
	switch {
	case x.cycle != nil:
		return &FieldError{File: file, Pos: Position{x.cycle.Line, x.cycle.Column},
			Msg: fmt.Sprintf("alias *%s refers to a mapping or list that contains it: the catalog would be infinite", x.cycle.Value)}
	case size > MaxCatalogNodes:
		return &FieldError{File: file, Pos: Position{doc.Line, doc.Column},
			Msg: fmt.Sprintf("the catalog expands to more than %d YAML values through its aliases and merge keys (<<: *anchor): "+
				"a catalog needs a few hundred (hint: an alias or merge-key bomb? write the values out, or anchor less deeply)", MaxCatalogNodes)}
	case depth > MaxCatalogDepth:
		return &FieldError{File: file, Pos: Position{doc.Line, doc.Column},
			Msg: fmt.Sprintf("the catalog nests mappings and lists more than %d deep: a catalog needs 7", MaxCatalogDepth)}
	}
	return nil
}

// measure returns the expanded size and depth of n, both capped so that sums cannot overflow.
func (x *expansion) measure(n *yaml.Node) (int, int) {
	if n == nil {
		return 0, 0
	}
	if s, ok := x.size[n]; ok {
		return s, x.depth[n]
	}
	if x.busy[n] {
		if x.cycle == nil {
			x.cycle = n
		}
		return MaxCatalogNodes + 1, 0
	}
	x.busy[n] = true
	defer delete(x.busy, n)
	x.visits++
	size, depth := 1, 0
	if n.Kind == yaml.AliasNode {
		if n.Alias != nil && x.busy[n.Alias] {
			x.cycle = n
			size = MaxCatalogNodes + 1
		} else {
			size, depth = x.measure(n.Alias)
		}
	} else {
		for _, c := range n.Content {
			s, d := x.measure(c)
			size = min(size+s, MaxCatalogNodes+1)
			if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
				d++
			}
			depth = max(depth, min(d, MaxCatalogDepth+1))
		}
	}
	x.size[n], x.depth[n] = size, depth
	return size, depth
}
