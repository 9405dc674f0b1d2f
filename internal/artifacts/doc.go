// Package artifacts describes, verifies, fetches and builds kubesmith's offline artifact bundle.
//
// A bundle is a directory (or the same tree served over HTTP, a "mirror") with a manifest.json at its root that
// lists every file with its component, version, OS, architecture, kind, size and sha256:
//
//	manifest.json
//	bin/<os>-<arch>/<component>-<version>/<name>        static binaries uploaded to nodes (kind "binary")
//	                                                   and host-side tools (kind "tool", never uploaded)
//	images/<os>-<arch>/<name>-<version>.oci.tar        OCI image-layout archives for `ctr images import`
//	debs/bookworm-<arch>/<file>.deb                    Debian 12 packages for air-gapped hosts
//
// The provider uses [Open] or [OpenMirror] at plan time (they read only the manifest), [Bundle.Fetch] at upload
// time (which verifies size and sha256, with a (size, mtime) hash cache so unchanged files are not re-hashed), and
// [Bundle.Verify] to report exactly which files are missing, corrupt or built for the wrong architecture.
//
// [Builder] produces a bundle from the Go module proxy and Debian's apt mirror only; the ksartifacts command
// (internal/cmd/ksartifacts) is its command-line front end, used by `make artifacts`. [WriteImage] writes
// deterministic OCI image archives without a registry or a container engine.
package artifacts
