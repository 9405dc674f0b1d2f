// Package engine is kubesmith's Terraform- and Pulumi-free API: it plans, applies, reads and deletes clusters,
// node pools and load balancers by running ordered, idempotent phases on hosts over SSH.
package engine
