package alert

import (
	"context"
	"log/slog"

	"github.com/xmppcert/xmppcert/watcher/changes"
)

// Log is a Sink that writes each alert as one slog record: level Info,
// Warn or Error for info, warning and critical, message "alert", and the
// Event's fields as attributes. It is synchronous: slog handlers write to
// local files or stderr and are expected to be quick.
type Log struct {
	l *slog.Logger
}

// NewLog returns a log sink; nil means slog.Default().
func NewLog(l *slog.Logger) *Log {
	if l == nil {
		l = slog.Default()
	}
	return &Log{l: l}
}

// Name is "log".
func (*Log) Name() string { return "log" }

// Send logs the alert.
func (s *Log) Send(a Alert) {
	level := slog.LevelInfo
	switch a.Change.Severity {
	case changes.Warning:
		level = slog.LevelWarn
	case changes.Critical:
		level = slog.LevelError
	}
	ev := a.Event()
	s.l.LogAttrs(context.Background(), level, "alert",
		slog.String("endpoint", ev.EndpointKey), slog.String("kind", string(ev.Kind)), slog.String("severity", string(ev.Severity)),
		slog.String("text", ev.Text), slog.String("old", ev.Old), slog.String("new", ev.New),
		slog.String("key", ev.Key), slog.String("id", ev.ID), slog.Time("at", ev.At), slog.Bool("resent", ev.Resent))
}

// Close does nothing: there is nothing queued.
func (*Log) Close(context.Context) error { return nil }
