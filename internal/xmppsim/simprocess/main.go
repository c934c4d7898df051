// Command simprocess runs an internal/xmppsim simulator in its own
// process, so that a test's or benchmark's daemons are measured without
// the simulator's work (xmppsim.StartProcess starts it). It is a test
// fixture, not part of xmppcert.
//
//	simprocess [-dialback]
//
// It prints "sim ADDR" and the simulator's CA as PEM, then obeys one
// command per line of stdin, answering each with "ok" or "error: ...":
//
//	prepare N     issue the certificates of the first N domains and print
//	              their names, one per line, before the "ok"
//	rekey DOMAIN  a new certificate with a new key
//	renew DOMAIN  a new certificate with the same key
//	streams N     for the first N domains, how many were probed how many
//	              times: lines "TIMES DOMAINS", fewest times first
//	count DOMAIN  how many times DOMAIN was probed
//	reset         forget the streams counted so far
//
// It exits when stdin closes.
package main

import (
	"bufio"
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/xmppcert/xmppcert/internal/xmppsim"
)

func main() {
	dialback := flag.Bool("dialback", false, "offer dialback on s2s streams")
	flag.Parse()
	sim, err := xmppsim.New(xmppsim.Config{Dialback: *dialback})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	defer sim.Close()
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "sim %s\n", sim.Addr())
	pem.Encode(out, &pem.Block{Type: "CERTIFICATE", Bytes: sim.CA().Raw})
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		var err error
		switch cmd {
		case "prepare":
			var domains []string
			if domains, err = firstDomains(sim, arg); err != nil {
				break
			}
			if err = sim.Prepare(context.Background(), domains, 0); err == nil {
				for _, d := range domains {
					fmt.Fprintln(out, d)
				}
			}
		case "rekey":
			err = sim.Rekey(arg)
		case "renew":
			err = sim.Renew(arg)
		case "streams":
			var domains []string
			if domains, err = firstDomains(sim, arg); err != nil {
				break
			}
			tally := map[int]int{}
			for _, d := range domains {
				tally[sim.Streams(d)]++
			}
			for _, times := range slices.Sorted(maps.Keys(tally)) {
				fmt.Fprintln(out, times, tally[times])
			}
		case "count":
			fmt.Fprintln(out, sim.Streams(arg))
		case "reset":
			sim.ResetStreams()
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			fmt.Fprintln(out, "error:", err)
		} else {
			fmt.Fprintln(out, "ok")
		}
		out.Flush()
	}
}

// firstDomains are the names of the simulator's first n domains, n
// given as text.
func firstDomains(sim *xmppsim.Sim, n string) ([]string, error) {
	count, err := strconv.Atoi(n)
	if err != nil || count < 0 {
		return nil, errors.New("want a count of domains")
	}
	domains := make([]string, count)
	for i := range domains {
		domains[i] = sim.Domain(i + 1)
	}
	return domains, nil
}
