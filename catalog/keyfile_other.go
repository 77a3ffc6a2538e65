//go:build !unix

package catalog

import "os"

const keyFileOpenFlags = os.O_RDONLY
