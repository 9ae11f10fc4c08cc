package httpentry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

func TestErrorKind(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		want pxperfv1.ErrorKind
	}{
		{"refused", refused, pxperfv1.ErrorKind_ERROR_KIND_CONNECT},
		{"unreachable", fmt.Errorf("read: %w", syscall.EHOSTUNREACH), pxperfv1.ErrorKind_ERROR_KIND_CONNECT},
		{"no such host", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "nx.invalid", IsNotFound: true}}, pxperfv1.ErrorKind_ERROR_KIND_DNS},
		{"lookup timed out", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "timeout", IsTimeout: true}}, pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT},
		{"deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT},
		{"read timed out", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT},
		{"unknown authority", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, pxperfv1.ErrorKind_ERROR_KIND_TLS},
		{"not TLS", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, pxperfv1.ErrorKind_ERROR_KIND_TLS},
		{"alert", fmt.Errorf("remote error: %w", tls.AlertError(40)), pxperfv1.ErrorKind_ERROR_KIND_TLS},
		{"wrong host", x509.HostnameError{Host: "example.com"}, pxperfv1.ErrorKind_ERROR_KIND_TLS},
		{"other", errors.New("unexpected EOF"), pxperfv1.ErrorKind_ERROR_KIND_OTHER},
		{"cancelled", context.Canceled, pxperfv1.ErrorKind_ERROR_KIND_OTHER},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorKind(tc.err); got != tc.want {
				t.Errorf("ErrorKind(%v) = %v; want %v", tc.err, got, tc.want)
			}
		})
	}
}
