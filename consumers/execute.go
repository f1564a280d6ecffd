package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/crashpoint"
	"github.com/iac-ci/iac-ci/masking"
	"github.com/iac-ci/iac-ci/sandbox"
	"github.com/iac-ci/iac-ci/sealing"
)

// Limits of what travels with a result.
const (
	TailBytes   = 4 << 10  // the log tail in result.json and the order record
	MaxLogBytes = 32 << 20 // the stored log keeps its last MaxLogBytes
	// KillGrace is how long a timed-out order's process group has between SIGTERM and SIGKILL.
	KillGrace = 3 * time.Second
)

// Task is one attempt of one order, as whoever claimed it hands it to Execute. It carries what
// the attempt needs and nothing else: the bundle, the run's key, and where to deliver.
type Task struct {
	RunID    string
	OrderNum int
	Attempt  int
	// Bundle is the order's exec.zip.
	Bundle []byte
	// Identity is the run's private age key, which opens the sealed environment.
	Identity string
	// Opener opens the sealed environment, keeping the data keys it unwraps for the next tasks
	// of the same runs; nil opens with sealing.Open, which keeps nothing.
	Opener *sealing.Opener
	// CallbackURL is a presigned PUT URL for this attempt's result.json. The commands see it too,
	// as CALLBACK_URL.
	CallbackURL string
	// LogKey names where PutLog stores a log too long for the tail; it is reported in the result.
	// A shorter log is whole in the tail and is not stored apart.
	LogKey string
	PutLog func(ctx context.Context, log []byte) error
	// WorkRoot is where a fresh working directory is made (and removed afterwards), when Dirs
	// is nil.
	WorkRoot string
	// Dirs, when set, hands out the working directory and takes it back.
	Dirs *WorkDirs
	// BaseEnv is the environment the commands start from, before the order's own.
	BaseEnv []string
	// Hide names folders and files of this process that the commands must not reach (the data
	// folder, the secrets file, a key file); the folder holding the working directory, where
	// other orders work, is hidden too. See package sandbox for how, and when it cannot.
	Hide []string
	// Sandbox confines the commands; nil uses sandbox.Default.
	Sandbox *sandbox.Sandbox
	// Session, when set, starts the commands (a Worker keeps one): each costs a fork and an
	// exec of sh instead of a start of iac-ci as its init. Its work root must be the folder that
	// holds the working directory. A session that ended is passed over for Sandbox's commands.
	Session *sandbox.Session
	Log     *slog.Logger
	// HTTPClient delivers the result; nil uses a client with a 30 s timeout.
	HTTPClient *http.Client
	// Deliver, when set, hands the result over instead of PUTting result.json to CallbackURL:
	// a worker in the orchestrator's own process records it there (Orchestrator.RecordOwn).
	Deliver func(ctx context.Context, res domain.Result) error
	// Live, when set, also gets the commands' output as it is written, masked.
	Live io.Writer
	// DeliverAfterCancel, when positive, still delivers the result (and log) for that long once
	// ctx ends: a CodeBuild build or an instance being stopped reports why the order failed
	// instead of leaving it to the sweeper's timeout. Zero stops at once, as the embedded engine
	// wants: its own server is stopping too, and the order's message comes back on restart.
	DeliverAfterCancel time.Duration
}

// Execute runs one attempt of an order and delivers its result to the task's callback URL (or
// to its Deliver): it unpacks the bundle into a fresh working directory (refusing unsafe
// bundles), opens the sealed environment, runs the commands one by one with `sh -c` in that
// directory, stopping at the first failure, and ends the whole process group when the order's
// timeout passes. The log is masked before it is stored or reported. A bundle or key that
// cannot be used ends the attempt failed, with a reason saying why. The returned error is only
// about delivering the result.
func Execute(ctx context.Context, t Task) (domain.Result, error) {
	log := t.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := domain.Result{RunID: t.RunID, OrderNum: t.OrderNum, Attempt: t.Attempt, StartedAt: time.Now().UTC(), LogKey: t.LogKey}
	masker := masking.New(t.CallbackURL)
	logText := run(ctx, t, &res, &masker)

	if ctx.Err() != nil && t.DeliverAfterCancel > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), t.DeliverAfterCancel)
		defer cancel()
	}
	masked := []byte(masker.String(string(logText)))
	res.LogTail = tail(masked, TailBytes)
	res.FinishedAt = time.Now().UTC()
	switch {
	case len(masked) < TailBytes:
		// The tail is the whole log: result.json stores it whole, and a log object beside it
		// would only repeat it (on AWS, one S3 PUT per order saved).
		res.LogKey = ""
	case t.PutLog != nil:
		if err := t.PutLog(ctx, masked); err != nil {
			log.WarnContext(ctx, "store order log", "run_id", t.RunID, "order_num", t.OrderNum, "err", err)
			res.LogKey = ""
		}
	default:
		res.LogKey = ""
	}
	crashpoint.Hit("worker.before-result")
	if t.Deliver != nil {
		return res, t.Deliver(ctx, res)
	}
	if err := deliver(ctx, t, res); err != nil {
		return res, err
	}
	return res, nil
}

// run does the work of Execute up to the result, filling res and returning the raw log.
func run(ctx context.Context, t Task, res *domain.Result, masker **masking.Masker) []byte {
	fail := func(reason string) []byte {
		res.Status, res.ExitCode, res.Reason = domain.OrderFailed, -1, reason
		return []byte("iac-ci: " + reason + "\n")
	}
	dirs := t.Dirs
	if dirs == nil {
		dirs = &WorkDirs{Root: t.WorkRoot}
	}
	dir, err := dirs.Get()
	if err != nil {
		return fail(err.Error())
	}
	defer dirs.Put(dir)
	if t.Bundle == nil {
		return fail("the order's bundle could not be read")
	}
	m, sealed, err := bundle.Unpack(t.Bundle, dir, bundle.DefaultLimits)
	if err != nil {
		return fail("bundle refused: " + err.Error())
	}
	sb := t.Sandbox
	if sb == nil {
		sb = sandbox.Default
	}
	if err := sb.Prepare(dir, filepath.Dir(dir)); err != nil {
		return fail(err.Error())
	}
	open := sealing.Open
	if t.Opener != nil {
		open = t.Opener.Open
	}
	env, err := open(sealed, t.Identity)
	if err != nil {
		return fail("the sealed environment could not be opened: " + err.Error())
	}
	secretValues := []string{t.CallbackURL}
	for _, name := range m.SecretNames {
		secretValues = append(secretValues, env[name])
	}
	*masker = masking.New(secretValues...)
	env["CALLBACK_URL"] = t.CallbackURL

	deadline := res.StartedAt.Add(time.Duration(m.Timeout) * time.Second)
	logBuf := &boundedLog{max: MaxLogBytes}
	// Masked as it streams in, before the log is cut to its last MaxLogBytes: a cut made first
	// could keep the end of a value whose start it dropped, and no masking would find that.
	var out io.Writer = logBuf
	if t.Live != nil {
		out = io.MultiWriter(logBuf, t.Live)
	}
	maskedLog := (*masker).Writer(out)
	base := t.BaseEnv
	if sb.DropsPrivileges() {
		// iac-ci's home is not the order user's to write: tools that keep files in $HOME keep
		// them in the working directory instead, unless the order sets HOME itself.
		base = append(slices.Clone(base), "HOME="+dir)
	}
	cmdEnv := mergeEnv(base, env)
	confined := func(script string, out *os.File) (running, error) {
		if t.Session != nil {
			r, err := t.Session.Run(script, dir, cmdEnv, out)
			if !errors.Is(err, sandbox.ErrSessionEnded) {
				return sessionCommand{r}, err
			}
		}
		cmd := sb.Command(script, dir, cmdEnv, t.Hide...)
		cmd.Stdout, cmd.Stderr = out, out
		return execCommand{cmd}, sb.Start(cmd)
	}
	status, code, reason, err := runCommands(ctx, m.Cmds, confined, deadline, maskedLog)
	_ = maskedLog.Close() // writes what it held back; the buffer it writes to cannot fail
	if err != nil {
		return fail(err.Error())
	}
	res.Status, res.ExitCode, res.Reason = status, code, reason
	if reason != "" {
		fmt.Fprintf(logBuf, "iac-ci: %s\n", reason)
	}
	return logBuf.Bytes()
}

var logBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// runCommands runs each command in turn in its own process group, its output and errors going
// to log. The commands write to a pipe this process reads itself, not through os/exec's copying:
// a background child that keeps the pipe open would keep exec's Wait waiting, while here the
// reading ends once the process group is gone.
func runCommands(ctx context.Context, cmds []string, start startFunc, deadline time.Time, log io.Writer) (domain.OrderStatus, int, string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", 0, "", fmt.Errorf("make output pipe: %w", err)
	}
	copied := make(chan struct{})
	go func() {
		// A buffer of the pool's: io.Copy would make a 32 KB one per order (over a third of
		// the bytes a 1000-order fan-out allocated). The wrappers hide WriterTo and ReaderFrom,
		// which would make their own.
		buf := logBuffers.Get().(*[]byte)
		_, _ = io.CopyBuffer(struct{ io.Writer }{log}, struct{ io.Reader }{r}, *buf)
		logBuffers.Put(buf)
		r.Close()
		close(copied)
	}()
	status, code, reason := runEach(ctx, cmds, start, deadline, w)
	w.Close()
	select {
	case <-copied:
	case <-time.After(KillGrace):
		// A process outside the group (one that called setsid) still holds the pipe: only where
		// the commands run without a PID namespace of their own (sandbox.ProcessGroup).
		r.Close()
		<-copied
	}
	return status, code, reason, nil
}

// startFunc starts one command with its output and errors going to out.
type startFunc func(script string, out *os.File) (running, error)

// running is a command started, in its own process group.
type running interface {
	// wait waits for the command and returns its exit code (-1 when it has none) and, unless
	// it exited with 0, an error.
	wait() (int, error)
	// signal sends sig to the command's process group.
	signal(sig syscall.Signal)
}

// execCommand is a command this process started (sandbox.Sandbox.Command).
type execCommand struct{ cmd *exec.Cmd }

func (c execCommand) wait() (int, error) {
	err := c.cmd.Wait()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), err
	}
	return -1, err
}

func (c execCommand) signal(sig syscall.Signal) { _ = syscall.Kill(-c.cmd.Process.Pid, sig) }

// sessionCommand is a command a sandbox.Session started.
type sessionCommand struct{ r *sandbox.Running }

func (c sessionCommand) wait() (int, error) {
	code, err := c.r.Wait()
	switch {
	case err != nil:
		return -1, err
	case code != 0:
		return code, fmt.Errorf("exit status %d", code)
	}
	return 0, nil
}

func (c sessionCommand) signal(sig syscall.Signal) { _ = c.r.Signal(sig) }

func runEach(ctx context.Context, cmds []string, start startFunc, deadline time.Time, out *os.File) (domain.OrderStatus, int, string) {
	for i, c := range cmds {
		fmt.Fprintf(out, "+ %s\n", c)
		// Its own process group, so that a timeout ends every process the command started; and
		// killed if this process dies, so a crashed worker leaves no command running (with
		// everything it started, where the command has a PID namespace of its own).
		cmd, err := start(c, out)
		if err != nil {
			return domain.OrderFailed, -1, fmt.Sprintf("command %d could not start: %v", i+1, err)
		}
		type ended struct {
			code int
			err  error
		}
		done := make(chan ended, 1)
		go func() { code, err := cmd.wait(); done <- ended{code, err} }()
		var end ended
		timer := time.NewTimer(time.Until(deadline))
		timedOut, cancelled := false, false
		select {
		case end = <-done:
		case <-timer.C:
			timedOut = true
		case <-ctx.Done():
			cancelled = true
		}
		timer.Stop()
		if timedOut || cancelled {
			cmd.signal(syscall.SIGTERM)
			select {
			case end = <-done:
			case <-time.After(KillGrace):
				cmd.signal(syscall.SIGKILL)
				end = <-done
			}
		}
		// Whatever the command left running in the background ends with it.
		cmd.signal(syscall.SIGKILL)
		switch {
		case timedOut:
			return domain.OrderTimedOut, -1, fmt.Sprintf("timed out: command %d was still running when the order's timeout passed", i+1)
		case cancelled:
			return domain.OrderFailed, -1, "the worker stopped while the order ran"
		case end.err != nil:
			return domain.OrderFailed, end.code, fmt.Sprintf("command %d exited with %d", i+1, end.code)
		}
	}
	return domain.OrderSucceeded, 0, ""
}

// mergeEnv returns base with env laid over it, sorted for a stable order.
func mergeEnv(base []string, env map[string]string) []string {
	type variable struct{ name, kv string }
	vars := make([]variable, 0, len(base)+len(env))
	for _, kv := range base {
		k, _, ok := strings.Cut(kv, "=")
		if _, set := env[k]; ok && !set {
			vars = append(vars, variable{k, kv})
		}
	}
	for k, v := range env {
		vars = append(vars, variable{k, k + "=" + v})
	}
	// Stable, so that of a name base gives twice the later comes later, and is the one kept.
	slices.SortStableFunc(vars, func(a, b variable) int { return strings.Compare(a.name, b.name) })
	out := make([]string, 0, len(vars))
	for i, v := range vars {
		if i+1 < len(vars) && vars[i+1].name == v.name {
			continue
		}
		out = append(out, v.kv)
	}
	return out
}

// shellEnv names the variables of this process that LocalEnv passes on: what a shell, its
// tools and their TLS need, and nothing that iac-ci or the operator keeps there for themselves.
// A trailing * is a prefix.
var shellEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "TMPDIR",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
}

// LocalEnv is the environment commands start from where they run on iac-ci's own machine
// (embedded, and `iac-ci worker` on a build or an instance): the variables of shellEnv and of
// extra (names, or prefixes ending in *) of this process's environment, and no other. The rest
// of it may hold what is not the order's: the webhook secret, a GitHub token, the values that
// env: secret locations read, credentials.
func LocalEnv(extra ...string) []string {
	keep := append(slices.Clone(shellEnv), extra...)
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "IAC_CI_") {
			continue
		}
		for _, k := range keep {
			if prefix, ok := strings.CutSuffix(k, "*"); ok && strings.HasPrefix(name, prefix) || name == k {
				out = append(out, kv)
				break
			}
		}
	}
	return out
}

// tail returns the last n bytes of b, starting at a whole character.
func tail(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	b = b[len(b)-n:]
	for len(b) > 0 && !utf8.RuneStart(b[0]) {
		b = b[1:]
	}
	return string(b)
}

// deliver PUTs result.json to the callback URL (Transfer).
func deliver(ctx context.Context, t Task, res domain.Result) error {
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if _, err := Transfer(ctx, t.HTTPClient, http.MethodPut, t.CallbackURL, "application/json", body, 0); err != nil {
		return fmt.Errorf("deliver result: %w", err)
	}
	return nil
}

// boundedLog keeps the last max bytes written to it, so a command that prints without end
// cannot exhaust the worker's memory; it says at the top when it cut.
type boundedLog struct {
	max  int
	buf  []byte
	lost int64
}

func (b *boundedLog) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		// Keep some slack so that a stream of small writes does not copy the buffer each time.
		if over > b.max/4 || len(p) > b.max/4 {
			b.lost += int64(over)
			b.buf = append(b.buf[:0:0], b.buf[over:]...)
		}
	}
	return len(p), nil
}

func (b *boundedLog) Bytes() []byte {
	buf := b.buf
	if over := len(buf) - b.max; over > 0 {
		b.lost += int64(over)
		buf = buf[over:]
	}
	if b.lost == 0 {
		return buf
	}
	return append([]byte(fmt.Sprintf("[log cut: the first %d bytes were dropped; the last %d are kept]\n", b.lost, len(buf))), buf...)
}
