// Package natstest runs NATS servers with JetStream inside a test process,
// alone or as a cluster over loopback routes, for the tests and benchmarks
// of cluster mode.
package natstest

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Cluster is a set of NATS servers with JetStream, routed to each other.
type Cluster struct {
	tb      testing.TB
	name    string
	opts    []*natsserver.Options
	Servers []*natsserver.Server // nil where stopped
}

// Start runs n servers (1 for a single server, 3 or 5 for a cluster that
// keeps replicated streams through the loss of one) on loopback, storing in
// temporary directories, and waits until JetStream answers. They stop
// when tb ends.
func Start(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, name: "pxperf-test", Servers: make([]*natsserver.Server, n)}
	// Cluster ports are chosen ahead, so that every server routes to all.
	clusterPorts := make([]int, n)
	for i := range clusterPorts {
		clusterPorts[i] = freePort(tb)
	}
	for i := range n {
		o := &natsserver.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       freePort(tb),
			JetStream:  true,
			StoreDir:   tb.TempDir(),
			NoLog:      true,
			NoSigs:     true,
		}
		if n > 1 {
			o.Cluster = natsserver.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: clusterPorts[i]}
			for j, p := range clusterPorts {
				if j != i {
					o.Routes = append(o.Routes, natsserver.RoutesFromStr("nats://127.0.0.1:"+strconv.Itoa(p))...)
				}
			}
		}
		c.opts = append(c.opts, o)
	}
	for i := range n {
		c.Restart(i)
	}
	tb.Cleanup(func() {
		for i := range c.Servers {
			c.Stop(i)
		}
	})
	c.WaitJetStream()
	return c
}

// URLs returns the client URLs of every server, running or not.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.opts))
	for i, o := range c.opts {
		urls[i] = fmt.Sprintf("nats://%s:%d", o.Host, o.Port)
	}
	return urls
}

// Stop shuts server i down; its storage stays for Restart.
func (c *Cluster) Stop(i int) {
	if s := c.Servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// Restart starts server i again, on the same ports and storage.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	s, err := natsserver.NewServer(c.opts[i].Clone())
	if err != nil {
		c.tb.Fatalf("nats server %d: %v", i+1, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.tb.Fatalf("nats server %d not ready in 10s", i+1)
	}
	c.Servers[i] = s
}

// WaitJetStream waits until JetStream takes a stream on the servers running:
// in a cluster, until its meta leader is elected.
func (c *Cluster) WaitJetStream() {
	c.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.jetStreamReady()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("JetStream not ready in 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) jetStreamReady() error {
	for i, s := range c.Servers {
		if s == nil {
			continue
		}
		if !s.JetStreamEnabled() {
			return fmt.Errorf("server %d: JetStream off", i+1)
		}
		if len(c.Servers) > 1 && !s.JetStreamIsClustered() {
			return fmt.Errorf("server %d: not clustered yet", i+1)
		}
	}
	nc, err := nats.Connect(c.URLs()[c.running()])
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return err
	}
	_, err = js.AccountInfo()
	return err
}

// running returns the index of a running server.
func (c *Cluster) running() int {
	for i, s := range c.Servers {
		if s != nil {
			return i
		}
	}
	c.tb.Fatal("no NATS server running")
	return -1
}

// freePort returns a loopback TCP port free at the time of the call.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
