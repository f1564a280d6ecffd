package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/iac-ci/iac-ci/internal/orderinit"
)

// ErrSessionEnded is returned by a Session whose init is gone; open another.
var ErrSessionEnded = errors.New("the orders' init ended")

// Session is one init serving the commands of one worker, one at a time: each command still
// gets PID and mount namespaces of its own (nested in the session's), its own working
// directory and nothing else of the work root, but costs a fork and an exec of sh rather than a
// start of this binary, which for iac-ci is most of a short command's cost. The session's init
// hides what Command's does, for all its commands, and shows them a /proc of its own PID
// namespace: only the session's init (not dumpable) and the running command.
//
// A Session is for one goroutine at a time.
type Session struct {
	workRoot string
	init     *exec.Cmd
	fd       int
	sock     *os.File
	replies  chan orderinit.Reply
	closed   sync.Once
	ended    atomic.Bool
}

// Ended reports whether the session's init is gone: open another.
func (ss *Session) Ended() bool { return ss.ended.Load() }

// Open starts a Session for commands whose working directories are folders directly under
// workRoot (which must exist), hiding the paths in hide. It fails when commands cannot run in
// namespaces here (see Mode): use Command then.
func (s *Sandbox) Open(workRoot string, hide ...string) (*Session, error) {
	if mode, err := s.Mode(); mode != Namespaces {
		return nil, fmt.Errorf("no namespaces for orders: %w", err)
	}
	root, err := filepath.Abs(workRoot)
	if err != nil {
		return nil, err
	}
	var abs []string
	for _, h := range hide {
		if h == "" {
			continue
		}
		if a, err := filepath.Abs(h); err == nil {
			abs = append(abs, filepath.Clean(a))
		}
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("make the session's socket: %w", err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "session")
	defer theirs.Close()
	cmd, err := s.command(orderinit.Spec{Serve: true, WorkRoot: root, Dir: root, Hide: abs}, "", nil)
	if err != nil {
		syscall.Close(fds[0])
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{theirs} // fd 3, orderinit.SessionFD
	cmd.Stderr = os.Stderr              // what the init says when it cannot go on
	if err := s.Start(cmd); err != nil {
		syscall.Close(fds[0])
		return nil, fmt.Errorf("start the orders' init: %w", err)
	}
	ss := &Session{workRoot: root, init: cmd, fd: fds[0], sock: os.NewFile(uintptr(fds[0]), "session"),
		replies: make(chan orderinit.Reply, 4)}
	go ss.read()
	return ss, nil
}

// read hands the init's replies over until it ends.
func (ss *Session) read() {
	defer close(ss.replies)
	defer ss.ended.Store(true)
	buf := make([]byte, 4096)
	for {
		n, err := ss.sock.Read(buf)
		if err != nil || n == 0 {
			return
		}
		var r orderinit.Reply
		if json.Unmarshal(buf[:n], &r) == nil {
			ss.replies <- r
		}
	}
}

func (ss *Session) send(req orderinit.Request, out *os.File) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var rights []byte
	if out != nil {
		rights = syscall.UnixRights(int(out.Fd()))
	}
	if err := syscall.Sendmsg(ss.fd, data, rights, nil, 0); err != nil {
		return fmt.Errorf("%w: %v", ErrSessionEnded, err)
	}
	return nil
}

// Running is a command a Session started.
type Running struct{ ss *Session }

// Run starts `sh -c script` in dir (a folder directly under the session's work root, handed to
// the order user by Prepare) with env, its output and errors going to out.
func (ss *Session) Run(script, dir string, env []string, out *os.File) (*Running, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := ss.send(orderinit.Request{Run: true, Dir: abs, Script: script, Env: env}, out); err != nil {
		return nil, err
	}
	r, ok := <-ss.replies
	switch {
	case !ok:
		return nil, ErrSessionEnded
	case r.Error != "":
		return nil, errors.New(r.Error)
	case !r.Started:
		return nil, fmt.Errorf("the orders' init answered %+v to a start", r)
	}
	return &Running{ss: ss}, nil
}

// Wait waits for the command to end and returns its exit code (128+n when a signal n ended it).
// Every process it started has ended too.
func (r *Running) Wait() (int, error) {
	for rep := range r.ss.replies {
		if rep.Exited {
			return rep.Code, nil
		}
	}
	return -1, ErrSessionEnded
}

// Signal sends sig to the command's process group.
func (r *Running) Signal(sig syscall.Signal) error {
	return r.ss.send(orderinit.Request{Signal: int(sig)}, nil)
}

// Close ends the session: a command still running is killed, with all it started.
func (ss *Session) Close() error {
	var err error
	ss.closed.Do(func() {
		// Shut down first: Close alone waits for the reader's blocked Read, which only the
		// init's end of the socket could end.
		_ = syscall.Shutdown(ss.fd, syscall.SHUT_RDWR)
		ss.sock.Close()
		if werr := ss.init.Wait(); werr != nil {
			err = fmt.Errorf("the orders' init: %w", werr)
		}
	})
	return err
}
