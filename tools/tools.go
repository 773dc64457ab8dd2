//go:build tools

// Package tools pins the Go-only programs that fedsilo's test suite runs for real:
// kube-apiserver, kubectl and etcd (the control plane the operator is tested against),
// opa (the policy server and `opa test`) and helm (chart lint and render tests); and the
// rest of Kubernetes that scripts/cluster runs as a real single-node cluster (kubelet,
// controller-manager, scheduler, kube-proxy). The cluster's container runtime, DNS and
// NetworkPolicy enforcer are built against their own go.mod: see standalone.txt.
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
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
