package proxy

import (
	"net/http"
	"strconv"
)

// ReplayOfHeader is the request header by which a client that re-sends a
// recorded request (pxperf replay, package replay) asks the proxy to link
// the exchange to the entry it replays. Its value is that entry's id, in
// decimal. The proxy removes the header before anything else sees the
// request, so that it is neither forwarded nor recorded among the request
// headers, and records the id as the entry's replay_of; a value that is
// not an id from 1 is removed and ignored. On a CONNECT it links the
// tunnel's entry, since the request inside the tunnel is out of sight.
const ReplayOfHeader = "Pxperf-Replay-Of"

// takeReplayOf removes [ReplayOfHeader] from h and returns the entry id it
// gives, or 0 when it gives none.
func takeReplayOf(h http.Header) uint64 {
	v := h.Get(ReplayOfHeader)
	h.Del(ReplayOfHeader)
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0
	}
	return id
}
