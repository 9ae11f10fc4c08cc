// Package hub is pxperf's subscription engine: it decides, for every open
// subscription, what to send and when, so that the gRPC edge only encodes
// and sends (as etcd's v3rpc sends what mvcc's watchable store decides).
//
// A subscription is a cursor into the [store.Store] (the next id it needs),
// not a queue: publishing never waits on it, and its memory does not grow
// with its lag. [Hub.Subscribe] places the cursor (from now, from an id, or
// at the last N matching entries, which a snapshot_end marker then
// follows); [Subscription.Run] reads from the store from the cursor on,
// builds batches of the store's cached encodings (or of entries with their
// bodies), paces them, and hands each message to the caller's [SendFunc] on
// a goroutine of its own, so that a Send blocked by a client that does not
// read can be timed out ([ErrStuck]). Ids that left memory before the
// cursor got to them are read back from the [Archive], or reported as a gap;
// completions of entries already passed are sent as updates.
//
// When a message goes out: as soon as the batch holds
// [Settings].BatchSize entries or the byte bound (see [Config].BatchBytes),
// or its first entry has waited BatchTimeout, but never sooner than the
// throttle's interval after the previous message. The interval is at least
// the throttle's floor (the hard cap) and grows in adaptive and burst
// modes, which react to the load the caller reports with [Hub.ObserveAt]. A
// batch holding an entry at or above the priority threshold goes out at
// once, keeping only the hard cap. With nothing to send, a progress
// heartbeat goes out every Heartbeat.
//
// Every error that ends Run is an [*EndError] carrying the id to resume
// from.
package hub
