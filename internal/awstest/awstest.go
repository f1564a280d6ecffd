// Package awstest starts the AWS API emulator (moto_server) for tests, one per test binary, on a
// free loopback port, and builds aws-sdk-go-v2 configurations that point at it. A missing
// moto_server fails the test with a message saying how to get it: it never skips.
package awstest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the region every test client uses.
const Region = "us-east-1"

var (
	once     sync.Once
	endpoint string
	startErr error
	proc     *exec.Cmd
)

// Endpoint returns the URL of this test binary's moto_server, starting it on first use. Call
// Stop from TestMain (or rely on the process exit: the server is started with a parent-death
// signal, so it never outlives the test binary).
func Endpoint(t testing.TB) string {
	t.Helper()
	once.Do(func() { endpoint, startErr = start() })
	if startErr != nil {
		t.Fatalf("moto_server: %v", startErr)
	}
	return endpoint
}

// Stop ends the moto_server this binary started, if any.
func Stop() {
	if proc != nil && proc.Process != nil {
		_ = proc.Process.Kill()
		_, _ = proc.Process.Wait()
	}
}

// Main runs the tests and stops the emulator afterwards: func TestMain(m *testing.M) { awstest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

func start() (string, error) {
	bin, args := "", []string{}
	if p, err := exec.LookPath("moto_server"); err == nil {
		bin = p
	} else if py, err := exec.LookPath("python3"); err == nil && exec.Command(py, "-c", "import moto.server").Run() == nil {
		bin, args = py, []string{"-m", "moto.server"}
	} else {
		return "", fmt.Errorf("moto_server not found on PATH and python3 -m moto.server is not importable; " +
			"install it with: pip install 'moto[server]'")
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	args = append(args, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd := exec.Command(bin, args...)
	logf, err := os.CreateTemp("", "moto-*.log")
	if err != nil {
		return "", err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// moto writes notification times in local time without a zone; in UTC they read right.
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	proc = cmd
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return url, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	Stop()
	return "", fmt.Errorf("moto_server did not answer on %s within 30s (log: %s)", url, filepath.Clean(logf.Name()))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Config returns an aws.Config for the emulator: static test credentials, Region, and the
// emulator as the base endpoint of every service.
func Config(t testing.TB) aws.Config {
	t.Helper()
	ep := Endpoint(t)
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")),
		config.WithBaseEndpoint(ep),
	)
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	return cfg
}
