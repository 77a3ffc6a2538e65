// Package retry is aimachine's one way to wait: every wait has a description, a bound (the
// context), a backoff with jitter, and a classifier that says which errors are worth another
// try — everything else is fatal at once. Nothing here sleeps without watching the context.
package retry
