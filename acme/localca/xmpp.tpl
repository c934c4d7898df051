{{- /*
  xmppcert's X.509 leaf template for step-ca (go.step.sm/crypto/x509util).
  For every DNS name the ACME order validated it adds the XMPP identities
  of RFC 6120 section 13.7.1.4: SRVName otherNames (RFC 4985, IA5String,
  hence "ia5:") for _xmpp-client and _xmpp-server, and an XmppAddr
  otherName (UTF8String, "utf8:"). Only validated names (.SANs) are used;
  anything else a CSR carries is dropped.

  Optional template data (provisioner "templateData"):
    xmppComponents: names that are components: no _xmpp-client SRV-ID
    xmppAnonymous:  names that are anonymous hosts: no _xmpp-server SRV-ID
    xmppAddrs:      name -> JID domain in U-labels, for internationalised
                    names (defaults to the DNS name)
*/ -}}
{
	"subject": {{ toJson .Subject }},
	"sans": [
{{- range $i, $san := .SANs }}
	{{- if $i }},{{ end }}
		{{ toJson $san }}
	{{- if and (eq $san.Type "dns") (not (hasPrefix "*." $san.Value)) }}
		{{- if not (has $san.Value $.xmppComponents) }},
		{"type": "1.3.6.1.5.5.7.8.7", "value": {{ toJson (print "ia5:_xmpp-client." $san.Value) }}}
		{{- end }}
		{{- if not (has $san.Value $.xmppAnonymous) }},
		{"type": "1.3.6.1.5.5.7.8.7", "value": {{ toJson (print "ia5:_xmpp-server." $san.Value) }}}
		{{- end }}
		{{- $jid := $san.Value }}
		{{- if $.xmppAddrs }}{{ $jid = get $.xmppAddrs $san.Value | default $san.Value }}{{ end }},
		{"type": "1.3.6.1.5.5.7.8.5", "value": {{ toJson (print "utf8:" $jid) }}}
	{{- end }}
{{- end }}
	],
{{- if typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}
	"keyUsage": ["keyEncipherment", "digitalSignature"],
{{- else }}
	"keyUsage": ["digitalSignature"],
{{- end }}
	"extKeyUsage": ["serverAuth", "clientAuth"]
}
