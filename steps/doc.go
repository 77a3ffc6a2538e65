// Package steps holds the step definitions of features/: a per-scenario World whose methods are
// the steps, the suite-wide simulator, and the choice of target (inprocess | container | live).
// Steps use only the public provision API and the simulator's control API.
package steps
