// Command terraform-provider-kubesmith serves the kubesmith Terraform provider (plugin protocol 6).
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/kubesmith/terraform-provider-kubesmith/provider"
)

// Generate the registry documentation in docs/ from the schema descriptions, docs-templates/ and examples/.
// (The top-level templates/ directory holds provisioning assets, not documentation.)
//go:generate go tool tfplugindocs generate --provider-dir . --provider-name kubesmith --rendered-provider-name kubesmith --website-source-dir docs-templates --examples-dir examples

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers such as delve")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address:         provider.ProviderAddress,
		Debug:           debug,
		ProtocolVersion: 6,
	})
	if err != nil {
		log.Fatal(err)
	}
}
