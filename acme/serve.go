package acme

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/xmppcert/xmppcert/xmppaddr"
)

// ServeEndpoint is an endpoint that serves a lineage's certificate: after
// every deploy it is asked what it presents, and that is compared with
// the version just deployed (lifecycle.Engine.CheckServed).
type ServeEndpoint struct {
	// Addr is HOST:PORT.
	Addr string `json:"addr"`
	// Service is the stream spoken there: xmpp-client or xmpp-server.
	Service xmppaddr.Service `json:"service"`
	// DirectTLS is XEP-0368 direct TLS instead of STARTTLS.
	DirectTLS bool `json:"direct_tls,omitempty"`
}

// String is the endpoint as ParseServeEndpoint reads it:
// "xmpps-server:xmpp.example.org:5270".
func (e ServeEndpoint) String() string {
	return e.scheme() + ":" + e.Addr
}

// scheme is the SRV service name of the endpoint's kind (XEP-0368).
func (e ServeEndpoint) scheme() string {
	s := string(e.Service)
	if e.DirectTLS {
		s = strings.Replace(s, "xmpp-", "xmpps-", 1)
	}
	return s
}

// serveSchemes are the endpoint kinds by their SRV service names: the
// stream's service and whether TLS comes first (XEP-0368).
var serveSchemes = map[string]ServeEndpoint{
	"xmpp-client":  {Service: xmppaddr.ServiceClient},
	"xmpp-server":  {Service: xmppaddr.ServiceServer},
	"xmpps-client": {Service: xmppaddr.ServiceClient, DirectTLS: true},
	"xmpps-server": {Service: xmppaddr.ServiceServer, DirectTLS: true},
}

// ParseServeEndpoint reads [KIND:]HOST:PORT, where KIND is the SRV
// service name of the endpoint (xmpp-client, the default, xmpp-server,
// xmpps-client or xmpps-server for direct TLS) and PORT a number from 1
// to 65535; an IPv6 host is in brackets.
func ParseServeEndpoint(spec string) (ServeEndpoint, error) {
	e := serveSchemes["xmpp-client"]
	addr := spec
	if kind, rest, ok := strings.Cut(spec, ":"); ok {
		if k, known := serveSchemes[kind]; known {
			e, addr = k, rest
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || strings.ContainsAny(host, "/ \t") {
		return ServeEndpoint{}, fmt.Errorf("endpoint %q is not [KIND:]HOST:PORT (KIND xmpp-client, xmpp-server, xmpps-client or xmpps-server)", spec)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return ServeEndpoint{}, fmt.Errorf("endpoint %q: port %q is not a number from 1 to 65535", spec, port)
	}
	e.Addr = net.JoinHostPort(host, port)
	return e, nil
}
