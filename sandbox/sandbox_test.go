package sandbox_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/sandbox"
)

// openDir makes a folder any user may write in (the order user too, when the tests run as
// root), for commands to leave proof in.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// workDir makes a working directory as consumers.WorkDirs does, owned by whom commands run as.
func workDir(t *testing.T, sb *sandbox.Sandbox) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "order-1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	uid, gid := sb.RunsAs()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

func requireNamespaces(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	if mode, err := sb.Mode(); mode != sandbox.Namespaces {
		t.Fatalf("orders run in mode %s (%v); this machine allows PID, mount and user namespaces, so they must run in %s",
			mode, err, sandbox.Namespaces)
	}
}

func run(t *testing.T, sb *sandbox.Sandbox, script, dir string, hide ...string) (string, int) {
	t.Helper()
	cmd := sb.Command(script, dir, []string{"PATH=" + os.Getenv("PATH"), "ORDER_VAR=mine"}, hide...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := sb.Start(cmd)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	err = cmd.Wait()
	code := 0
	if err != nil {
		code = cmd.ProcessState.ExitCode()
		if code == -1 {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
	}
	return out.String(), code
}

func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// Processes a command leaves behind, in a new session or double-forked, end with it.
func TestCommandLeavesNoProcessBehind(t *testing.T) {
	sb := sandbox.Default
	requireNamespaces(t, sb)
	out := openDir(t)
	dir := workDir(t, sb)
	script := `setsid sleep 60 & (sleep 60 & echo started) ; echo $$ > ` + out + `/inner; ` +
		`ls /proc | grep -c '^[0-9]' > ` + out + `/count; exit 3`
	log, code := run(t, sb, script, dir)
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, log)
	}
	// Within its namespace the command saw only its own processes: the init, sh, the two
	// sleeps, ls and grep.
	data, err := os.ReadFile(filepath.Join(out, "count"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(data))); n > 6 || n < 3 {
		t.Errorf("the command saw %d processes in /proc, want only its own few", n)
	}
	// Every sleep of the machine that is ours is gone: none may be a child of a dead init.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := sleepers(t)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("processes %v outlived the command", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sleepers lists the live `sleep 60` processes whose environment holds ORDER_VAR=mine.
func sleepers(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if string(cmdline) == "sleep\x0060\x00" && bytes.Contains(env, []byte("ORDER_VAR=mine")) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// Hidden folders and files read as empty; the working directory, under a hidden folder, stays.
func TestCommandCannotReadHiddenPaths(t *testing.T) {
	sb := sandbox.Default
	requireNamespaces(t, sb)
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "secret.db"), []byte("data-folder-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	secretsFile := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(secretsFile, []byte(`{"x": "secrets-file-value"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(data, "work")
	if err := os.MkdirAll(filepath.Join(work, "order-other"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "order-other", "tfstate"), []byte("other-order-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "order-1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	uid, gid := sb.RunsAs()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	script := `echo own > own.txt && cat own.txt; pwd; ` +
		`cat ` + data + `/secret.db ` + secretsFile + ` ` + work + `/order-other/tfstate 2>&1; ` +
		`cat ` + dir + `/../order-other/tfstate 2>&1; echo LISTING; ls -a ` + data + ` ` + work + `; echo END; ` +
		`cat /proc/*/environ 2>/dev/null | tr '\0' '\n' | grep -c ORDER_VAR; id -u`
	log, code := run(t, sb, script, dir, data, secretsFile)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, log)
	}
	for _, v := range []string{"data-folder-value", "secrets-file-value", "other-order-value"} {
		if strings.Contains(log, v) {
			t.Errorf("the command read %q:\n%s", v, log)
		}
	}
	_, listing, _ := strings.Cut(log, "LISTING")
	listing, _, _ = strings.Cut(listing, "END")
	for _, name := range []string{"order-other", "secret.db"} {
		if strings.Contains(listing, name) {
			t.Errorf("the command listed %q:\n%s", name, listing)
		}
	}
	if !strings.Contains(log, "own\n"+dir+"\n") {
		t.Errorf("the command did not work in its own directory %s:\n%s", dir, log)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "own.txt")); err != nil || string(got) != "own\n" {
		t.Errorf("own.txt: %q %v", got, err)
	}
	if os.Geteuid() == 0 && strings.HasSuffix(strings.TrimSpace(log), "\n0") {
		t.Errorf("iac-ci is root, and so was the command:\n%s", log)
	}
}

// The same tests, run by a user that is not root: commands then run in a user namespace of their
// own. Run when the tests run as root, as the order user (the test binary is copied where that
// user can run it).
func TestAsUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		return // this run is the unprivileged one
	}
	u, err := sandbox.LookupUser("")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := openDir(t)
	bin := filepath.Join(dir, "sandbox.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^(TestCommand|TestSession|TestProtect)", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + dir, "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestCommandCannotReadHiddenPaths") ||
		!strings.Contains(string(out), "--- PASS: TestCommandLeavesNoProcessBehind") ||
		!strings.Contains(string(out), "--- PASS: TestProtectHidesTheEnvironmentFromTheSameUser") ||
		!strings.Contains(string(out), "--- PASS: TestProtectedProcessStillConfinesCommands") ||
		!strings.Contains(string(out), "--- PASS: TestSessionConfinesEachCommand") {
		t.Fatalf("as uid %d: %v\n%s", u.UID, err, out)
	}
}

// TestMain lets the test binary play a process holding a value in its environment: with
// PROTECT_TEST set it protects itself if that says so, says it is ready and waits for its stdin
// to close.
func TestMain(m *testing.M) {
	if mode := os.Getenv("PROTECT_TEST"); mode != "" {
		if mode == "protect" {
			if err := sandbox.Protect(); err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A protected process's environment and memory cannot be read by another process of its user
// (an order's command run without a sandbox, the weakest mode). Root may read them all the same,
// so this runs in TestAsUnprivilegedUser only.
func TestProtectHidesTheEnvironmentFromTheSameUser(t *testing.T) {
	if os.Geteuid() == 0 {
		return // root reads every process; TestAsUnprivilegedUser runs this as another user
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	read := func(protected bool) string {
		t.Helper()
		mode := "plain"
		if protected {
			mode = "protect"
		}
		p := exec.Command(self)
		p.Env = []string{"PROTECT_TEST=" + mode, "PROTECT_TEST_VALUE=value-of-the-protected-process"}
		in, err := p.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := p.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { in.Close(); _ = p.Wait() }()
		line := make([]byte, 6)
		if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ready\n" {
			t.Fatalf("the %s process did not start: %q %v", mode, line, err)
		}
		pid := strconv.Itoa(p.Process.Pid)
		out, _ := exec.Command("sh", "-c", "cat /proc/"+pid+"/environ; head -c 64 /proc/"+pid+"/mem").CombinedOutput()
		return string(out)
	}
	// Unprotected, it can: the test can fail.
	if out := read(false); !strings.Contains(out, "value-of-the-protected-process") {
		t.Fatalf("the unprotected environment could not be read either:\n%s", out)
	}
	if out := read(true); strings.Contains(out, "value-of-the-protected-process") {
		t.Fatalf("a process of the same user read the protected process's environment:\n%s", out)
	}
}

// Without namespaces, iac-ci as root still runs commands as the order user, in a working
// directory handed to that user; one it cannot reach is refused with what to change.
func TestWithoutNamespacesRootStillDropsToTheOrderUser(t *testing.T) {
	if os.Geteuid() != 0 {
		return // not root: commands run as iac-ci's own user, there is nothing to drop
	}
	sb := &sandbox.Sandbox{Off: true}
	if mode, _ := sb.Mode(); mode != sandbox.ProcessGroup {
		t.Fatalf("mode %s with Off set", mode)
	}
	uid, _ := sb.RunsAs()

	closed := t.TempDir() // under the test's own folder, of mode 0700
	dir := filepath.Join(closed, "order-1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := sb.Prepare(dir, closed); err == nil || !strings.Contains(err.Error(), "chmod o+x "+filepath.Dir(closed)) {
		t.Errorf("Prepare of an unreachable directory: %v; want it refused, naming the folder to open", err)
	}

	open := openDir(t)
	root := filepath.Join(open, "work")
	dir = filepath.Join(root, "order-1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte("# code"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sb.Prepare(dir, root); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	log, code := run(t, sb, `id -u; cat main.tf && echo written > out.txt`, dir)
	if code != 0 || !strings.HasPrefix(log, strconv.Itoa(uid)+"\n") || !strings.Contains(log, "# code") {
		t.Fatalf("exit %d, want 0 as uid %d reading its code:\n%s", code, uid, log)
	}
}

// A protected process (iac-ci, which protects itself first thing) still starts confined
// commands: as a user, it must write their uid_map, which its children's /proc files hide from it
// unless it is dumpable the moment it starts them. This protects the test process for good, so
// it runs last.
func TestProtectedProcessStillConfinesCommands(t *testing.T) {
	sb := &sandbox.Sandbox{}
	if err := sandbox.Protect(); err != nil {
		t.Fatal(err)
	}
	requireNamespaces(t, sb)
	dir := workDir(t, sb)
	if log, code := run(t, sb, "echo confined > out.txt; cat out.txt", dir); code != 0 || log != "confined\n" {
		t.Fatalf("exit %d:\n%s", code, log)
	}
}

// A Session starts its commands as Command does, at the cost of a fork and an exec of sh: each
// sees its own working directory and not another's, hidden paths read as empty, and what a
// command leaves behind ends with it.
func TestSessionConfinesEachCommand(t *testing.T) {
	sb := sandbox.Default
	requireNamespaces(t, sb)
	data := t.TempDir()
	secretsFile := filepath.Join(data, "secrets.json")
	if err := os.WriteFile(secretsFile, []byte("secrets-file-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(data, "work")
	var dirs []string
	for _, name := range []string{"order-a", "order-b"} {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "state"), []byte("value-of-"+name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := sb.Prepare(dir, root); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	ss, err := sb.Open(root, data, secretsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	out := openDir(t)
	for i, dir := range dirs {
		other := dirs[1-i]
		logFile, err := os.Create(filepath.Join(out, "log"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		// Through the session's init too: its open folders (the real work root among them).
		script := `cat state; echo; cat ` + other + `/state ` + secretsFile + ` 2>&1; ls ` + root + `; ` +
			`for f in /proc/1/fd/* /proc/1/cwd /proc/1/root` + root + `; do ls "$f/" 2>/dev/null; done; ` +
			`ls /proc | grep -c '^[0-9]'; MARK=` + out + ` setsid sleep 60 & exit 7`
		r, err := ss.Run(script, dir, []string{"PATH=" + os.Getenv("PATH"), "ORDER_VAR=mine"}, logFile)
		logFile.Close()
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		code, err := r.Wait()
		log, _ := os.ReadFile(logFile.Name())
		if err != nil || code != 7 {
			t.Fatalf("command %d: exit %d %v, want 7\n%s", i, code, err, log)
		}
		own, otherName := filepath.Base(dir), filepath.Base(other)
		if !strings.HasPrefix(string(log), "value-of-"+own+"\n") {
			t.Errorf("command %d did not read its own state:\n%s", i, log)
		}
		for _, v := range []string{"value-of-" + otherName, "secrets-file-value"} {
			if strings.Contains(string(log), v) {
				t.Errorf("command %d read %q:\n%s", i, v, log)
			}
		}
		if strings.Contains(string(log), otherName+"\n") {
			t.Errorf("command %d listed %s:\n%s", i, otherName, log)
		}
		for _, pid := range sleepersWith(t, "MARK="+out) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("command %d left process %d running", i, pid)
		}
	}
	if err := ss.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// sleepersWith lists the live processes whose environment holds marker.
func sleepersWith(t *testing.T, marker string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if slices.Contains(strings.Split(string(env), "\x00"), marker) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// Started under its name by anyone but iac-ci (not as PID 1 of a namespace of its own), the init
// refuses: its mounts would otherwise change the machine's own view. The test starts it in a
// mount namespace of its own all the same, so that a broken refusal changes nothing outside.
func TestInitRefusesToRunOutsideItsNamespaces(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	spec := `{"dir":"` + dir + `","shell":"/bin/sh","probe":true}`
	cmd := &exec.Cmd{Path: self, Args: []string{sandbox.InitName, spec, "true"}, Dir: dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if os.Geteuid() != 0 {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 126 || !strings.Contains(string(out), "runs only as the init") {
		t.Fatalf("the init started by hand: %v\n%s", err, out)
	}
}
