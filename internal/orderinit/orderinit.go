// Package orderinit is the init process of an order's command (see package sandbox): when this
// binary is started under the name Name, the package's init function plays that part and exits
// before main runs. It lives apart from package sandbox, and imports little, so that it runs
// early in the binary's package initialization: every command an order runs starts it, and the
// initialization of the rest of iac-ci (the AWS SDK, SOPS) would be most of its cost.
package orderinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// oPath is O_PATH, which package syscall does not name (golang.org/x/sys/unix does, but
// importing it would put this package's init later). The same on every Linux architecture
// iac-ci is built for (amd64, arm64).
const oPath = 0x200000

// Name is the name (argv[0]) under which this binary is the init of a command's namespaces.
const Name = "iac-ci-order-init"

// Spec is what the init is handed, as its first argument (JSON).
type Spec struct {
	// Hide are absolute paths covered with an empty folder (or, for a file, /dev/null).
	Hide []string `json:"hide,omitempty"`
	// Dir is the command's working directory; it stays reachable whatever is hidden.
	Dir string `json:"dir"`
	// AsRoot: iac-ci is root, and sh runs as UID:GID; otherwise sh runs in a user namespace of
	// its own as UID:GID, iac-ci's own ids, without capabilities.
	AsRoot bool `json:"as_root,omitempty"`
	UID    int  `json:"uid"`
	GID    int  `json:"gid"`
	// Shell is the path of sh, looked up by iac-ci.
	Shell string `json:"shell"`
	// Probe: only set the namespaces up, and say so.
	Probe bool `json:"probe,omitempty"`
	// Serve: start commands on requests (serve.go), each in a directory under WorkRoot.
	Serve    bool   `json:"serve,omitempty"`
	WorkRoot string `json:"work_root,omitempty"`
}

// When this binary was started as a command's init, it plays that part and exits before main
// (or a test binary's TestMain) runs.
func init() {
	if len(os.Args) != 3 || os.Args[0] != Name {
		return
	}
	os.Exit(runInit(os.Args[1], os.Args[2]))
}

// Exit codes of the init itself, as sh uses them: the command could not be started.
const exitSetUp = 126

// runInit sets the namespaces up as sp says, runs `sh -c script` and returns its exit code
// (128+n when a signal n ended it). It reaps every process re-parented to it meanwhile, as a
// PID 1 must; when it returns, the kernel kills whatever of the command still runs.
func runInit(arg, script string) int {
	var sp Spec
	if err := json.Unmarshal([]byte(arg), &sp); err != nil {
		fmt.Fprintf(os.Stderr, "iac-ci: the order's init: malformed arguments: %v\n", err)
		return exitSetUp
	}
	// Started by iac-ci, the init is PID 1 of a PID namespace of its own, in a mount namespace
	// of its own. Started otherwise (by hand, under this name), its mounts would change the
	// machine's own view: refuse.
	if os.Getpid() != 1 {
		fmt.Fprintf(os.Stderr, "iac-ci: %s runs only as the init of an order's namespaces, started by iac-ci\n", Name)
		return exitSetUp
	}
	if sp.Serve {
		return serve(sp)
	}
	// A SIGTERM for the command's process group reaches sh and its children directly; the init
	// waits for them to end (or for iac-ci's SIGKILL) instead of ending them at once by exiting.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := setUp(sp); err != nil {
		fmt.Fprintf(os.Stderr, "iac-ci: the order's sandbox could not be set up: %v\n", err)
		return exitSetUp
	}
	if sp.Probe {
		return 0
	}
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if sp.AsRoot {
		attr.Credential = &syscall.Credential{Uid: uint32(sp.UID), Gid: uint32(sp.GID), Groups: []uint32{}}
	} else {
		// A user namespace of its own, in which sh is iac-ci's own ids without capabilities:
		// it cannot undo the mounts made here, which belong to the init's user namespace.
		attr.Cloneflags = syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: sp.UID, HostID: 0, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: sp.GID, HostID: 0, Size: 1}}
	}
	proc, err := os.StartProcess(sp.Shell, []string{"sh", "-c", script}, &os.ProcAttr{
		Dir: sp.Dir, Env: os.Environ(), Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Sys: attr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "iac-ci: the order's command could not start: %v\n", err)
		return exitSetUp
	}
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "iac-ci: the order's init: wait: %v\n", err)
			return exitSetUp
		}
		if pid != proc.Pid {
			continue // an orphan of the command, reaped
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// setUp makes this mount namespace the command's: mounts stay in it, the hidden paths are
// covered, the working directory stays reachable (by the order user too), and /proc shows only
// this PID namespace. Last, the init makes itself not dumpable, so the command cannot read its
// memory, environment or open folders through /proc/1.
func setUp(sp Spec) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	// The working directory, held before anything is hidden, to be put back where it was.
	dirFD, err := syscall.Open(sp.Dir, oPath|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the working directory: %w", err)
	}
	defer syscall.Close(dirFD)
	hide := slices.Clone(sp.Hide)
	slices.SortFunc(hide, func(a, b string) int { return len(a) - len(b) }) // outer folders first
	for _, p := range hide {
		st, err := os.Stat(p)
		if err != nil {
			continue // gone, or under a folder hidden already
		}
		if err := cover(p, st.IsDir()); err != nil {
			return err
		}
	}
	if sp.AsRoot {
		// Folders on the way to the working directory that the order user may not pass (a
		// home of mode 0700) are covered too: it could read nothing of them anyway.
		for _, a := range Ancestors(sp.Dir) {
			st, err := os.Stat(a)
			if err != nil {
				break // under a covered folder: made below
			}
			if !Searchable(st, sp.UID, sp.GID) {
				if err := cover(a, true); err != nil {
					return err
				}
			}
		}
	}
	if err := os.MkdirAll(sp.Dir, 0o755); err != nil {
		return fmt.Errorf("make the way to the working directory: %w", err)
	}
	if err := syscall.Mount(fmt.Sprintf("/proc/self/fd/%d", dirFD), sp.Dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("put the working directory back: %w", err)
	}
	// The init's own working directory is the one it was started in, under what is now
	// hidden: leave it for the mount just made.
	if err := os.Chdir(sp.Dir); err != nil {
		return fmt.Errorf("enter the working directory: %w", err)
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		return fmt.Errorf("make the init not dumpable: %w", errno)
	}
	return nil
}

// cover hides p: a folder under an empty, read-only one; a file under /dev/null.
func cover(p string, dir bool) error {
	if dir {
		if err := syscall.Mount("tmpfs", p, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755,size=64k"); err != nil {
			return fmt.Errorf("hide %s: %w", p, err)
		}
		return nil
	}
	if err := syscall.Mount("/dev/null", p, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("hide %s: %w", p, err)
	}
	return nil
}

// Ancestors returns the folders above dir (absolute and clean), outermost first, without "/".
// Not with path/filepath: importing it would put this package's init after most of iac-ci's.
func Ancestors(dir string) []string {
	var out []string
	for i := 1; i < len(dir); i++ {
		if dir[i] == '/' {
			out = append(out, dir[:i])
		}
	}
	return out
}

// Searchable reports whether uid:gid (without supplementary groups) may pass through the folder.
func Searchable(st os.FileInfo, uid, gid int) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	perm := st.Mode().Perm()
	switch {
	case int(sys.Uid) == uid:
		return perm&0o100 != 0
	case int(sys.Gid) == gid:
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}
