package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// commit is the VCS commit when the build info has none (go build -buildvcs=false, a git
// worktree): make build sets it with -ldflags "-X main.commit=…".
var commit string

// buildVersion is the module version and VCS commit the binary was built from.
type buildVersion struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"commit_time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

// readVersion reads the build info ("(devel)" and no commit when built without VCS stamping,
// e.g. under go test).
func readVersion(read func() (*debug.BuildInfo, bool)) buildVersion {
	v := buildVersion{Module: "github.com/aimachine/aimachine", Version: "(devel)", Go: runtime.Version()}
	bi, ok := read()
	if !ok {
		bi = &debug.BuildInfo{}
	}
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if v.Commit == "" && commit != "" {
		v.Commit, v.Modified = strings.TrimSuffix(commit, "-dirty"), strings.HasSuffix(commit, "-dirty")
	}
	return v
}

func (v buildVersion) String() string {
	s := fmt.Sprintf("aimachine %s (%s)", v.Version, v.Module)
	switch {
	case v.Commit == "":
		s += ", commit unknown (built without VCS information)"
	default:
		s += ", commit " + v.Commit
		if v.Time != "" {
			s += " of " + v.Time
		}
		if v.Modified {
			s += " with uncommitted changes"
		}
	}
	return s + ", " + v.Go
}

func newVersionCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "print the module version and the VCS commit of this binary",
		Example: "  aimachine version\n  aimachine version --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := readVersion(debug.ReadBuildInfo)
			if asJSON {
				writeJSON(a.stdout, v)
				return nil
			}
			fmt.Fprintln(a.stdout, v)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as JSON")
	return cmd
}
