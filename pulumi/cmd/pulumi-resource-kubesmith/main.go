// Command pulumi-resource-kubesmith is kubesmith's Pulumi resource provider plugin: the Terraform provider served
// over Pulumi's gRPC protocol by the Pulumi Terraform bridge. The Pulumi engine starts it; it is not run by hand.
package main

import (
	"context"
	_ "embed" // schema.json

	pfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"

	kspulumi "github.com/kubesmith/terraform-provider-kubesmith/pulumi"
)

// version is set with -ldflags "-X main.version=..."; the engine compares it with the SDK's plugin version.
var version = "0.1.0"

// schema is the package schema pulumi-tfgen-kubesmith generated.
//
//go:embed schema.json
var schema []byte

func main() {
	info, err := kspulumi.Provider(version)
	if err != nil {
		cmdutil.ExitError(err.Error())
	}
	pfbridge.Main(context.Background(), kspulumi.PackageName, info, pfbridge.ProviderMetadata{PackageSchema: schema})
}
