// Highly available Kubernetes on SSH hosts from an air-gapped artifact bundle.
package kubesmith
