package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"

	_ "github.com/iac-ci/iac-ci/internal/orderinit" // the init of every command, in every binary that runs orders
)

// Protect makes this process not dumpable: a process of the same user without CAP_SYS_PTRACE
// (an order's command) can then read neither its memory nor its environment through /proc, and
// cannot ptrace it. iac-ci calls it first thing; commands it starts are dumpable again.
func Protect() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make iac-ci not dumpable: %w", err)
	}
	return nil
}
