package main

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// httpLimits bound what one client of the health and metrics listener can
// hold: without them a client that sends half a request, reads slowly or
// opens connections without end ties up goroutines and descriptors.
type httpLimits struct {
	ReadHeader, Read, Write, Idle time.Duration
	MaxConns                      int
}

// defaultHTTPLimits suit /healthz, /readyz and /metrics: tiny requests, a
// scrape answered in well under a second, a handful of scrapers and probes.
var defaultHTTPLimits = httpLimits{
	ReadHeader: 5 * time.Second,
	Read:       10 * time.Second,
	Write:      30 * time.Second,
	Idle:       60 * time.Second,
	MaxConns:   64,
}

// newHTTPServer is the server for serve's listener; wrap the listener with
// limitListener(ln, lim.MaxConns).
func newHTTPServer(h http.Handler, lim httpLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeader,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		MaxHeaderBytes:    16 << 10,
	}
}

// limitListener accepts at most n connections open at once; Accept waits
// for one to close. (golang.org/x/net/netutil.LimitListener, which this
// module does not depend on.)
func limitListener(l net.Listener, n int) net.Listener {
	if n <= 0 {
		return l
	}
	return &limitedListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitedListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitedListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitedConn{Conn: c, release: sync.OnceFunc(func() { <-l.sem })}, nil
}

// Close also wakes an Accept waiting for a free slot.
func (l *limitedListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
