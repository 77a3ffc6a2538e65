package container

import (
	"bytes"
	"log"
	"testing"

	tclog "github.com/testcontainers/testcontainers-go/log"
)

// testcontainers' own lines ("🐳 Creating container …") are dropped unless the run asked for
// detail (go test -v, AIMACHINE_VERBOSE=1, Options.Verbose).
func TestTestcontainersBannerQuietUnlessVerbose(t *testing.T) {
	old := tclog.Default()
	t.Cleanup(func() { tclog.SetDefault(old) })
	for _, tc := range []struct {
		verbose, env bool
		want         bool // the line reaches the log
	}{
		{false, false, false},
		{true, false, true},
		{false, true, true},
	} {
		var buf bytes.Buffer
		tclog.SetDefault(log.New(&buf, "", 0))
		if tc.env {
			t.Setenv("AIMACHINE_VERBOSE", "1")
		} else {
			t.Setenv("AIMACHINE_VERBOSE", "")
		}
		quietTestcontainers(tc.verbose)
		tclog.Printf("🐳 Creating container for image %s", "aimachine/pvesim")
		if verboseRun() && !tc.env {
			continue // go test -v: the banner stays on by design
		}
		if got := buf.Len() > 0; got != tc.want {
			t.Errorf("verbose=%v AIMACHINE_VERBOSE=%v: banner printed %v, want %v", tc.verbose, tc.env, got, tc.want)
		}
	}
}
