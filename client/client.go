package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// DefaultAddress is the address [New] uses when [Config.Address] is empty:
// the server's default listen address.
const DefaultAddress = "127.0.0.1:50051"

// ErrNoEntries is returned by [Client.Publish] when it is given no entries.
// The server refuses an empty batch, so the client does not send one.
var ErrNoEntries = errors.New("client: publish: no entries")

// Config configures a [Client]. The zero value is ready to use: it reaches a
// server on [DefaultAddress] in plaintext.
type Config struct {
	// Address of the server as host:port, for example "127.0.0.1:50051".
	// Any target that grpc.NewClient accepts also works, for example
	// "dns:///pxperf.internal:50051", or "passthrough:///bufnet" with a
	// custom dialer in DialOptions. Empty means [DefaultAddress]. A bare
	// host without a port is refused rather than silently dialled on 443.
	Address string

	// Addresses, set instead of Address, are the host:port of several
	// nodes of one pxperf cluster (see README's Beyond one machine), which
	// serve the same entries under the same ids. The client uses the first
	// that answers and moves to another when it stops answering; a
	// [Client.Watch] then resumes on it where it was. With TLS, every node's
	// certificate must name the host dialled, or TLS.ServerName.
	Addresses []string

	// TLS, when set, secures the connection with TLS using this config
	// (cloned: later changes to it have no effect). Set RootCAs for a
	// server whose certificate a private CA signed, ServerName when
	// Address does not name the host in the certificate, and Certificates
	// for a server that asks for a client certificate (mutual TLS). Nil
	// (the zero value) means plaintext, which suits the server's loopback
	// default.
	TLS *tls.Config

	// Token, when set, is sent as the metadata "authorization: bearer
	// <token>" on every call, for a server with token auth on (pxperf serve
	// --tokens). It is a secret: [New] refuses to send it in clear text to
	// anything but a loopback address ("localhost", 127.0.0.0/8, ::1, or a
	// unix socket) unless TLS is set or AllowTokenWithoutTLS is true. Empty
	// (the zero value) sends no token.
	Token string

	// AllowTokenWithoutTLS lets Token be sent with TLS nil to an address
	// that is not loopback: for a connection secured by other means
	// (transport credentials in DialOptions, a tunnel), or an in-memory one
	// in tests. Over a plaintext network connection the token then travels
	// in clear text. The zero value refuses.
	AllowTokenWithoutTLS bool

	// DialOptions are applied after the client's own options, so they win
	// where both set the same thing: tests pass an in-memory dialer here
	// with grpc.WithContextDialer; grpc.WithTransportCredentials here
	// replaces the transport [Config.TLS] chose. Without TLS or a transport
	// credentials option the client uses insecure (plaintext) credentials.
	// grpc.WithCredentialsBundle cannot be used: grpc refuses it together
	// with the client's own transport credentials. Nil (the zero value)
	// adds nothing; a nil element is refused.
	DialOptions []grpc.DialOption
}

// Client is a connection to a pxperf server with helpers for the common
// RPCs. It is safe for concurrent use. The caller must call [Client.Close]
// when done with it.
type Client struct {
	conn    *grpc.ClientConn
	service pxperfv1.PerformanceServiceClient
}

// New returns a Client for the server at cfg.Address. It validates cfg and
// does not connect: the connection is made on the first call, and remade
// as needed, so New succeeds while the server is down.
func New(cfg Config) (*Client, error) {
	address := cfg.Address
	if address == "" {
		address = DefaultAddress
	}
	targets := []string{address}
	opts := make([]grpc.DialOption, 0, 3+len(cfg.DialOptions))
	if len(cfg.Addresses) > 0 {
		if cfg.Address != "" {
			return nil, errors.New("client: set Config.Address or Config.Addresses, not both")
		}
		r, err := clusterResolver(cfg.Addresses)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithResolvers(r))
		targets, address = cfg.Addresses, r.Scheme()+":///cluster"
	}
	for _, a := range targets {
		if err := validateAddress(a); err != nil {
			return nil, err
		}
	}
	// First, so that a transport credentials option in cfg.DialOptions
	// replaces it: grpc applies options in order.
	if cfg.TLS != nil {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg.TLS)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if cfg.Token != "" {
		creds, err := newTokenCredentials(cfg, targets)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithPerRPCCredentials(creds))
	}
	for i, o := range cfg.DialOptions {
		if o == nil {
			return nil, fmt.Errorf("client: Config.DialOptions[%d] is nil", i)
		}
		opts = append(opts, o)
	}
	conn, err := grpc.NewClient(address, opts...)
	if err != nil {
		return nil, fmt.Errorf("client: Config.Address %q: %w", address, err)
	}
	return &Client{conn: conn, service: pxperfv1.NewPerformanceServiceClient(conn)}, nil
}

// clusterResolver resolves to addresses, the host:port of nodes of one
// cluster, in order: grpc's default pick_first policy uses the first that
// answers, and another when it fails. It is the client's own (not
// registered globally), under a scheme no target of the process uses.
func clusterResolver(addresses []string) (*manual.Resolver, error) {
	state := resolver.State{Addresses: make([]resolver.Address, len(addresses))}
	for i, a := range addresses {
		if strings.Contains(a, "://") {
			return nil, fmt.Errorf("client: Config.Addresses[%d] %q: want host:port", i, a)
		}
		state.Addresses[i] = resolver.Address{Addr: a}
	}
	r := manual.NewBuilderWithScheme("pxperf-cluster")
	r.InitialState(state)
	return r, nil
}

// validateAddress refuses an address without a scheme that is not
// host:port. The dns resolver would otherwise dial a bare host on port 443,
// which is never where a pxperf server listens. Addresses with a scheme are
// left to grpc.NewClient.
func validateAddress(address string) error {
	if strings.Contains(address, "://") {
		return nil
	}
	if _, port, err := net.SplitHostPort(address); err != nil || port == "" {
		return fmt.Errorf("client: Config.Address %q: want host:port, for example %q", address, DefaultAddress)
	}
	return nil
}

// Close closes the connection. Calls in flight fail with codes.Canceled and
// streams end. Calls after Close fail; so does a second Close.
func (c *Client) Close() error {
	return c.conn.Close()
}

// Service returns the generated stub on the client's connection, for the
// RPCs that have no helper here (PublishStream, GetStats, WatchStats,
// Optimize, ListResources, CloseResource, ListLogFiles, ReadArchive). It
// stays valid until [Client.Close].
func (c *Client) Service() pxperfv1.PerformanceServiceClient {
	return c.service
}

// Conn returns the client's connection, with its TLS and token, for the
// other services the server serves, such as grpc.health.v1.Health. It
// stays valid until [Client.Close].
func (c *Client) Conn() grpc.ClientConnInterface {
	return c.conn
}

// Publish sends entries in one Publish call and returns one result per entry,
// in the same order: results[i].GetId() is the id given to entries[i], or
// results[i].GetRejection() says why the server refused it. A rejected entry
// does not make Publish fail; an error means the call as a whole failed.
// With no entries it returns [ErrNoEntries] without calling the server.
func (c *Client) Publish(ctx context.Context, entries ...*pxperfv1.Entry) ([]*pxperfv1.PublishResult, error) {
	return c.PublishBatch(ctx, "", entries...)
}

// PublishBatch is [Client.Publish] of a batch named batchID (see
// PublishRequest.batch_id): in cluster mode, calling it again with the
// same name and entries, after a failure or a timeout, stores nothing
// twice and returns the same ids. An empty batchID names none.
func (c *Client) PublishBatch(ctx context.Context, batchID string, entries ...*pxperfv1.Entry) ([]*pxperfv1.PublishResult, error) {
	if len(entries) == 0 {
		return nil, ErrNoEntries
	}
	resp, err := c.service.Publish(ctx, &pxperfv1.PublishRequest{Entries: entries, BatchId: batchID})
	if err != nil {
		return nil, err
	}
	results := resp.GetResults()
	// Callers match results to entries by index: a short or long answer
	// would pin ids on the wrong entries.
	if len(results) != len(entries) {
		return nil, fmt.Errorf("client: publish: server returned %d results for %d entries", len(results), len(entries))
	}
	return results, nil
}

// Subscribe returns a sequence over the messages of a Subscribe stream, for
// use in a range loop. A nil req means the zero request: every entry, from
// the next one published.
//
// The stream is opened when the loop starts, and each loop opens a new one.
// Each message is yielded with a nil error. When the stream fails, the loop
// gets one (nil, err), err carrying the gRPC status, and then ends; when the
// server ends the stream cleanly, the loop just ends. To resume after an
// error, subscribe again with start_id set to the next_id of the last message
// seen, or use [Client.Watch], which does that itself.
//
// The stream is released when the loop ends, including by break or return
// from its body, or when ctx is cancelled (the loop then gets a
// codes.Canceled or codes.DeadlineExceeded error). A subscription with
// nobody reading it holds nothing once its loop has ended.
func (c *Client) Subscribe(ctx context.Context, req *pxperfv1.SubscribeRequest) iter.Seq2[*pxperfv1.SubscribeResponse, error] {
	if req == nil {
		req = &pxperfv1.SubscribeRequest{}
	}
	return func(yield func(*pxperfv1.SubscribeResponse, error) bool) {
		// Cancelling the stream's context is what releases it in grpc:
		// without this, a loop left by break would leave the stream, its
		// goroutine and its server-side resources behind until ctx ends.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.service.Subscribe(ctx, req)
		if err != nil {
			yield(nil, err)
			return
		}
		for {
			msg, err := stream.Recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(msg, nil) {
				return
			}
		}
	}
}

// ListEntries returns a window of the filtered view of the server's entries,
// with the view's total size. A nil req means the zero request: the newest 50
// entries.
func (c *Client) ListEntries(ctx context.Context, req *pxperfv1.ListEntriesRequest) (*pxperfv1.ListEntriesResponse, error) {
	if req == nil {
		req = &pxperfv1.ListEntriesRequest{}
	}
	return c.service.ListEntries(ctx, req)
}

// GetEntry returns the entry with the given id, whole, with its bodies. An id
// the server does not keep is an error with codes.NotFound.
func (c *Client) GetEntry(ctx context.Context, id uint64) (*pxperfv1.Entry, error) {
	resp, err := c.service.GetEntry(ctx, &pxperfv1.GetEntryRequest{Id: id})
	if err != nil {
		return nil, err
	}
	return resp.GetEntry(), nil
}

// GetConfig returns the server's effective config, every field set.
func (c *Client) GetConfig(ctx context.Context) (*pxperfv1.Config, error) {
	resp, err := c.service.GetConfig(ctx, &pxperfv1.GetConfigRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetConfig(), nil
}
