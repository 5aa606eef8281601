// Command serve serves a directory over HTTP on loopback for the
// side-by-side benchmarks; it prints its URL and stops after -for.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	dir := flag.String("dir", ".", "directory to serve")
	dur := flag.Duration("for", 10*time.Minute, "stop after this long")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("http://%s\n", ln.Addr())
	go func() { time.Sleep(*dur); os.Exit(0) }()
	http.Serve(ln, http.FileServer(http.Dir(*dir)))
}
