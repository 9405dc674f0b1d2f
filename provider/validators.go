package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

// durationValidator accepts a positive Go duration such as "90s" or "8760h".
type durationValidator struct{}

var _ validator.String = durationValidator{}

func (durationValidator) Description(context.Context) string {
	return `value must be a positive Go duration such as "90s", "15m" or "8760h"`
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (durationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	d, err := time.ParseDuration(req.ConfigValue.ValueString())
	switch {
	case err != nil:
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Duration",
			fmt.Sprintf("%q is not a Go duration such as \"90s\", \"15m\" or \"8760h\": %s.", req.ConfigValue.ValueString(), err))
	case d <= 0:
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Duration",
			fmt.Sprintf("%q must be longer than zero.", req.ConfigValue.ValueString()))
	}
}

// formatDuration renders d the way people write it: "15s", "1m", "1h30m", "8760h" rather than time's
// "1m0s" or "8760h0m0s". Imported durations then match typical configuration.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	for _, suffix := range []string{"m0s", "h0m"} {
		if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
			s = s[:len(s)-2]
		}
	}
	return s
}

// exactlyOneChild requires exactly one of the named attributes of a nested object to be set.
type exactlyOneChild struct {
	names []string
}

var _ validator.Object = exactlyOneChild{}

func (v exactlyOneChild) Description(context.Context) string {
	return "exactly one of " + strings.Join(v.names, " or ") + " must be set"
}

func (v exactlyOneChild) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v exactlyOneChild) ValidateObject(_ context.Context, req validator.ObjectRequest, resp *validator.ObjectResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	attrs := req.ConfigValue.Attributes()
	var set []string
	for _, n := range v.names {
		a, ok := attrs[n]
		if !ok || a.IsNull() {
			continue
		}
		if a.IsUnknown() {
			return // decided once known
		}
		set = append(set, n)
	}
	if len(set) != 1 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Attribute Combination", fmt.Sprintf(
			"%s needs exactly one of %s; %d are set.", req.Path, strings.Join(v.names, " or "), len(set)))
	}
}
