package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func startTestHTTP(t *testing.T, lim httpLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	srv := newHTTPServer(mux, lim)
	go srv.Serve(limitListener(ln, lim.MaxConns))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestHTTPServerTimeouts: a client that sends half a request, or stays idle,
// is disconnected instead of holding its connection for ever.
func TestHTTPServerTimeouts(t *testing.T) {
	if s := newHTTPServer(http.NotFoundHandler(), defaultHTTPLimits); s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Fatalf("default server lacks a limit: %+v", s)
	}
	lim := httpLimits{ReadHeader: 200 * time.Millisecond, Read: 300 * time.Millisecond, Write: time.Second, Idle: 300 * time.Millisecond, MaxConns: 4}
	addr := startTestHTTP(t, lim)
	cases := []struct {
		name string
		send string
	}{
		{"half a request line", "GET /heal"},
		{"headers never finished", "GET /healthz HTTP/1.1\r\nHost: x\r\n"},
		{"idle after a request", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			// Read whatever comes (a response, or nothing); the server must
			// then close the connection well before our own deadline.
			_, err = io.Copy(io.Discard, bufio.NewReader(c))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("server kept a stalled connection open")
			}
		})
	}
}

// TestHTTPConnectionLimit: connections beyond the cap wait until one closes.
func TestHTTPConnectionLimit(t *testing.T) {
	lim := defaultHTTPLimits
	lim.MaxConns = 2
	addr := startTestHTTP(t, lim)
	var held []net.Conn
	for i := 0; i < lim.MaxConns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	client := &http.Client{Timeout: 500 * time.Millisecond}
	if resp, err := client.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("request served beyond the connection limit")
	}
	held[0].Close()
	client.Timeout = 10 * time.Second
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("request after a connection closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
