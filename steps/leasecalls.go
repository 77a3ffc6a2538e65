package steps

import "github.com/aimachine/aimachine/fakes/simclient"

// leaseRoute is the only route aimachine sends the synchronous config PUT to: the run lease's
// compare-and-swap writes (provision/internal/lease), two per run (take, give back). Every
// config change the tool converges goes through the async POST.
const leaseRoute = "PUT /nodes/{node}/qemu/{vmid}/config"

// changingCalls counts the mutating API calls that change a VM (every mutating call but the
// run lease's own writes).
func changingCalls(st simclient.APIStats) int { return st.Mutating - st.ByRoute[leaseRoute] }
