package fleet

import (
	"fmt"
	"strings"

	"github.com/aimachine/aimachine/catalog"
)

// Select turns --vm a,b,… or --all into catalog VM names, in catalog order for --all and in
// the given order otherwise (ids are accepted for names; duplicates are dropped).
func Select(cat *catalog.Catalog, list string, all bool) ([]string, error) {
	if all {
		if strings.TrimSpace(list) != "" {
			return nil, fmt.Errorf("--all and --vm %q: give one of them", list)
		}
		names := make([]string, 0, len(cat.VMs))
		for _, vm := range cat.VMs {
			names = append(names, vm.Name)
		}
		return names, nil
	}
	var names []string
	seen := map[string]bool{}
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		vm, err := cat.VM(part)
		if err != nil {
			return nil, err
		}
		if !seen[vm.Name] {
			seen[vm.Name] = true
			names = append(names, vm.Name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no VM given")
	}
	return names, nil
}
