package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show every identity, the validity, key, EKU, issuer and fingerprints of each certificate in FILE",
		ArgsUsage: "FILE|-",
		Description: "FILE is PEM (leaf first, then intermediates; openssl s_client -showcerts output works) or DER.\n" +
			"Identities are read from the DER of the subjectAltName: dNSName, SRVName, XmppAddr, URI, and the\n" +
			"subject CN, marked as ignored; invalid entries are reported as findings.",
		Flags:        []cli.Flag{jsonFlag(), quietFlag()},
		OnUsageError: onUsageError,
		Action:       runInspect,
	}
}

// inspected is the --json form of one certificate.
type inspected struct {
	certSummary
	Identities []xmppaddr.Identifier `json:"identities"`
	Findings   []xmppaddr.Finding    `json:"findings"`
}

func runInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("inspect needs exactly one FILE (or - for stdin); see 'xmppcert inspect --help'")
	}
	certs, err := certfile.Read(c.Args().First(), c.App.Reader)
	if err != nil {
		return usageError{err.Error()}
	}
	out := make([]inspected, len(certs))
	for i, cert := range certs {
		p := xmppaddr.Identities(cert)
		out[i] = inspected{summarize(cert), p.Identifiers, p.Findings}
	}
	switch {
	case flagAnywhere(c, "json"):
		return writeJSON(c.App.Writer, map[string]any{"file": c.Args().First(), "certificates": out})
	case flagAnywhere(c, "quiet"):
		return nil
	}
	now := clock()
	for i, in := range out {
		if i > 0 {
			fmt.Fprintln(c.App.Writer)
		}
		printInspected(c.App.Writer, i, len(out), in, validity(certs[i], now))
	}
	return nil
}

func printInspected(w io.Writer, i, n int, in inspected, status string) {
	role := "leaf"
	if i > 0 {
		role = "chain"
	}
	fmt.Fprintf(w, "certificate %d of %d (%s)\n", i+1, n, role)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	eku := strings.Join(in.EKU, ", ")
	if eku == "" {
		eku = "(none: any purpose)"
	}
	rows := [][2]string{
		{"subject", in.Subject}, {"issuer", in.Issuer}, {"serial", in.Serial},
		{"valid", fmt.Sprintf("%s to %s", in.NotBefore.Format(time.RFC3339), in.NotAfter.Format(time.RFC3339))},
		{"key", in.Key}, {"signature", in.SignatureAlg}, {"EKU", eku},
		{"sha256", in.SHA256}, {"spki sha256", in.SPKISHA256 + " (base64 " + in.SPKISHA256Base64 + ")"},
	}
	if in.IsCA {
		rows = append(rows, [2]string{"CA", "yes"})
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "  %s\t%s\n", r[0], r[1])
	}
	tw.Flush()
	fmt.Fprintf(w, "  status       %s\n", status)
	fmt.Fprintln(w, "  identities:")
	if len(in.Identities) == 0 {
		fmt.Fprintln(w, "    (none)")
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, id := range in.Identities {
		note := ""
		if id.Ignored != "" {
			note = "ignored: " + id.Ignored
		} else if id.Type == xmppaddr.TypeCN {
			note = "ignored by RFC 9525 peers"
		}
		if note != "" {
			note = "\t" + note
		}
		fmt.Fprintf(tw, "    %s\t%s%s\n", id.Type, id.Value, note)
	}
	tw.Flush()
	for _, f := range in.Findings {
		fmt.Fprintf(w, "  %-7s %s: %s\n", f.Severity, f.Code, f.Text)
	}
}
