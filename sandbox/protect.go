package sandbox

import (
	"fmt"
	"os/exec"
	"sync"

	"golang.org/x/sys/unix"

	_ "github.com/iac-ci/iac-ci/internal/orderinit" // the init of every command, in every binary that runs orders
)

// Protect makes this process not dumpable: a process of the same user without CAP_SYS_PTRACE
// (an order's command) can then read neither its memory nor its environment through /proc, and
// cannot ptrace it. iac-ci calls it first thing; commands it starts are dumpable again.
func Protect() error {
	dumpMu.Lock()
	defer dumpMu.Unlock()
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make iac-ci not dumpable: %w", err)
	}
	protected = true
	return nil
}

var (
	// dumpMu serializes the starts that need this process dumpable a moment (startDumpable)
	// with each other and with Protect.
	dumpMu    sync.Mutex
	protected bool
)

// startDumpable starts cmd with this process dumpable for the moment it takes: a command
// started in a user namespace of its own waits for its parent to write its uid_map, and the
// /proc files of a child forked from a process that is not dumpable belong to root, so its
// parent (not root) could not write them. Meanwhile a process of the same user outside the
// sandbox could read this one's environment; an order cannot, as it sees no process but its own.
func startDumpable(cmd *exec.Cmd) error {
	dumpMu.Lock()
	defer dumpMu.Unlock()
	if !protected {
		return cmd.Start()
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("make iac-ci dumpable to start the command: %w", err)
	}
	err := cmd.Start()
	if perr := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); perr != nil {
		// Not dumpable again, or the command does not run: this process may not stay readable.
		if err == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return fmt.Errorf("make iac-ci not dumpable again: %w", perr)
	}
	return err
}
