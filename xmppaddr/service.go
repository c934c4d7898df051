package xmppaddr

import "fmt"

// Service is what a peer wants to reach at a domain. It decides which
// reference identities apply: an SRV-ID is bound to its service, so a
// certificate for _xmpp-server.example.org proves nothing to a client.
type Service string

// The services xmppcert checks certificates for.
const (
	// ServiceClient is client-to-server XMPP (RFC 6120, SRV _xmpp-client).
	ServiceClient Service = "xmpp-client"
	// ServiceServer is server-to-server XMPP (RFC 6120, SRV _xmpp-server).
	ServiceServer Service = "xmpp-server"
	// ServiceHTTPS is the HTTPS side of an XMPP deployment (HTTP upload,
	// BOSH, websocket), which only ever uses DNS-IDs.
	ServiceHTTPS Service = "https"
)

// Services lists every Service in the order xmppcert reports them.
var Services = []Service{ServiceClient, ServiceServer, ServiceHTTPS}

// ParseService turns a command-line or configuration value into a Service.
func ParseService(s string) (Service, error) {
	for _, svc := range Services {
		if string(svc) == s {
			return svc, nil
		}
	}
	return "", fmt.Errorf("unknown service %q: use xmpp-client, xmpp-server or https", s)
}

// srvLabel is the SRV-ID service label for XMPP services, empty for HTTPS.
func (s Service) srvLabel() string {
	if s == ServiceClient || s == ServiceServer {
		return "_" + string(s)
	}
	return ""
}
