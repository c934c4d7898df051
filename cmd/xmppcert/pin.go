package main

import (
	"crypto"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/pinning"
)

func pinCommand() *cli.Command {
	return &cli.Command{
		Name:  "pin",
		Usage: "pin data for a lineage (TLSA, POSH, SPKI, host-meta), published and verified",
		Description: "Every lineage keeps a next key beside its current one. Pin data always covers both, so that\n" +
			"once it is published a renewal can switch keys without breaking a pin: renewal moves to the next\n" +
			"key only after its pins have been public for the hold time (default 2 x the TLSA TTL).",
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown pin command %q; use tlsa, publish, posh, posh-redirect, spki, hostmeta or verify", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
		Subcommands: []*cli.Command{
			pinTLSACommand(), pinPublishCommand(), pinPOSHCommand(), pinPOSHRedirectCommand(),
			pinSPKICommand(), pinHostMetaCommand(), pinVerifyCommand(),
		},
	}
}

// markFlags let an operator who publishes pin output by hand say so:
// the published time starts the next key's hold.
func markFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "mark-published", Usage: "record that this output is now published: starts the next key's hold time"},
		&cli.DurationFlag{Name: "hold", Usage: "how long the next key's pins must be public before a renewal switches to it (default 2 x TTL)"},
	}
}

// tlsaFlags choose the records: parameters, ports and targets.
func tlsaFlags() []cli.Flag {
	return []cli.Flag{
		&cli.UintFlag{Name: "usage", Value: uint(pinning.UsageDANEEE), Usage: "TLSA certificate usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE"},
		&cli.UintFlag{Name: "selector", Value: uint(pinning.SelectorSPKI), Usage: "TLSA selector: 0 full certificate, 1 SubjectPublicKeyInfo"},
		&cli.UintFlag{Name: "mtype", Value: uint(pinning.MatchSHA256), Usage: "TLSA matching type: 0 full, 1 SHA-256, 2 SHA-512"},
		&cli.StringSliceFlag{Name: "port", Usage: "a port to publish for (repeatable; default by role: 5222 5223 c2s, 5269 5270 s2s)"},
		&cli.StringSliceFlag{Name: "target", Usage: "an SRV target host the records are for (repeatable; default each name of the lineage)"},
		&cli.BoolFlag{Name: "from-srv", Usage: "take the targets and ports from each name's SRV records (XEP-0368 included), through --resolver"},
		&cli.StringFlag{Name: "resolver", Usage: "HOST:PORT of the resolver --from-srv asks (default: the first nameserver of /etc/resolv.conf)"},
		&cli.DurationFlag{Name: "ttl", Value: time.Hour, Usage: "TTL of the records"},
	}
}

func pinTLSACommand() *cli.Command {
	return &cli.Command{
		Name: "tlsa", Usage: "TLSA records for a lineage's current and next key, as zone-file lines",
		ArgsUsage:    "LINEAGE",
		Flags:        append(append(tlsaFlags(), markFlags()...), jsonFlag()),
		OnUsageError: onUsageError,
		Action:       runPinTLSA,
	}
}

type tlsaOutput struct {
	Lineage string                   `json:"lineage"`
	TTL     int64                    `json:"ttl"`
	Records []lifecycle.PinnedRecord `json:"records"`
	Notes   []string                 `json:"notes"`
}

func runPinTLSA(c *cli.Context) error {
	engine, l, err := pinLineage(c)
	if err != nil {
		return err
	}
	spec, err := tlsaSpecFrom(c, l)
	if err != nil {
		return err
	}
	out := tlsaOutput{Lineage: l.Name, TTL: int64(spec.TTL / time.Second), Notes: []string{}}
	out.Records, out.Notes = spec.Records(l)
	if err := markIfAsked(c, engine, l, spec.PinnedKeys(l)); err != nil {
		return err
	}
	if flagAnywhere(c, "json") {
		return writeJSON(c.App.Writer, out)
	}
	w := c.App.Writer
	last := ""
	for _, r := range out.Records {
		if r.Pins != last {
			fmt.Fprintf(w, "; %s\n", pinsLabel(r.Pins))
			last = r.Pins
		}
		fmt.Fprintf(w, "%s %d IN TLSA %s\n", r.Name, out.TTL, rdata(r.TLSA))
	}
	for _, n := range out.Notes {
		fmt.Fprintf(w, "; note: %s\n", n)
	}
	return nil
}

func rdata(r pinning.TLSA) string {
	r.Name = ""
	return r.String()
}

func pinsLabel(p string) string {
	switch p {
	case "current":
		return "the current key (live certificate)"
	case "next":
		return "the next key: publish it now, renewal switches to it after the hold time"
	}
	return "the issuing CA"
}

// tlsaSpecFrom reads the TLSA flags into the records they ask for.
func tlsaSpecFrom(c *cli.Context, l *acme.Lineage) (lifecycle.TLSASpec, error) {
	var err error
	s := lifecycle.TLSASpec{TTL: c.Duration("ttl")}
	for _, f := range []struct {
		name string
		max  uint
		p    *uint8
	}{{"usage", 3, &s.Usage}, {"selector", 1, &s.Selector}, {"mtype", 2, &s.MatchingType}} {
		v := c.Uint(f.name)
		if v > f.max {
			return s, usagef("--%s %d: TLSA %s must be 0 to %d", f.name, v, f.name, f.max)
		}
		*f.p = uint8(v)
	}
	if s.TTL < time.Second {
		return s, usagef("--ttl %s: give at least 1s", s.TTL)
	}
	var ports []uint16
	for _, p := range c.StringSlice("port") {
		n, err := parsePort(p)
		if err != nil {
			return s, err
		}
		ports = append(ports, n)
	}
	var targets []string
	for _, t := range c.StringSlice("target") {
		d, err := acme.CanonicalName(t)
		if err != nil {
			return s, usagef("--target: %v", err)
		}
		targets = append(targets, d)
	}
	if !c.Bool("from-srv") {
		s.Endpoints = lifecycle.Endpoints(l.Request, targets, ports)
		return s, nil
	}
	if len(targets) > 0 || len(ports) > 0 {
		return s, usagef("--from-srv takes the targets and ports from DNS; leave out --target and --port")
	}
	if r := c.String("resolver"); r != "" {
		if !validHostPort(r) {
			return s, usagef("--resolver %q: give HOST:PORT", r)
		}
	}
	if s.Endpoints, err = lifecycle.SRVEndpoints(c.Context, c.String("resolver"), l.Request); err != nil {
		return s, fmt.Errorf("--from-srv: %w", err)
	}
	return s, nil
}

// parsePort reads a --port value: 1 to 65535.
func parsePort(p string) (uint16, error) {
	var n int
	if _, err := fmt.Sscanf(p, "%d", &n); err != nil || fmt.Sprint(n) != strings.TrimSpace(p) || n < 1 || n > 65535 {
		return 0, usagef("--port %q: a TCP port is a number from 1 to 65535", p)
	}
	return uint16(n), nil
}

// pinLineage reads the LINEAGE argument's lineage.
func pinLineage(c *cli.Context) (*lifecycle.Engine, *acme.Lineage, error) {
	return loadLineage(c, "pin "+c.Command.Name)
}

// loadLineage loads the lineage the one argument of command names; a
// missing or unknown one is a usage error.
func loadLineage(c *cli.Context, command string) (*lifecycle.Engine, *acme.Lineage, error) {
	if c.NArg() != 1 {
		return nil, nil, usagef("%s needs exactly one LINEAGE, the host a certificate was issued for", command)
	}
	state, err := stateDir(c)
	if err != nil {
		return nil, nil, err
	}
	name, err := acme.CanonicalName(c.Args().First())
	if err != nil {
		return nil, nil, usagef("LINEAGE: %v", err)
	}
	engine := lifecycle.OnDisk(state)
	engine.Now = clock
	l, err := engine.Store.Load(name)
	if errors.Is(err, acme.ErrNoLineage) {
		return engine, nil, usagef("no lineage %s in %s; issue one with 'xmppcert issue %s'", name, filepath.Join(state, "live"), name)
	}
	if err != nil {
		return engine, nil, usagef("lineage %s: %v", name, err)
	}
	return engine, l, nil
}

// markIfAsked records, with --mark-published, that pins for keys are
// public from now on.
func markIfAsked(c *cli.Context, engine *lifecycle.Engine, l *acme.Lineage, keys []crypto.PublicKey) error {
	if !c.Bool("mark-published") {
		return nil
	}
	if len(keys) == 0 {
		return usagef("--mark-published: this output pins no key (a CA or full-certificate pin); renewals do not wait for it")
	}
	return engine.MarkPublished(l, keys, holdTime(c))
}

// holdTime is --hold, else twice --ttl when the command has one.
func holdTime(c *cli.Context) time.Duration {
	if h := c.Duration("hold"); h > 0 {
		return h
	}
	if ttl := c.Duration("ttl"); ttl > 0 {
		return 2 * ttl
	}
	return 0
}

func pinSPKICommand() *cli.Command {
	return &cli.Command{
		Name: "spki", Usage: "base64 SHA-256 SPKI pins (RFC 7469 pin-sha256) of the current and next key",
		ArgsUsage:    "LINEAGE",
		Flags:        append(markFlags(), jsonFlag()),
		OnUsageError: onUsageError,
		Action:       runPinSPKI,
	}
}

type spkiPin struct {
	Pins   string `json:"pins"`
	SHA256 string `json:"sha256"`
}

func runPinSPKI(c *cli.Context) error {
	engine, l, err := pinLineage(c)
	if err != nil {
		return err
	}
	keys := lifecycle.LineageKeys(l)
	out := struct {
		Lineage string    `json:"lineage"`
		Pins    []spkiPin `json:"pins"`
	}{Lineage: l.Name}
	for i, k := range keys {
		p, err := pinning.KeyPin(k)
		if err != nil {
			return err
		}
		out.Pins = append(out.Pins, spkiPin{Pins: []string{"current", "next"}[i], SHA256: p})
	}
	if err := markIfAsked(c, engine, l, keys); err != nil {
		return err
	}
	if flagAnywhere(c, "json") {
		return writeJSON(c.App.Writer, out)
	}
	for _, p := range out.Pins {
		fmt.Fprintf(c.App.Writer, "pin-sha256=%q ; %s key\n", p.SHA256, p.Pins)
	}
	return nil
}

func pinHostMetaCommand() *cli.Command {
	return &cli.Command{
		Name: "hostmeta", Usage: "the XEP-0487 host-meta.json \"xmpp\" object with the SPKI pins of the current and next key",
		ArgsUsage: "LINEAGE",
		Flags: append(markFlags(),
			&cli.DurationFlag{Name: "ttl", Value: 24 * time.Hour, Usage: "how long clients may cache the document"}),
		OnUsageError: onUsageError,
		Action:       runPinHostMeta,
	}
}

func runPinHostMeta(c *cli.Context) error {
	engine, l, err := pinLineage(c)
	if err != nil {
		return err
	}
	keys := lifecycle.LineageKeys(l)
	h, err := pinning.NewHostMeta(keys, c.Duration("ttl"))
	if err != nil {
		return usagef("%v", err)
	}
	if err := markIfAsked(c, engine, l, keys); err != nil {
		return err
	}
	return writeJSON(c.App.Writer, h)
}
