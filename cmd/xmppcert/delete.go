package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func deleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "remove a lineage, every version of it and its records from the state directory",
		ArgsUsage: "LINEAGE",
		Description: "Removes STATE/live/LINEAGE, its archive, and its renewal, pin and deploy records, under the lineage's\n" +
			"lock. What was deployed to servers stays where it is, and published pins (TLSA, POSH) stay published.\n" +
			"It asks nothing: without --yes it refuses. Exit 0 deleted, 1 the lineage is busy or a file could\n" +
			"not be removed, 2 usage error (no --yes, an unknown lineage).",
		Flags:        []cli.Flag{&cli.BoolFlag{Name: "yes", Usage: "really delete"}, quietFlag()},
		OnUsageError: onUsageError,
		Action:       runDelete,
	}
}

func runDelete(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("delete needs exactly one LINEAGE")
	}
	engine, names, done, err := engineFor(c, false)
	if err != nil {
		return err
	}
	defer done()
	store, state, name := engine.Store, engine.StateDir, names[0]
	if !c.Bool("yes") {
		return usagef("delete removes lineage %s and every version of it from %s; give --yes to do it", name, state)
	}
	if err := store.Delete(name); err != nil {
		return err
	}
	if !flagAnywhere(c, "quiet") {
		fmt.Fprintf(c.App.Writer, "Deleted lineage %s: every version and record in %s; files deployed to servers and published pins are unchanged.\n", name, state)
	}
	return nil
}
