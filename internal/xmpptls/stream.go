package xmpptls

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
)

// Bounds on what a parsed header or feature set keeps, whatever the
// server sends within the byte limits.
const (
	// MaxFeatures is the most stream features kept; further ones are
	// counted in Features.Dropped.
	MaxFeatures = 64
	// MaxMechanisms is the most SASL mechanisms kept.
	MaxMechanisms = 32
	// maxName is the most bytes kept of a mechanism name or a header
	// attribute.
	maxName = 256
)

// StreamHeader is what the server's opening stream header said.
type StreamHeader struct {
	// Namespace is the default namespace (jabber:client or
	// jabber:server); empty when the server declared none.
	Namespace string
	// DialbackNS is true when the header declares
	// xmlns:db='jabber:server:dialback', which is how servers that
	// predate the dialback stream feature say they speak dialback
	// (XEP-0220 §2.1).
	DialbackNS bool
	// From, To, ID, Version and Lang are the header's attributes, each
	// cut at 256 bytes; empty when absent.
	From, To, ID, Version, Lang string
}

// Features is one <stream:features> element read as a set: the order
// and any whitespace between features do not matter.
type Features struct {
	// Names are the features offered, by element name, in the order
	// sent (at most MaxFeatures).
	Names []xml.Name
	// Dropped counts the features beyond MaxFeatures.
	Dropped int
	// StartTLS is true when <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>
	// is offered, StartTLSRequired when it carries <required/>.
	StartTLS, StartTLSRequired bool
	// Mechanisms are the SASL mechanisms offered, in the order sent (at
	// most MaxMechanisms), as the server spelled them.
	Mechanisms []string
	// Dialback is true when <dialback xmlns='urn:xmpp:features:dialback'/>
	// is offered, DialbackErrors when it carries <errors/> (XEP-0220 §2.1).
	Dialback, DialbackErrors bool
}

// Has says whether the feature with the given namespace and local name
// is offered.
func (f *Features) Has(space, local string) bool {
	return f != nil && slices.Contains(f.Names, xml.Name{Space: space, Local: local})
}

// HasMechanism says whether the SASL mechanism is offered (mechanism
// names are case-sensitive, RFC 4422 §3.1, but servers are lax: the
// comparison is not).
func (f *Features) HasMechanism(m string) bool {
	return f != nil && slices.ContainsFunc(f.Mechanisms, func(x string) bool { return strings.EqualFold(x, m) })
}

// stream reads the server's side of one stream.
type stream struct {
	dec   *xml.Decoder
	first bool // no token read yet: the XML declaration is allowed
}

func newStream(r io.Reader, limit int64) *stream {
	dec := xml.NewDecoder(bufio.NewReader(&limitedReader{r: r, n: limit}))
	dec.Strict = true
	dec.Entity = nil        // only XML's five predefined entities
	dec.CharsetReader = nil // UTF-8 only, as RFC 6120 §11.6 wants
	return &stream{dec: dec, first: true}
}

// token returns the next token, refusing what RFC 6120 §11.1 forbids in
// a stream: DTDs (and so entity declarations), comments, and processing
// instructions other than the XML declaration.
func (s *stream) token(stage string) (xml.Token, error) {
	for {
		tok, err := s.dec.Token()
		first := s.first
		s.first = false
		if err != nil {
			return nil, readError(stage, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			if strings.HasPrefix(strings.ToUpper(string(t)), "DOCTYPE") {
				return nil, &ProtocolError{stage, "the server sent a <!DOCTYPE>, which XMPP forbids"}
			}
			return nil, &ProtocolError{stage, "the server sent an XML directive, which XMPP forbids"}
		case xml.Comment:
			return nil, &ProtocolError{stage, "the server sent an XML comment, which XMPP forbids"}
		case xml.ProcInst:
			if first && t.Target == "xml" {
				continue
			}
			return nil, &ProtocolError{stage, fmt.Sprintf("the server sent the processing instruction <?%.40s?>, which XMPP forbids", t.Target)}
		}
		return tok, nil
	}
}

// readError classifies an error from the decoder: the reader's own
// errors (size, time, network) pass through; everything else is the
// server not speaking XMPP.
func readError(stage string, err error) error {
	var syn *xml.SyntaxError
	var ne net.Error
	switch {
	case errors.Is(err, ErrTooLarge):
		return fmt.Errorf("%w (while reading the %s)", err, stage)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("xmpptls: no answer in time while reading the %s: %w", stage, err)
	case errors.As(err, &ne):
		return fmt.Errorf("xmpptls: reading the %s: %w", stage, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &syn) && syn.Msg == "unexpected EOF":
		return &ProtocolError{stage, "the server closed the connection"}
	case errors.As(err, &syn):
		return &ProtocolError{stage, "not XMPP: " + syn.Msg}
	}
	return &ProtocolError{stage, "not XMPP: " + strings.TrimPrefix(err.Error(), "xml: ")}
}

// skipSpace reports whether tok is whitespace between top-level elements
// (keepalives); other text there is a protocol error.
func skipSpace(stage string, tok xml.Token) (bool, error) {
	cd, ok := tok.(xml.CharData)
	if !ok {
		return false, nil
	}
	if len(strings.TrimSpace(string(cd))) != 0 {
		return false, &ProtocolError{stage, "text outside any element"}
	}
	return true, nil
}

func (s *stream) readHeader(stage string) (*StreamHeader, error) {
	for {
		tok, err := s.token(stage)
		if err != nil {
			return nil, err
		}
		if cd, ok := tok.(xml.CharData); ok {
			if text := strings.TrimSpace(string(cd)); text != "" {
				return nil, &ProtocolError{stage, fmt.Sprintf("not XMPP: the server sent %.40q", text)}
			}
			continue
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Space != NSStreams || se.Name.Local != "stream" {
			return nil, &ProtocolError{stage, "the server did not open an XMPP stream"}
		}
		h := &StreamHeader{}
		for _, a := range se.Attr {
			v := clip(a.Value, maxName)
			switch {
			case a.Name.Space == "" && a.Name.Local == "xmlns":
				h.Namespace = v
			case a.Name.Space == "xmlns" && a.Name.Local == "db":
				h.DialbackNS = a.Value == NSDialback
			case a.Name.Space == "" && a.Name.Local == "from":
				h.From = v
			case a.Name.Space == "" && a.Name.Local == "to":
				h.To = v
			case a.Name.Space == "" && a.Name.Local == "id":
				h.ID = v
			case a.Name.Space == "" && a.Name.Local == "version":
				h.Version = v
			case a.Name.Local == "lang" && (a.Name.Space == "xml" || a.Name.Space == "http://www.w3.org/XML/1998/namespace"):
				h.Lang = v
			}
		}
		return h, nil
	}
}

// next returns the next top-level element of the stream, turning stream
// errors and the end of the stream into errors.
func (s *stream) next(stage string) (xml.StartElement, error) {
	for {
		tok, err := s.token(stage)
		if err != nil {
			return xml.StartElement{}, err
		}
		if ok, err := skipSpace(stage, tok); ok || err != nil {
			if err != nil {
				return xml.StartElement{}, err
			}
			continue
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return xml.StartElement{}, &ProtocolError{stage, "the server closed the stream"}
		case xml.StartElement:
			if t.Name.Space == NSStreams && t.Name.Local == "error" {
				return xml.StartElement{}, s.readStreamError(stage)
			}
			return t, nil
		}
	}
}

// readFeatures reads <stream:features> as a set. Features are returned
// as far as read, also with an error.
func (s *stream) readFeatures(stage string) (*Features, error) {
	f := &Features{}
	se, err := s.next(stage)
	if err != nil {
		var pe *ProtocolError
		var streamErr *StreamError
		if !errors.As(err, &streamErr) && !errors.Is(err, ErrTooLarge) &&
			(errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &pe) && strings.HasPrefix(pe.Msg, "the server closed")) {
			err = fmt.Errorf("%w: %w", ErrNoFeatures, err)
		}
		return f, err
	}
	if se.Name.Space != NSStreams || se.Name.Local != "features" {
		return f, &ProtocolError{stage, fmt.Sprintf("expected <stream:features>, got <%.40s>", se.Name.Local)}
	}
	depth := 0
	var current, child xml.Name
	var text strings.Builder
	for {
		tok, err := s.token(stage)
		if err != nil {
			return f, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				current = t.Name
				if len(f.Names) < MaxFeatures {
					f.Names = append(f.Names, t.Name)
				} else {
					f.Dropped++
				}
				switch current {
				case xml.Name{Space: NSTLS, Local: "starttls"}:
					f.StartTLS = true
				case xml.Name{Space: NSDialbackFeature, Local: "dialback"}:
					f.Dialback = true
				}
			case 2:
				child = t.Name
				text.Reset()
				switch {
				case current.Space == NSTLS && current.Local == "starttls" && t.Name == xml.Name{Space: NSTLS, Local: "required"}:
					f.StartTLSRequired = true
				case current.Space == NSDialbackFeature && current.Local == "dialback" && t.Name == xml.Name{Space: NSDialbackFeature, Local: "errors"}:
					f.DialbackErrors = true
				}
			}
		case xml.CharData:
			if depth == 2 && text.Len() < maxName {
				text.Write(t[:min(len(t), maxName-text.Len())])
			}
		case xml.EndElement:
			if depth == 0 {
				return f, nil
			}
			if depth == 2 && current == (xml.Name{Space: NSSASL, Local: "mechanisms"}) && child == (xml.Name{Space: NSSASL, Local: "mechanism"}) {
				if m := strings.TrimSpace(text.String()); m != "" && len(f.Mechanisms) < MaxMechanisms {
					f.Mechanisms = append(f.Mechanisms, m)
				}
			}
			depth--
		}
	}
}

func (s *stream) readProceed() error {
	const stage = "answer to <starttls/>"
	se, err := s.next(stage)
	if err != nil {
		return err
	}
	switch {
	case se.Name.Space == NSTLS && se.Name.Local == "proceed":
		return nil
	case se.Name.Space == NSTLS && se.Name.Local == "failure":
		return ErrStartTLSFailure
	}
	return &ProtocolError{stage, fmt.Sprintf("expected <proceed/> or <failure/>, got <%.40s>", se.Name.Local)}
}

// readSASL reads the answer to <auth/> or <response/>: a result, or
// (challenge true) a challenge, whose content is skipped.
func (s *stream) readSASL(stage string) (*SASLResult, bool, error) {
	se, err := s.next(stage)
	if err != nil {
		return nil, false, err
	}
	if se.Name.Space != NSSASL {
		return nil, false, &ProtocolError{stage, fmt.Sprintf("expected a SASL answer, got <%.40s xmlns='%.60s'>", se.Name.Local, se.Name.Space)}
	}
	switch se.Name.Local {
	case "success":
		return &SASLResult{Success: true}, false, s.skip(stage)
	case "challenge":
		return nil, true, s.skip(stage)
	case "failure":
		r := &SASLResult{}
		cond, text, err := s.readCondition(stage, NSSASL)
		if err != nil {
			return nil, false, err
		}
		r.Condition, r.Text = cond, text
		if r.Condition == "" {
			r.Condition = "not-authorized"
		}
		return r, false, nil
	}
	return nil, false, &ProtocolError{stage, fmt.Sprintf("expected <success/>, <failure/> or <challenge/>, got <%.40s>", se.Name.Local)}
}

// skip reads to the end of the element whose start was just read.
func (s *stream) skip(stage string) error {
	depth := 0
	for {
		tok, err := s.token(stage)
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				return nil
			}
			depth--
		}
	}
}

// readCondition reads the inside of an element holding a defined
// condition and an optional <text/> in namespace ns (a stream error, a
// SASL failure) up to its end, and returns both. The text is kept
// verbatim up to MaxText bytes.
func (s *stream) readCondition(stage, ns string) (cond, text string, err error) {
	depth := 0
	inText := false
	var b strings.Builder
	for {
		tok, err := s.token(stage)
		if err != nil {
			return cond, b.String(), err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && t.Name.Space == ns {
				if t.Name.Local == "text" {
					inText = true
				} else if cond == "" {
					cond = clip(t.Name.Local, maxName)
				}
			}
		case xml.CharData:
			if inText && depth == 1 && b.Len() < MaxText {
				b.Write(t[:min(len(t), MaxText-b.Len())])
			}
		case xml.EndElement:
			if depth == 0 {
				return cond, b.String(), nil
			}
			if depth == 1 {
				inText = false
			}
			depth--
		}
	}
}

// readStreamError reads the inside of <stream:error> and returns it as a
// *StreamError (or the error that stopped reading it).
func (s *stream) readStreamError(stage string) error {
	cond, text, err := s.readCondition(stage, NSStreamErrors)
	if err != nil && cond == "" {
		return err
	}
	// With a condition, the error is complete enough to report even if
	// reading stopped: the server probably closed the connection after it.
	if cond == "" {
		cond = "undefined-condition"
	}
	return &StreamError{Condition: cond, Text: text}
}

// clip cuts s at n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// limitedReader reads at most n bytes from r, then fails with
// ErrTooLarge (io.LimitReader would report a clean EOF instead).
type limitedReader struct {
	r io.Reader
	n int64
}

// Read reads from the underlying reader what the limit still allows.
func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
