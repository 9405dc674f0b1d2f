package provider

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// isProviderLevel reports whether an engine path root names a provider block attribute rather than a resource
// attribute.
func isProviderLevel(root string) bool {
	switch root {
	case "ssh", "artifacts", "libvirt_uri":
		return true
	}
	return false
}

// parseFieldPath turns an engine path such as `control_plane.hosts[1].address` or `labels["tier"]` into a
// framework path.
func parseFieldPath(s string) (path.Path, error) {
	if s == "" {
		return path.Empty(), errors.New("empty path")
	}
	var p path.Path
	first := true
	for i := 0; i < len(s); {
		switch s[i] {
		case '.':
			if first || i+1 >= len(s) {
				return path.Empty(), fmt.Errorf("path %q: misplaced '.' at %d", s, i)
			}
			i++
			fallthrough
		default:
			if s[i] == '[' || s[i] == '.' {
				return path.Empty(), fmt.Errorf("path %q: expected a name at %d", s, i)
			}
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				j++
			}
			name := s[i:j]
			if first {
				p = path.Root(name)
				first = false
			} else {
				p = p.AtName(name)
			}
			i = j
		case '[':
			if first {
				return path.Empty(), fmt.Errorf("path %q: starts with an index", s)
			}
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return path.Empty(), fmt.Errorf("path %q: unterminated '['", s)
			}
			inner := s[i+1 : i+end]
			if key, err := strconv.Unquote(inner); err == nil {
				p = p.AtMapKey(key)
			} else if n, err := strconv.Atoi(inner); err == nil && n >= 0 {
				p = p.AtListIndex(n)
			} else {
				return path.Empty(), fmt.Errorf("path %q: bad index %q", s, inner)
			}
			i += end + 1
		}
	}
	return p, nil
}

// underAny reports whether p equals one of prefixes or lies below it (at a '.' or '[' boundary).
func underAny(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if p == pre || (strings.HasPrefix(p, pre) && (p[len(pre)] == '.' || p[len(pre)] == '[')) {
			return true
		}
	}
	return false
}

// addFieldErrors maps engine validation findings to diagnostics: attribute errors (or warnings) on the resource
// where the path names one of its attributes, plain ones that name the provider attribute otherwise. Findings on
// values that are still unknown are dropped; they are checked again once Terraform knows them.
func addFieldErrors(diags *diag.Diagnostics, errs []engine.FieldError, unknown []string) {
	for _, fe := range errs {
		if fe.Path != "" && underAny(fe.Path, unknown) {
			continue
		}
		add, addAt := diags.AddError, diags.AddAttributeError
		if fe.Warning {
			add, addAt = diags.AddWarning, diags.AddAttributeWarning
		}
		root, _, _ := strings.Cut(fe.Path, ".")
		root, _, _ = strings.Cut(root, "[")
		if isProviderLevel(root) {
			add(fe.Summary, fmt.Sprintf("%s\n\nThis concerns %s in the provider \"kubesmith\" block "+
				"(or its environment fallback).", fe.Detail, fe.Path))
			continue
		}
		p, err := parseFieldPath(fe.Path)
		if err != nil {
			add(fe.Summary, fe.Detail)
			continue
		}
		// Terraform cannot always point at nested attributes in the configuration, so the detail names it too.
		addAt(p, fe.Summary, fmt.Sprintf("%s\n\nThis concerns %s.", fe.Detail, fe.Path))
	}
}

// resumeHint is how a user continues after a failed create; Terraform has tainted the resource by then.
const resumeHint = "The cluster's UID and PKI were saved in state and nothing that was installed is lost. " +
	"Fix the cause, then resume with:\n\n" +
	"    terraform untaint <address> && terraform apply\n\n" +
	"where <address> is this resource's address, such as kubesmith_cluster.main. Apply then continues " +
	"through an update: every phase skips what is already done. A plain `terraform apply` without untaint " +
	"would destroy the partly installed hosts and start again."

// engineErrorDetail formats an engine error with what was attempted and a remediation.
func engineErrorDetail(attempt, remedy string, err error) string {
	var b strings.Builder
	b.WriteString(attempt)
	if remedy != "" {
		b.WriteString("\n\n")
		b.WriteString(remedy)
	}
	b.WriteString("\n\nOriginal Error: ")
	b.WriteString(err.Error())
	return b.String()
}
