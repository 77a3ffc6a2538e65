// Package heartbeat owns the "still running" signal of long tasks: a Ticker that watches the
// tasks a run has open and calls back for each one that has run longer than the interval
// since it started or since its last beat.
package heartbeat
