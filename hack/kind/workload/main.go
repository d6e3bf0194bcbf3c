// Command workload is the one static binary behind the tiny images that the
// kind scripts make without a registry: the engine check's image, the pod
// sandbox (pause) image of the node, the gang members' workload and the
// network check's server and client.
//
//	workload                  sleep until SIGTERM or SIGINT, then exit 0 (pause)
//	workload -seconds 30      exit 0 after 30 seconds (or earlier on a signal)
//	workload -exit 3          exit 3 at once (a member that fails on request)
//	workload -serve :8080     answer HTTP GETs with the pod's hostname until a signal
//	workload -get URL         GET URL, print the answer; exit 1 when it fails
//	workload -lookup NAME     resolve NAME with the pod's DNS; exit 1 when it fails
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	seconds := flag.Float64("seconds", -1, "exit 0 after this many seconds; negative: run until a signal")
	exitCode := flag.Int("exit", -1, "exit at once with this code; negative: do not")
	serve := flag.String("serve", "", "serve HTTP on this address until a signal")
	get := flag.String("get", "", "GET this URL and exit")
	lookup := flag.String("lookup", "", "resolve this name and exit")
	timeout := flag.Duration("timeout", 10*time.Second, "time limit of -get and -lookup")
	flag.Parse()

	switch {
	case *exitCode >= 0:
		fmt.Printf("workload: exiting with %d as asked\n", *exitCode)
		os.Exit(*exitCode)
	case *get != "":
		os.Exit(fetch(*get, *timeout))
	case *lookup != "":
		os.Exit(resolve(*lookup, *timeout))
	case *serve != "":
		go serveHTTP(*serve)
	}
	waitForSignal(*seconds)
}

// waitForSignal returns on SIGTERM or SIGINT, or after seconds when not negative.
func waitForSignal(seconds float64) {
	// As PID 1 of a container the kernel delivers only signals with a
	// handler, so without this a pod's sandbox would ignore SIGTERM.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	var after <-chan time.Time
	if seconds >= 0 {
		after = time.After(time.Duration(seconds * float64(time.Second)))
	}
	select {
	case s := <-signals:
		fmt.Printf("workload: %v, exiting\n", s)
	case <-after:
		fmt.Printf("workload: %gs passed, exiting\n", seconds)
	}
}

func serveHTTP(addr string) {
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintf(os.Stderr, "workload: serving %s: %v\n", addr, err)
		os.Exit(1)
	}
}

func fetch(url string, timeout time.Duration) int {
	client := http.Client{Timeout: timeout}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "workload: GET %s: %v\n", url, err)
		return 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "workload: GET %s: status %d, %v\n", url, resp.StatusCode, err)
		return 1
	}
	fmt.Printf("workload: GET %s: %s", url, body)
	return 0
}

func resolve(name string, timeout time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "workload: lookup %s: %v\n", name, err)
		return 1
	}
	fmt.Printf("workload: %s is %v\n", name, addrs)
	return 0
}
