//go:build reliability

package reliability

import (
	"context"
	"testing"
	"time"
)

func TestHarnessDeploysAndVerifiesThroughProxies(t *testing.T) {
	h := newHarness(t, hopts{proxied: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h.converges(t, ctx)
}
