//go:build tools

// Package tools pins the Go-only programs that fedsilo's test suite runs for real:
// kube-apiserver, kubectl and etcd (the control plane the operator is tested against),
// opa (the policy server and `opa test`) and helm (chart lint and render tests).
//
// The build tag keeps this file out of every build: it exists so that `go mod tidy`
// records these programs' dependencies in go.mod and go.sum. scripts/build-tools builds
// the main packages named here; nothing imports this package.
package tools

import (
	_ "github.com/open-policy-agent/opa"
	_ "go.etcd.io/etcd/server/v3"
	_ "helm.sh/helm/v4/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
