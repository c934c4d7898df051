package dnsupdate

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/oneline"
	"github.com/xmppcert/xmppcert/internal/secretfile"
)

// tsigKey signs a message: name and algorithm as miekg/dns spells them
// (fully qualified) and the base64 secret.
type tsigKey struct {
	name, alg, secret string
}

var tsigAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// TSIGAlgorithm returns the wire name (e.g. "hmac-sha256.") of a TSIG
// algorithm given as hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384
// or hmac-sha512, in any case, with or without the trailing dot; empty
// means hmac-sha256. hmac-md5 is refused: it is deprecated and not
// supported by miekg/dns. Operators copy these names from their server's
// configuration, so the spelling is forgiving; the error lists what is
// accepted.
func TSIGAlgorithm(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if n == "" {
		return dns.HmacSHA256, nil
	}
	if alg, ok := tsigAlgorithms[n]; ok {
		return alg, nil
	}
	return "", fmt.Errorf("unknown TSIG algorithm %q: use hmac-sha256 (default), hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1", oneline.Clip(name, 40))
}

// LoadTSIGSecret reads a TSIG secret from a file (secretfile.Read) and
// returns it in base64, ready for Client.Secret, so that the secret never
// has to be on a command line. The file holds the secret alone (as
// printed by "tsig-keygen" or "keymgr -t" after "secret"), a BIND key
// clause, or a Knot "key:" section, each with exactly one secret. Every
// error is one line and never shows the file's content.
func LoadTSIGSecret(path string) (string, error) {
	data, err := secretfile.Read(path, "TSIG secret file")
	if err != nil {
		return "", err
	}
	secret, err := ParseTSIGSecret(data)
	if err != nil {
		return "", fmt.Errorf("TSIG secret file %s: %w", path, err)
	}
	return secret, nil
}

var secretRE = regexp.MustCompile(`(?m)(?:^|[\s{;])secret(?:\s*:\s*|\s+)"?([^"\s;]*)`)

// ParseTSIGSecret extracts the base64 TSIG secret from the content of a
// secret file (see LoadTSIGSecret) and returns it in canonical, padded
// base64. The error never quotes the content, which is a secret.
func ParseTSIGSecret(data []byte) (string, error) {
	text := strings.TrimSpace(string(data))
	if text == "" {
		return "", errors.New("empty: it should hold the base64 secret")
	}
	candidate := text
	if m := secretRE.FindAllStringSubmatch(text, -1); len(m) > 0 {
		if len(m) > 1 {
			return "", fmt.Errorf("holds %d secrets: give a file with one key", len(m))
		}
		candidate = m[0][1]
	}
	return decodeSecret(candidate)
}

// decodeSecret checks that s is base64 (padded or not) and returns it
// padded.
func decodeSecret(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty: it should hold the base64 secret")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return "", errors.New("not base64: it should hold the secret as tsig-keygen or keymgr print it")
	}
	if len(b) == 0 {
		return "", errors.New("empty: it should hold the base64 secret")
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
