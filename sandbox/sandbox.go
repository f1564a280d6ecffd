// Package sandbox runs an order's commands apart from iac-ci. Orders are code from pull
// requests, so each command is treated as hostile: it may read its own environment and working
// directory, and nothing of iac-ci's or of another order's.
//
// On Linux, where the kernel allows it, each command runs under a small init process (this same
// binary, started again under the name InitName) in new PID and mount namespaces, and in a new
// user namespace when iac-ci is not root. That init:
//   - is the PID 1 of the command's namespace, so when it dies the kernel kills every process
//     the command started, setsid and double-forked ones included; it dies when the command's
//     sh ends, and with iac-ci (Pdeathsig), so a crash leaves nothing of an order running;
//   - mounts a fresh /proc, in which no process of iac-ci or of another order can be seen;
//   - covers the folders and files it is told to hide (the data folder, the secrets file, the
//     key file, the folder that holds every order's working directory) with empty ones, leaving
//     only the order's own working directory where it was;
//   - runs sh as an unprivileged user: the order user when iac-ci is root, or iac-ci's own user
//     without capabilities in a user namespace of its own.
//
// Where the kernel refuses the namespaces (Mode says which, and why), commands run as plain
// children in their own process group; docs/security.md says what each mode guarantees and what
// it does not.
//
// That init costs a start of this binary per command: for iac-ci, a binary of about 100 MB, about
// 4 ms of CPU (perf stat), most of it the Go runtime's start-up and page faults, not the
// namespaces (about 0.3 ms). A worker that runs many commands opens a Session instead: one init,
// set up once, that starts each command in namespaces of its own nested in the init's.
//
// Every binary that runs orders must let the init run: package internal/orderinit, which this
// package imports, does it in its init function when the process was started under InitName, so
// iac-ci and the test binary of any package that imports this one (through consumers) can play
// the part without a hook of their own.
package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/iac-ci/iac-ci/internal/orderinit"
)

// InitName is the name (argv[0]) under which this binary is the init of a command's namespaces.
const InitName = orderinit.Name

// Mode is how commands are confined.
type Mode int

const (
	// ProcessGroup runs each command as a plain child in its own process group, killed when the
	// command ends, and with iac-ci (Pdeathsig). A process that leaves the group (setsid) or
	// whose parent died first escapes; files are protected only by their modes.
	ProcessGroup Mode = iota
	// Namespaces runs each command under an init of its own in new PID and mount namespaces
	// (and a user namespace when iac-ci is not root), as the package comment says.
	Namespaces
)

func (m Mode) String() string {
	if m == Namespaces {
		return "namespaces"
	}
	return "process-group"
}

// User is whom commands run as when iac-ci is root.
type User struct {
	Name     string
	UID, GID int
}

// OrderUserName is the user that commands run as when iac-ci is root, if the machine has it;
// else they run as nobody.
const OrderUserName = "iac-ci-order"

// LookupUser finds the user commands run as when iac-ci is root: name (a user name or uid:gid),
// or OrderUserName, or nobody. Root is refused: it would read everything.
func LookupUser(name string) (User, error) {
	candidates := []string{name}
	if name == "" {
		candidates = []string{OrderUserName, "nobody"}
	}
	var lastErr error
	for _, n := range candidates {
		u, err := lookupOne(n)
		if err != nil {
			lastErr = err
			continue
		}
		if u.UID == 0 || u.GID == 0 {
			return User{}, fmt.Errorf("order user %q: is root, which would read everything; name an unprivileged user", n)
		}
		return u, nil
	}
	return User{}, lastErr
}

func lookupOne(name string) (User, error) {
	if uid, gid, ok := parseIDs(name); ok {
		return User{Name: name, UID: uid, GID: gid}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return User{}, fmt.Errorf("order user: %w (create the user, or name another as user or uid:gid)", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return User{}, fmt.Errorf("order user %q: ids %s:%s are not numbers", name, u.Uid, u.Gid)
	}
	return User{Name: name, UID: uid, GID: gid}, nil
}

func parseIDs(s string) (int, int, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	uid, err1 := strconv.Atoi(a)
	gid, err2 := strconv.Atoi(b)
	return uid, gid, err1 == nil && err2 == nil && uid >= 0 && gid >= 0
}

// Sandbox confines commands. The zero value confines with the order user found by LookupUser;
// it is safe for concurrent use.
type Sandbox struct {
	// User is whom commands run as when iac-ci is root; nil looks it up once (LookupUser("")).
	User *User
	// Off runs commands as plain children in their own process group (ProcessGroup), whatever
	// the kernel allows.
	Off bool

	logMu sync.Mutex
	log   *slog.Logger

	once    sync.Once
	mode    Mode
	user    User
	probErr error
}

// Default is the Sandbox of this process, which its commands use unless told otherwise.
var Default = &Sandbox{}

// Mode probes, once, what the kernel allows and returns the mode commands run in, with the
// reason when it is not Namespaces.
func (s *Sandbox) Mode() (Mode, error) {
	s.once.Do(s.probe)
	return s.mode, s.probErr
}

// LogTo makes log hear, once, which mode commands run in, and why when not Namespaces, unless a
// logger was given before.
func (s *Sandbox) LogTo(log *slog.Logger) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.log == nil {
		s.log = log
	}
}

// probe finds the mode and the user, and says which.
func (s *Sandbox) probe() {
	s.find()
	s.logMu.Lock()
	log := s.log
	s.logMu.Unlock()
	if log == nil {
		return
	}
	uid, gid := s.user.UID, s.user.GID
	if s.mode == Namespaces {
		log.Info("orders run confined", "mode", s.mode.String(), "uid", uid, "gid", gid)
		return
	}
	log.Warn("orders run without namespaces: a process an order starts in a new session can outlive it, "+
		"and orders can see this machine's processes", "mode", s.mode.String(), "uid", uid, "gid", gid, "reason", s.probErr)
}

// RunsAs returns the uid and gid commands run as (iac-ci's own when it is not root).
func (s *Sandbox) RunsAs() (uid, gid int) {
	s.once.Do(s.probe)
	return s.user.UID, s.user.GID
}

// DropsPrivileges reports whether commands run as another user than iac-ci (iac-ci is root):
// their working directory must then be theirs.
func (s *Sandbox) DropsPrivileges() bool {
	s.once.Do(s.probe)
	return s.user.UID != os.Geteuid()
}

// Prepare readies dir, a fresh working directory, for commands to run in: when they run as
// another user (iac-ci is root), it gives them dir and everything in it, and, without
// namespaces, opens workRoot (the folder holding every order's directory, iac-ci's own) to be
// passed through and checks that every folder above it may be passed through too: with
// namespaces the init puts dir where the order user reaches it. The error says what to change.
func (s *Sandbox) Prepare(dir, workRoot string) error {
	if !s.DropsPrivileges() {
		return nil
	}
	uid, gid := s.RunsAs()
	if err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid) // symlinks themselves, not their targets
	}); err != nil {
		return fmt.Errorf("hand the working directory to the order user: %w", err)
	}
	if mode, _ := s.Mode(); mode == Namespaces {
		return nil
	}
	if err := os.Chmod(workRoot, 0o711); err != nil {
		return fmt.Errorf("open the folder of working directories to the order user: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for _, a := range orderinit.Ancestors(abs) {
		st, err := os.Stat(a)
		if err != nil {
			return err
		}
		if !orderinit.Searchable(st, uid, gid) {
			return fmt.Errorf("the order user (uid %d) may not pass through %s to the working directory, and without "+
				"namespaces iac-ci cannot put it elsewhere: allow it (chmod o+x %s), keep the data folder under one it may pass, "+
				"or run iac-ci where the kernel allows PID and mount namespaces", uid, a, a)
		}
	}
	return nil
}

func (s *Sandbox) find() {
	s.user = User{UID: os.Geteuid(), GID: os.Getegid()}
	if os.Geteuid() == 0 {
		u := s.User
		if u == nil {
			found, err := LookupUser("")
			if err != nil {
				s.mode, s.probErr = ProcessGroup, err
				return
			}
			u = &found
		}
		s.user = *u
	}
	if s.Off {
		s.mode, s.probErr = ProcessGroup, errors.New("turned off")
		return
	}
	dir, err := os.MkdirTemp("", "iac-ci-probe-")
	if err != nil {
		s.mode, s.probErr = ProcessGroup, fmt.Errorf("probe: %w", err)
		return
	}
	defer os.RemoveAll(dir)
	if os.Geteuid() == 0 {
		_ = os.Chown(dir, s.user.UID, s.user.GID)
	}
	cmd, err := s.command(orderinit.Spec{Dir: dir, Probe: true}, "true", nil)
	if err == nil {
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err = s.Start(cmd); err == nil {
			err = cmd.Wait()
		}
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out.String())
		}
	}
	if err != nil {
		s.mode, s.probErr = ProcessGroup, fmt.Errorf("the kernel refused namespaces for orders: %w", err)
		return
	}
	s.mode = Namespaces
}

// Command returns the command that runs `sh -c script` in dir with env (and nothing else of
// this process's environment), confined as Mode says, hiding the paths in hide (and the folder
// that holds dir, where other orders' directories are). The command is the leader of its own
// process group, and is killed when this process's thread that starts it dies: signal -pid to
// reach all of it. Its stdio is the caller's to set.
func (s *Sandbox) Command(script, dir string, env []string, hide ...string) *exec.Cmd {
	mode, _ := s.Mode()
	if mode != Namespaces {
		cmd := exec.Command(shell(), "-c", script)
		cmd.Dir, cmd.Env = dir, env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if os.Geteuid() == 0 && s.user.UID != 0 {
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(s.user.UID), Gid: uint32(s.user.GID), Groups: []uint32{}}
		}
		return cmd
	}
	abs := make([]string, 0, len(hide)+1)
	for _, h := range append(slices.Clone(hide), filepath.Dir(dir)) {
		if h == "" {
			continue
		}
		if a, err := filepath.Abs(h); err == nil {
			abs = append(abs, filepath.Clean(a))
		}
	}
	d, _ := filepath.Abs(dir)
	cmd, _ := s.command(orderinit.Spec{Hide: abs, Dir: d}, script, env)
	return cmd
}

// Start starts a command made by Command; use it rather than cmd.Start, which cannot start a
// confined command once this process is protected (Protect) and not root.
func (s *Sandbox) Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Cloneflags&syscall.CLONE_NEWUSER != 0 {
		return startDumpable(cmd)
	}
	return cmd.Start()
}

// command builds the init's command line and namespaces.
func (s *Sandbox) command(sp orderinit.Spec, script string, env []string) (*exec.Cmd, error) {
	sp.AsRoot = os.Geteuid() == 0
	sp.UID, sp.GID, sp.Shell = s.user.UID, s.user.GID, shell()
	arg, err := json.Marshal(sp)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{InitName, string(arg), script}, Dir: sp.Dir, Env: env}
	attr := &syscall.SysProcAttr{
		Setpgid: true, Pdeathsig: syscall.SIGKILL,
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
	}
	if !sp.AsRoot {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	cmd.SysProcAttr = attr
	return cmd, nil
}

// shell is the path of sh, looked up once: a lookup stats each folder of PATH in turn.
var shell = sync.OnceValue(func() string {
	if path, err := exec.LookPath("sh"); err == nil {
		return path
	}
	return "sh" // exec.Command reports the lookup's error when it runs
})
