package daemon

import (
	"fmt"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// notify tells systemd the daemon's state when it runs the daemon as a
// Type=notify service (NOTIFY_SOCKET set; contrib/xmppcert.service):
// READY=1 once it serves, RELOADING=1 then READY=1 around a SIGHUP,
// STOPPING=1 when it shuts down. Without NOTIFY_SOCKET it does nothing.
func (d *Daemon) notify(state string) {
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		d.log.Warn("telling systemd the daemon's state failed", "error", err.Error())
	}
}

// statusLine is the one line systemctl status shows beside the unit.
func (d *Daemon) statusLine() string {
	cfg := d.Config()
	return fmt.Sprintf("watching %d targets every %s", len(cfg.Targets()), cfg.Watch.Interval)
}

// watchdog pings systemd's watchdog (WatchdogSec=, WATCHDOG_USEC) at
// half its interval until the returned function is called. The pings
// come from their own goroutine: a sweep may run longer than the
// interval, and a daemon whose process is alive and scheduled is what
// the watchdog is to confirm.
func (d *Daemon) watchdog() (stop func()) {
	iv, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil {
		d.log.Warn("systemd's watchdog settings are not usable", "error", err.Error())
	}
	if iv <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		for {
			d.notify(sddaemon.SdNotifyWatchdog)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done) }
}
