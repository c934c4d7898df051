package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/daemon"
)

func ackCommand() *cli.Command {
	return &cli.Command{
		Name:      "ack",
		Usage:     "acknowledge the changes of watched endpoints in the running daemon",
		ArgsUsage: "ENDPOINT... | --all-info",
		Description: "Each ENDPOINT is an endpoint's ID or key (as status --json gives them) or a domain, for all of its\n" +
			"endpoints; their changes are acknowledged up to the latest entry. --all-info acknowledges every\n" +
			"endpoint whose unacknowledged changes are all info (expected renewals, first sightings) and leaves\n" +
			"warnings and critical changes to be read. Asks the daemon's API as status does.\n" +
			"Exit 0, 1 when the daemon refused or did not answer, 2 for an unknown endpoint or bad flags.",
		Flags:        []cli.Flag{listenFlag(), &cli.BoolFlag{Name: "all-info", Usage: "acknowledge every endpoint whose changes are all info"}, jsonFlag(), quietFlag()},
		OnUsageError: onUsageError,
		Action:       runAck,
	}
}

// ackOutput is ack's --json output: the IDs acknowledged, and with
// --all-info those left with warnings or critical changes.
type ackOutput struct {
	Acknowledged []string `json:"acknowledged"`
	Left         []string `json:"left,omitempty"`
}

func runAck(c *cli.Context) error {
	if c.Bool("all-info") == (c.NArg() > 0) {
		return usagef("ack needs ENDPOINT arguments or --all-info, not both")
	}
	client, _, err := daemonClient(c)
	if err != nil {
		return err
	}
	var out ackOutput
	if c.Bool("all-info") {
		res, err := client.AckAll(c.Context, changes.Info)
		if err != nil {
			return err
		}
		out = ackOutput{Acknowledged: res.Acknowledged, Left: res.Left}
	} else {
		eps, err := client.Endpoints(c.Context)
		if err != nil {
			return err
		}
		var ids []string
		for _, a := range c.Args().Slice() {
			n := len(ids)
			for _, e := range eps {
				if a == e.ID || a == e.Key || strings.EqualFold(strings.TrimSuffix(a, "."), e.Endpoint.Domain) {
					ids = append(ids, e.ID)
				}
			}
			if len(ids) == n {
				return usagef("no watched endpoint %q; 'xmppcert status' lists them", a)
			}
		}
		slices.Sort(ids)
		out.Acknowledged = []string{}
		for _, id := range slices.Compact(ids) {
			if _, err := client.Ack(c.Context, id, 0); err != nil {
				return fmt.Errorf("acknowledging %s: %w", id, err)
			}
			out.Acknowledged = append(out.Acknowledged, id)
		}
	}
	switch {
	case flagAnywhere(c, "json"):
		return writeJSON(c.App.Writer, out)
	case flagAnywhere(c, "quiet"):
	default:
		fmt.Fprintf(c.App.Writer, "acknowledged %d endpoint(s)\n", len(out.Acknowledged))
		if len(out.Left) > 0 {
			fmt.Fprintf(c.App.Writer, "left %d endpoint(s) with warnings or critical changes to read: 'xmppcert status'\n", len(out.Left))
		}
	}
	return nil
}

func sweepCommand() *cli.Command {
	return &cli.Command{
		Name:  "sweep",
		Usage: "make the running daemon probe every watched endpoint now",
		Description: "Asks the daemon's API (POST /api/sweep) as status does and waits for the sweep to end.\n" +
			"Exit 0, 1 when a target could not be probed (its DNS failed) or the daemon refused or did not answer.",
		Flags:        []cli.Flag{listenFlag(), jsonFlag(), quietFlag()},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("sweep takes no arguments")
			}
			client, _, err := daemonClient(c)
			if err != nil {
				return err
			}
			var res daemon.SweepResult
			if err := client.Sweep(c.Context, &res); err != nil {
				return err
			}
			switch {
			case flagAnywhere(c, "json"):
				if err := writeJSON(c.App.Writer, res); err != nil {
					return err
				}
			case flagAnywhere(c, "quiet"):
			default:
				fmt.Fprintf(c.App.Writer, "swept %d targets: %d endpoints observed, %d changed, %d alerts sent\n", res.Targets, res.Observations, res.Changed, res.Alerts)
				for _, f := range res.Failed {
					fmt.Fprintf(c.App.Writer, "  not probed: %s\n", f)
				}
			}
			if len(res.Failed) > 0 {
				return fmt.Errorf("%d of %d targets could not be probed", len(res.Failed), res.Targets)
			}
			return nil
		},
	}
}
