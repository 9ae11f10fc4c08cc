package httpentry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"syscall"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// ErrorKind classifies err, the error of an HTTP client that reached, or
// failed to reach, a target directly: DNS, TIMEOUT (a deadline passed, a
// context's included), TLS, CONNECT (the connection was refused or could
// not be opened) or OTHER. Which errors count as an upstream proxy's, for
// a client that goes through one, is the caller's call.
func ErrorKind(err error) pxperfv1.ErrorKind {
	var (
		dnsErr  *net.DNSError
		netErr  net.Error
		opErr   *net.OpError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		verErr  *tls.CertificateVerificationError
		authErr x509.UnknownAuthorityError
		hostErr x509.HostnameError
		certErr x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &dnsErr) && !dnsErr.IsTimeout:
		return pxperfv1.ErrorKind_ERROR_KIND_DNS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT
	case errors.As(err, &recErr), errors.As(err, &alert), errors.As(err, &verErr),
		errors.As(err, &authErr), errors.As(err, &hostErr), errors.As(err, &certErr):
		return pxperfv1.ErrorKind_ERROR_KIND_TLS
	case errors.As(err, &opErr) && opErr.Op == "dial",
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return pxperfv1.ErrorKind_ERROR_KIND_CONNECT
	}
	return pxperfv1.ErrorKind_ERROR_KIND_OTHER
}
