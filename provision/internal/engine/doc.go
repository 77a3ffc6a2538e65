// Package engine runs an ordered list of idempotent tasks (Check → Apply → Check), reports
// ok / changed / failed per task like Ansible's recap and stops at the first failure.
package engine
