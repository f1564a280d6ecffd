package assembly_test

import (
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/assembly"
)

// The HTTP server cuts off a client that holds a connection without finishing its request (a
// slow-headers or slow-body client), and one that holds an idle connection: without read, write
// and idle timeouts, such clients are held for ever, and enough of them stop the server.
func TestTheServerCutsOffSlowClients(t *testing.T) {
	t.Parallel()
	sys, err := assembly.New(embeddedBackend(t), assembly.Options{ScratchDir: filepath.Join(t.TempDir(), "work")})
	if err != nil {
		t.Fatal(err)
	}
	srv := sys.HTTPServer()
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("timeouts: header %s, read %s, write %s, idle %s; want each set",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half a request line, then nothing.
	if _, err := io.WriteString(conn, "POST /webhook HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(srv.ReadHeaderTimeout + 20*time.Second))
	_, err = io.ReadAll(conn) // returns when the server closes the connection
	if took := time.Since(start); err != nil || took > srv.ReadHeaderTimeout+10*time.Second {
		t.Fatalf("a client that never finished its headers was held %s (%v); want it cut off after %s", took, err, srv.ReadHeaderTimeout)
	}
}
