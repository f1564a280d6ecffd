// Package crashpoint lets the crash-safety tests kill the process at a named step. When the
// environment variable IAC_CI_CRASH_AT names a point, Hit of that point kills the process at once
// with SIGKILL (no deferred function runs, no buffer is flushed), as a power cut or an OOM kill
// would. Without the variable, Hit is one atomic load.
package crashpoint

import (
	"os"
	"sync"
	"syscall"
)

// Env is the variable that names the point to crash at.
const Env = "IAC_CI_CRASH_AT"

var point = sync.OnceValue(func() string { return os.Getenv(Env) })

// Hit kills the process if name is the configured crash point.
func Hit(name string) {
	if p := point(); p != "" && p == name {
		os.Stderr.WriteString("crashpoint: crashing at " + name + "\n")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
