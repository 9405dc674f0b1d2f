// Command pulumi-tfgen-kubesmith generates the Pulumi package schema and bridge metadata of kubesmith from the
// Terraform provider's schema. Run it from the pulumi/ directory:
//
//	pulumi-tfgen-kubesmith schema --skip-examples --out cmd/pulumi-resource-kubesmith
//
// (`make pulumi` does). --skip-examples keeps tfgen from converting the HCL examples in docs/, which would need
// the pulumi-converter-terraform plugin from the network.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"

	kspulumi "github.com/kubesmith/terraform-provider-kubesmith/pulumi"
)

// version is set with -ldflags "-X main.version=..."; the schema itself carries no version.
var version = "0.1.0"

func main() {
	info, err := kspulumi.Provider(version)
	if err != nil {
		cmdutil.ExitError(err.Error())
	}
	tfgen.Main(kspulumi.PackageName, info)
}
