package engine

import (
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
	"gopkg.in/yaml.v3"
)

// manifestImageWarnings warns about every container image in the user's manifests that the artifact bundle does
// not carry. Nodes import the bundle's images and pull nothing else from a mirror, so on an air-gapped cluster
// such a pod stays in ImagePullBackOff. It is a warning, not an error: nodes that reach a registry can pull.
// A manifest that is not YAML is left to the apply, which reports kubectl's error.
func manifestImageWarnings(manifests []string, m *artifacts.Manifest) []FieldError {
	bundled := map[string]bool{}
	for _, f := range m.Files {
		if f.Kind == artifacts.KindImage && f.Image != "" {
			bundled[normalizeImage(f.Image)] = true
		}
	}
	var out []FieldError
	for i, doc := range manifests {
		refs, err := containerImages(doc)
		if err != nil {
			continue
		}
		for _, ref := range refs {
			if bundled[normalizeImage(ref)] {
				continue
			}
			out = append(out, FieldError{
				Path: fmt.Sprintf("manifests[%d]", i), Warning: true,
				Summary: "Image not in the artifact bundle",
				Detail: fmt.Sprintf("The manifest uses image %s, which the artifact bundle does not carry. Nodes import only "+
					"the bundle's images, so they must pull this one from its registry; where they cannot, its pods stay in "+
					"ImagePullBackOff. %s", ref, missingImageHint(ref)),
			})
		}
	}
	return out
}

// containerImages returns the images of every container, init container and ephemeral container in a YAML
// stream of Kubernetes objects, each once and sorted, wherever the pod template sits (Pods, Deployments,
// CronJobs, lists).
func containerImages(stream string) ([]string, error) {
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				if k == "containers" || k == "initContainers" || k == "ephemeralContainers" {
					list, _ := c.([]any)
					for _, item := range list {
						if ctr, ok := item.(map[string]any); ok {
							if ref, ok := ctr["image"].(string); ok && ref != "" && !slices.Contains(refs, ref) {
								refs = append(refs, ref)
							}
						}
					}
				}
				walk(c)
			}
		case []any:
			for _, c := range t {
				walk(c)
			}
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(stream))
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parsing the manifest: %w", err)
		}
		walk(doc)
	}
	slices.Sort(refs)
	return refs, nil
}

// missingImageHint says how to get an image into the bundle when kubesmith can build it (an optional component
// of the same name), or else what the nodes need.
func missingImageHint(ref string) string {
	if n, err := reference.ParseNormalizedNamed(ref); err == nil {
		if c := path.Base(reference.Path(n)); artifacts.IsOptional(c) {
			return "The bundle can carry " + c + ": " + artifacts.HowToAdd(c) + ", and use the version it names."
		}
	}
	return "Give the nodes access to that registry, or use an image the bundle carries."
}

// normalizeImage returns the full form of an image reference ("traefik:v3" is
// "docker.io/library/traefik:v3", no tag is ":latest"), or ref itself when it does not parse.
func normalizeImage(ref string) string {
	n, err := reference.ParseNormalizedNamed(strings.TrimSpace(ref))
	if err != nil {
		return ref
	}
	return reference.TagNameOnly(n).String()
}
