package orderinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// A serving init is set up once, for one worker of iac-ci, and then starts that worker's commands
// one at a time, each in a PID and mount namespace of its own nested in the init's, on requests
// it reads from the socket at fd 3 (SessionFD). Each command so costs a fork and an exec of sh,
// not a start of this binary. Its namespaces are set up as a single command's init sets up its
// own (setUp), except that the folder of working directories is covered and each command's
// directory is mounted there only while its command is started.

// SessionFD is where a serving init finds its socket.
const SessionFD = 3

// Request is one message to a serving init. Run comes with the command's output file, passed
// with it (SCM_RIGHTS).
type Request struct {
	// Run starts `sh -c Script` in Dir (a folder directly under the work root) with Env.
	Run    bool     `json:"run,omitempty"`
	Dir    string   `json:"dir,omitempty"`
	Script string   `json:"script,omitempty"`
	Env    []string `json:"env,omitempty"`
	// Signal sends the signal to the running command's process group.
	Signal int `json:"signal,omitempty"`
}

// Reply is one message from a serving init: after a Run, Started (or Error); once the command
// ended, Exited with its Code (128+n for a signal n).
type Reply struct {
	Started bool   `json:"started,omitempty"`
	Error   string `json:"error,omitempty"`
	Exited  bool   `json:"exited,omitempty"`
	Code    int    `json:"code,omitempty"`
}

// serve sets up the init's namespaces and serves requests until its socket closes.
func serve(sp Spec) int {
	sock := os.NewFile(SessionFD, "session")
	syscall.CloseOnExec(SessionFD) // not the commands'
	signal.Notify(make(chan os.Signal, 1), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	rootFD, err := syscall.Open(sp.WorkRoot, oPath|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "iac-ci: the orders' init: open the work root: %v\n", err)
		return exitSetUp
	}
	err = setUp(Spec{Dir: sp.WorkRoot, Hide: sp.Hide, AsRoot: sp.AsRoot, UID: sp.UID, GID: sp.GID})
	if err == nil {
		err = cover(sp.WorkRoot, true)
	}
	if err == nil {
		err = os.Chdir("/")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "iac-ci: the orders' sandbox could not be set up: %v\n", err)
		return exitSetUp
	}
	s := &session{sp: sp, rootFD: rootFD, sock: sock}
	if err := s.loop(); err != nil {
		fmt.Fprintf(os.Stderr, "iac-ci: the orders' init: %v\n", err)
		return exitSetUp
	}
	return 0
}

type session struct {
	sp     Spec
	rootFD int
	sock   *os.File

	mu      sync.Mutex // guards running and writes to sock
	running *exec.Cmd
}

func (s *session) reply(r Reply) {
	data, _ := json.Marshal(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.sock.Write(data)
}

// loop reads requests until the socket (SOCK_SEQPACKET) closes. A request is one JSON message;
// a Run's output file comes with it.
func (s *session) loop() error {
	buf := make([]byte, 1<<20)
	oob := make([]byte, syscall.CmsgSpace(4))
	for {
		n, oobn, _, _, err := syscall.Recvmsg(SessionFD, buf, oob, syscall.MSG_CMSG_CLOEXEC)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read a request: %w", err)
		}
		if n == 0 {
			s.mu.Lock()
			if s.running != nil {
				_ = syscall.Kill(-s.running.Process.Pid, syscall.SIGKILL)
			}
			s.mu.Unlock()
			return nil // iac-ci closed the session
		}
		var out *os.File
		if oobn > 0 {
			if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
				if fds, err := syscall.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
					out = os.NewFile(uintptr(fds[0]), "output")
				}
			}
		}
		var req Request
		if json.Unmarshal(buf[:n], &req) != nil {
			if out != nil {
				out.Close()
			}
			return errors.New("a request is not JSON")
		}
		switch {
		case req.Run:
			if err := s.start(req, out); err != nil {
				s.reply(Reply{Error: err.Error()})
			}
			if out != nil {
				out.Close() // the command has its own copy
			}
		case req.Signal != 0:
			s.mu.Lock()
			if s.running != nil {
				_ = syscall.Kill(-s.running.Process.Pid, syscall.Signal(req.Signal))
			}
			s.mu.Unlock()
		}
	}
}

// start mounts the command's directory where it belongs, starts sh in namespaces of its own
// (which keep that mount), takes the mount back from the init's view, and waits for the command
// in the background.
func (s *session) start(req Request, out *os.File) error {
	s.mu.Lock()
	busy := s.running != nil
	s.mu.Unlock()
	switch {
	case busy:
		return errors.New("a command is running already")
	case out == nil:
		return errors.New("no output file came with the request")
	}
	name, ok := strings.CutPrefix(req.Dir, s.sp.WorkRoot+"/")
	if !ok || name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("%s is not a folder of the work root", req.Dir)
	}
	if err := os.Mkdir(req.Dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("make the working directory's mount point: %w", err)
	}
	// The mount point goes once the command has ended: removed while the command's namespace
	// holds a mount on it, the kernel would take that mount away there too.
	started := false
	defer func() {
		if !started {
			os.Remove(req.Dir)
		}
	}()
	if err := syscall.Mount(fmt.Sprintf("/proc/self/fd/%d/%s", s.rootFD, name), req.Dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount the working directory: %w", err)
	}
	defer syscall.Unmount(req.Dir, syscall.MNT_DETACH)

	cmd := exec.Command(s.sp.Shell, "-c", req.Script)
	cmd.Args[0] = "sh"
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = req.Dir, req.Env, out, out
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL,
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
	if s.sp.AsRoot {
		attr.Credential = &syscall.Credential{Uid: uint32(s.sp.UID), Gid: uint32(s.sp.GID), Groups: []uint32{}}
	} else {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: s.sp.UID, HostID: 0, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: s.sp.GID, HostID: 0, Size: 1}}
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the command: %w", err)
	}
	started = true
	s.mu.Lock()
	s.running = cmd
	s.mu.Unlock()
	s.reply(Reply{Started: true})
	go func() {
		err := cmd.Wait()
		os.Remove(req.Dir)
		code := 0
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		case err != nil:
			code = exitSetUp
		}
		s.mu.Lock()
		s.running = nil
		s.mu.Unlock()
		s.reply(Reply{Exited: true, Code: code})
	}()
	return nil
}
