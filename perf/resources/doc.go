// Package resources is pxperf's resource cleaner: a registry of live
// resources (subscriber and publisher streams, client connections,
// background workers, open archive files) with their type, owner, creation
// and last-activity times and traffic counters.
//
// The owner of a resource registers it with [Registry.Track], which returns
// a [Handle], and gives the registry an end func that ends the resource
// (cancels a stream's context, closes a connection or a file). The end func
// runs exactly once, whichever comes first of:
//
//   - the owner's [Handle.Release], when it is done with the resource;
//   - [Registry.Close], which ends one resource by id (the CloseResource RPC);
//   - [Registry.Sweep], which ends resources idle past [Config.IdleTimeout];
//   - [Registry.CloseAll], on shutdown.
//
// Every end is counted as a success or a failure (an error or a panic from
// the end func), for the health score. [Config.Limits] caps how many
// resources of each type are tracked at once; [Registry.Track] refuses more
// with an error wrapping [ErrLimit].
//
// # Weak tracking
//
// The registry holds a resource's listing information and a weak pointer to
// its [Handle], never the Handle itself: the Handle, and the end func it
// holds, stay reachable only from the owner. An owner that drops its Handle
// without calling Release leaks it; once the garbage collector has freed the
// Handle, its entry leaves the registry and is counted in [Stats].Leaked
// (not in Failed), and its end func never runs. This is a safety net for
// bugs, not a way to end resources: owners must call Release, typically in a
// defer. The end func is held by the Handle alone, so what it captures is
// kept alive by the owner, not by the registry; it may capture the owner
// and the Handle itself, as a cycle through the Handle does not stop its
// collection.
//
// The registry starts no goroutines: the service calls [Registry.Sweep] on
// its own ticker.
package resources
