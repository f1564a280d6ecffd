package codesource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

var (
	repoPattern   = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
	commitPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./-]*$`)
)

// checkRepo accepts owner/name and nothing that could become another URL or a git option.
func checkRepo(repo string) error {
	if repo == "" {
		return errors.New("git_folder needs a git_repo (owner/name) on the order or the job")
	}
	owner, name, _ := strings.Cut(repo, "/")
	if !repoPattern.MatchString(repo) || owner == "." || owner == ".." || name == "." || name == ".." {
		return fmt.Errorf("git_repo %q: want owner/name", repo)
	}
	return nil
}

// checkCommit accepts a commit hash or a ref name; "" means the default branch head. Nothing
// starting with "-" gets through, so a commit can never be read by git as an option.
func checkCommit(commit string) error {
	if commit != "" && (!commitPattern.MatchString(commit) || strings.Contains(commit, "..")) {
		return fmt.Errorf("commit_hash %q: want a commit hash", commit)
	}
	return nil
}

type cloneKey struct{ repo, commit string }

// clone is one fetch of a repository at a commit; done closes when dir or err is set.
type clone struct {
	done chan struct{}
	dir  string
	err  error
}

// checkout returns the folder of a shallow checkout of repo at commit, fetching it on first use.
// Callers asking for a key being fetched wait for that fetch. A failed fetch is forgotten, so a
// later call tries again; a waiter whose fetcher was cancelled tries again itself.
func (f *Fetcher) checkout(ctx context.Context, repo, commit string) (string, error) {
	key := cloneKey{repo, commit}
	for {
		f.mu.Lock()
		if f.clones == nil {
			f.clones = map[cloneKey]*clone{}
		}
		c, ok := f.clones[key]
		if !ok {
			c = &clone{done: make(chan struct{})}
			f.clones[key] = c
			f.mu.Unlock()
			c.dir, c.err = f.fetch(ctx, repo, commit)
			if c.err != nil {
				f.mu.Lock()
				delete(f.clones, key)
				f.mu.Unlock()
			}
			close(c.done)
			return c.dir, c.err
		}
		f.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return "", fmt.Errorf("fetch %s at %s: %w", repo, commitLabel(commit), ctx.Err())
		}
		if c.err == nil {
			return c.dir, nil
		}
		leaderGaveUp := errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)
		if !leaderGaveUp || ctx.Err() != nil {
			return "", c.err
		}
	}
}

// fetch makes a shallow checkout of one commit: init, fetch --depth 1, checkout FETCH_HEAD.
func (f *Fetcher) fetch(ctx context.Context, repo, commit string) (string, error) {
	if f.WorkDir == "" {
		return "", errors.New("code source: the fetcher has no work folder")
	}
	base := strings.TrimSuffix(orDefault(f.GitBaseURL, DefaultGitBaseURL), "/")
	sum := sha256.Sum256([]byte(repo + "@" + commit))
	dir := filepath.Join(f.WorkDir, "git", hex.EncodeToString(sum[:8]))
	if err := os.RemoveAll(dir); err != nil { // what a failed attempt left
		return "", fmt.Errorf("fetch %s: %w", repo, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("fetch %s: %w", repo, err)
	}
	env, cleanup, err := f.gitEnv(base)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", repo, err)
	}
	defer cleanup()

	want := orDefault(commit, "HEAD")
	steps := [][]string{
		{"init", "--quiet"},
		{"fetch", "--quiet", "--depth", "1", "--no-tags", base + "/" + repo + ".git", want},
		{"checkout", "--quiet", "--detach", "FETCH_HEAD"},
	}
	for _, args := range steps {
		if err := f.git(ctx, dir, env, args...); err != nil {
			hint := ""
			if args[0] == "fetch" && f.GitToken == "" && f.GitSSHKey == "" {
				hint = " (the job has no git_token_location; a private repository needs one)"
			}
			return "", fmt.Errorf("fetch %s at %s%s: %w", repo, commitLabel(commit), hint, err)
		}
	}
	return dir, nil
}

// git runs one git command in dir. Its error carries git's own message, scrubbed of credentials.
func (f *Fetcher) git(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, orDefault(f.gitPath, "git"), args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("git %s: %w", args[0], ctx.Err())
	}
	msg := strings.TrimSpace(f.scrub(out.String()))
	if len(msg) > 2000 {
		msg = "…" + msg[len(msg)-2000:]
	}
	if msg == "" {
		return fmt.Errorf("git %s: %w", args[0], err)
	}
	return fmt.Errorf("git %s: %s: %w", args[0], msg, err)
}

// gitEnv builds git's environment: the process's own without any GIT_* variable (so nothing
// around the engine redirects or reconfigures git), no system or global config, no prompts, and
// the credentials. It returns a cleanup that removes the ssh key file.
func (f *Fetcher) gitEnv(base string) (env []string, cleanup func(), err error) {
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
	)
	var config [][2]string
	if f.GitToken != "" {
		// GitHub takes an installation token as HTTP basic auth with the user x-access-token;
		// scoping the header to the server's origin keeps it from being sent anywhere else.
		// This is how actions/checkout passes its token (src/git-auth-helper.ts).
		u, err := url.Parse(base)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, nil, errors.New("git base URL is not an absolute URL")
		}
		origin := u.Scheme + "://" + u.Host + "/"
		config = append(config, [2]string{"http." + origin + ".extraHeader", "Authorization: Basic " + f.basicCredential()})
	}
	for i, kv := range config {
		n := strconv.Itoa(i)
		env = append(env, "GIT_CONFIG_KEY_"+n+"="+kv[0], "GIT_CONFIG_VALUE_"+n+"="+kv[1])
	}
	env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(len(config)))

	cleanup = func() {}
	if f.GitSSHKey != "" {
		keyFile, err := writeSSHKey(f.WorkDir, f.GitSSHKey)
		if err != nil {
			return nil, nil, err
		}
		cleanup = func() { _ = os.Remove(keyFile) }
		env = append(env, "GIT_SSH_COMMAND=ssh -i "+shellQuote(keyFile)+
			" -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new")
	}
	return env, cleanup, nil
}

func (f *Fetcher) basicCredential() string {
	return base64.StdEncoding.EncodeToString([]byte("x-access-token:" + f.GitToken))
}

// writeSSHKey writes the key to a new 0600 file in dir. OpenSSH refuses a key file without a
// final newline, so one is added.
func writeSSHKey(dir, key string) (string, error) {
	file, err := os.CreateTemp(dir, "ssh-key-*") // created 0600
	if err != nil {
		return "", fmt.Errorf("write ssh key: %w", err)
	}
	_, err = file.WriteString(strings.TrimSpace(key) + "\n")
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(file.Name())
		return "", fmt.Errorf("write ssh key: %w", err)
	}
	return file.Name(), nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// scrub removes every form of the credentials git could echo back.
func (f *Fetcher) scrub(s string) string {
	var secrets []string
	if f.GitToken != "" {
		secrets = append(secrets, f.basicCredential(), "x-access-token:"+f.GitToken, f.GitToken, url.QueryEscape(f.GitToken))
	}
	for _, line := range strings.Split(f.GitSSHKey, "\n") {
		if line = strings.TrimSpace(line); len(line) >= 8 && !strings.HasPrefix(line, "-----") {
			secrets = append(secrets, line)
		}
	}
	for _, secret := range secrets {
		s = strings.ReplaceAll(s, secret, "***")
	}
	return s
}
