//go:build unix

package catalog

import (
	"os"
	"syscall"
)

// keyFileOpenFlags opens without blocking: opening a FIFO for reading otherwise waits for a writer.
const keyFileOpenFlags = os.O_RDONLY | syscall.O_NONBLOCK
