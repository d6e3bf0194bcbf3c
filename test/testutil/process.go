package testutil

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Process is a program a test runs, with its output in a log file.
type Process struct {
	Name string
	// Log receives the program's stdout and stderr.
	Log  string
	Cmd  *exec.Cmd
	done chan struct{}
}

// Start runs p.Cmd with its output in p.Log; the test's cleanup kills it
// and, if the test failed, shows the end of its log.
func (p *Process) Start(t testing.TB) {
	t.Helper()
	logFile, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	p.Cmd.Stdout, p.Cmd.Stderr = logFile, logFile
	p.done = make(chan struct{})
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			out, _ := os.ReadFile(p.Log)
			t.Logf("%s's log (last 80 lines):\n%s", p.Name, Tail(string(out), 80))
		}
	})
}

// Kill ends the program and waits until it has exited.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Done is closed when the program has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the program has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a free port on 127.0.0.1 below 32768, where the
// machine's ephemeral range (which clients' own ports come from) starts.
func FreePort(t testing.TB) string {
	t.Helper()
	base := 21000 + os.Getpid()%4000
	for i := 0; i < 6000; i++ {
		port := strconv.Itoa(21000 + (base-21000+i)%6000)
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port in 21000-26999")
	return ""
}
