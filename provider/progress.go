package provider

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// progressHistoryLimit bounds how many events a failed operation reports.
const progressHistoryLimit = 50

// progressLog forwards engine events to tflog and keeps the last progressHistoryLimit of them, which are added
// as a warning when the operation fails. The engine may report from several goroutines at once.
type progressLog struct {
	ctx       context.Context
	operation string

	mu      sync.Mutex
	history []string // ring buffer of formatted events
	next    int      // index the next event goes to once the buffer is full
	total   int
}

func newProgressLog(ctx context.Context, operation string) *progressLog {
	return &progressLog{ctx: ctx, operation: operation}
}

// Func is the engine.Progress callback.
func (p *progressLog) Func() engine.Progress { return p.record }

func (p *progressLog) record(ev engine.Event) {
	fields := map[string]any{"operation": p.operation, "phase": ev.Phase, "done": ev.Done}
	if ev.Host != "" {
		fields["host"] = ev.Host
	}
	if ev.Duration > 0 {
		fields["duration"] = ev.Duration.Round(time.Millisecond).String()
		fields["duration_ms"] = ev.Duration.Milliseconds()
	}
	msg := ev.Message
	if msg == "" {
		msg = eventVerb(ev) + " " + ev.Phase
	}
	if ev.Err != nil {
		fields["error"] = ev.Err.Error()
		tflog.Warn(p.ctx, msg, fields)
	} else {
		tflog.Info(p.ctx, msg, fields)
	}

	line := formatEvent(ev)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	if len(p.history) < progressHistoryLimit {
		p.history = append(p.history, line)
		return
	}
	p.history[p.next] = line
	p.next = (p.next + 1) % progressHistoryLimit
}

func eventVerb(ev engine.Event) string {
	switch {
	case ev.Err != nil:
		return "failed"
	case ev.Done:
		return "finished"
	default:
		return "started"
	}
}

func formatEvent(ev engine.Event) string {
	var b strings.Builder
	b.WriteString(ev.Phase)
	if ev.Host != "" {
		b.WriteString(" on ")
		b.WriteString(ev.Host)
	}
	b.WriteString(": ")
	b.WriteString(eventVerb(ev))
	if ev.Duration > 0 {
		fmt.Fprintf(&b, " after %s", ev.Duration.Round(time.Millisecond))
	}
	if ev.Message != "" {
		b.WriteString(" (")
		b.WriteString(ev.Message)
		b.WriteString(")")
	}
	if ev.Err != nil {
		b.WriteString(": ")
		b.WriteString(ev.Err.Error())
	}
	return b.String()
}

// Lines returns the kept events, oldest first.
func (p *progressLog) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.history))
	out = append(out, p.history[p.next:]...)
	out = append(out, p.history[:p.next]...)
	return out
}

// AddWarning adds the kept history as a warning diagnostic, if there is any.
func (p *progressLog) AddWarning(diags *diag.Diagnostics) {
	lines := p.Lines()
	if len(lines) == 0 {
		return
	}
	p.mu.Lock()
	total := p.total
	p.mu.Unlock()
	head := fmt.Sprintf("The %s stopped after these steps", p.operation)
	if total > len(lines) {
		head += fmt.Sprintf(" (the last %d of %d)", len(lines), total)
	}
	diags.AddWarning("Progress Before the Failure", head+":\n\n"+strings.Join(lines, "\n"))
}
